"""A run folder left by a killed writer is tidied when training opens it again; evaluate covers every task."""
import numpy as np

from rnnkit import optim
from rnnkit.models.many_to_many import ManyToMany
from rnnkit.train import StreamWindows, fit


def test_stale_temp_files_are_removed_on_resume(tmp_path):
    model = ManyToMany(vocab_size=5, embedding_dim=3, hidden_size=4, seed=0)
    data = StreamWindows(np.arange(300) % 5, 2, 5)
    fit(model, optim.Adam(model), data, steps=2, run_dir=tmp_path, progress=False, tbptt=True)
    stale = tmp_path / ".last.ckpt.k3j2h1.tmp"
    stale.write_bytes(b"half a checkpoint")
    fit(model, optim.Adam(model), data, steps=3, run_dir=tmp_path, progress=False, tbptt=True, resume=True)
    assert not stale.exists()
    assert (tmp_path / "last.ckpt").exists()


def test_evaluate_knows_every_task():
    from rnnkit.cli.runs import EVALUATORS
    assert set(EVALUATORS) == {"lm", "classify", "tag", "forecast", "seq2seq"}
