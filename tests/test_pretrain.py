"""Language-model pretraining of a classifier (models.pretrain), word-type embedding dropout in the
models, and the command line's --pretrain-epochs, --embedding-dropout and --ensemble."""
import json

import numpy as np
import pytest

from rnnkit.errors import InputError
from rnnkit.models import build
from rnnkit.models.many_to_many import ManyToMany
from rnnkit.models.many_to_one import ManyToOne
from rnnkit.models.pretrain import LanguageModelPretrainer
from rnnkit.optim import Adam

from test_cli import TINY, one_line_error, run, sentiment_tsv, text_file  # noqa: F401 (fixtures)
from test_models import check_objective

T, B, V, E, H = 6, 4, 11, 5, 4
LENGTHS = np.array([6, 2, 4, 3])


def batch(lengths=LENGTHS):
    x = np.random.default_rng(3).integers(1, V, size=(T, B))                # (T, B)
    x[np.arange(T)[:, None] >= lengths[None, :]] = 0                        # padding
    return {"x": x, "y": np.zeros(B, np.int64), "lengths": lengths}


def classifier(**kw):
    args = dict(vocab_size=V, embedding_dim=E, num_outputs=2, cell="gru", hidden_size=H,
                bidirectional=True, dtype="float64", seed=2)
    return ManyToOne(**{**args, **kw})


# -- the pretrainer's gradient ----------------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(), dict(cell="lstm", bidirectional=False, num_layers=2),
                                dict(cell="rnn", readout="max")], ids=["bigru", "lstm-2layers", "birnn"])
def test_pretrainer_gradcheck(kw):
    lm = LanguageModelPretrainer(classifier(**kw), seed=1)
    check_objective(lm, batch())


def test_pretrainer_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    model = classifier()
    lm = LanguageModelPretrainer(model, seed=1)
    b = batch()
    lm.zero_grad()
    loss_sum, count, _, _ = lm.objective(b)

    emb = torch.tensor(model.input.embed.params["W"], requires_grad=True)
    gru = torch.nn.GRU(E, H, bidirectional=True).double()
    gru.load_state_dict({k: torch.from_numpy(v) for k, v in model.rnn.torch_state_dict().items()})
    heads = [(torch.tensor(h.params["W"], requires_grad=True), torch.tensor(h.params["b"], requires_grad=True))
             for h in lm.heads]
    x = torch.from_numpy(b["x"])
    packed = torch.nn.utils.rnn.pack_padded_sequence(emb[x], torch.from_numpy(LENGTHS), enforce_sorted=False)
    out, _ = gru(packed)
    h, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)     # (T, B, 2H)
    terms = []
    for bi, L in enumerate(LENGTHS):
        for t in range(L):
            if t < L - 1:      # forward direction: the next word
                terms.append(torch.log_softmax(h[t, bi, :H] @ heads[0][0] + heads[0][1], -1)[x[t + 1, bi]])
            if t >= 1:         # backward direction: the previous word
                terms.append(torch.log_softmax(h[t, bi, H:] @ heads[1][0] + heads[1][1], -1)[x[t - 1, bi]])
    loss = -torch.stack(terms).sum()
    (loss / len(terms)).backward()

    assert count == len(terms) == 2 * int((LENGTHS - 1).sum())
    assert loss_sum == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(model.input.embed.grads["W"], emb.grad.numpy(), rtol=1e-9, atol=1e-12)
    torch_grads = {k: p.grad.numpy() for k, p in gru.named_parameters()}
    for k, g in model.rnn.torch_state_dict(grads=True).items():
        np.testing.assert_allclose(g, torch_grads[k], rtol=1e-9, atol=1e-12, err_msg=k)
    for head, (W, b_) in zip(lm.heads, heads):
        np.testing.assert_allclose(head.grads["W"], W.grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(head.grads["b"], b_.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_pretrainer_trains_the_classifiers_own_arrays():
    model = classifier(dtype="float32")
    E0, W0 = model.input.embed.params["W"], model.rnn.state_dict()
    before = E0.copy()
    lm = LanguageModelPretrainer(model)
    opt = Adam(lm, lr=0.05)
    losses = []
    for _ in range(30):
        lm.zero_grad()
        s, n, _, _ = lm.objective(batch())
        opt.step()
        losses.append(s / n)
    assert model.input.embed.params["W"] is E0 and not np.allclose(E0, before)
    assert any(not np.allclose(W0[k], v) for k, v in model.rnn.state_dict().items())
    assert losses[-1] < 0.5 * losses[0]                      # it learns the tiny batch
    assert not any(k.startswith(("next", "previous")) for k in model.state_dict())   # heads stay outside
    assert {k for k in lm.state_dict() if k.startswith(("next", "previous"))} == {
        "next.W", "next.b", "previous.W", "previous.b"}


def test_pretrainer_edge_cases():
    lm = LanguageModelPretrainer(classifier())
    s, n, metrics, _ = lm.objective(batch(np.ones(B, np.int64)))          # one word each: nothing to predict
    assert (s, n, metrics["correct"]) == (0.0, 0, 0)
    assert all(np.all(g == 0) for _, _, g in lm.named_parameters())
    with pytest.raises(InputError, match="model: expected a model whose input is a word embedding"):
        LanguageModelPretrainer(ManyToOne(input_size=3, num_outputs=2, hidden_size=4))


# -- embedding dropout in the models ----------------------------------------------------------------
def test_embedding_dropout_models():
    m = classifier(embedding_dropout=0.3, dtype="float32")
    assert type(m.input.embed).__name__ == "EmbeddingDropout" and m.config()["embedding_dropout"] == 0.3
    assert "embedding_dropout" not in classifier().config()                 # files stay as they were
    twin = build(m.config())
    twin.load_state_dict(m.state_dict())
    plain = classifier(dtype="float32")
    plain.load_state_dict(m.state_dict())
    x = batch()["x"]
    for mm in (m, twin, plain):
        mm.eval()
    y = m.infer(x, lengths=LENGTHS)[0]                                     # (B, 2)
    np.testing.assert_array_equal(y, plain.infer(x, lengths=LENGTHS)[0])   # evaluation: no dropout
    np.testing.assert_array_equal(y, twin.infer(x, lengths=LENGTHS)[0])
    m.train()
    assert not np.allclose(m.infer(x, lengths=LENGTHS)[0], m.infer(x, lengths=LENGTHS)[0])   # fresh masks
    lm = ManyToMany(vocab_size=V, embedding_dim=E, hidden_size=H, embedding_dropout=0.5, seed=1)
    assert type(lm.input.embed).__name__ == "EmbeddingDropout"
    for bad, words in [(dict(embedding_dropout=1.0), "[0, 1)"), (dict(embedding_dropout=-0.1), "embedding_dropout")]:
        with pytest.raises(InputError, match="embedding_dropout"):
            classifier(**bad)
    with pytest.raises(InputError, match="embedding_dim given"):
        ManyToOne(input_size=3, num_outputs=2, hidden_size=4, embedding_dropout=0.2)


def test_embedding_dropout_gradcheck_with_fixed_masks():
    model = classifier(embedding_dropout=0.4)
    objective = model.objective

    def same_masks(*args, **kwargs):
        model.input.embed.rng = np.random.default_rng(7)
        return objective(*args, **kwargs)

    model.objective = same_masks
    check_objective(model, batch())


# -- the command line -------------------------------------------------------------------------------
def test_cli_pretrain_embedding_dropout_and_ensemble(tmp_path, sentiment_tsv, capsys):
    runs = []
    for seed, extra in ((0, ["--pretrain-epochs", 1, "--embedding-dropout", 0.2]), (1, [])):
        rd = tmp_path / f"c{seed}"
        code, out, _ = run(capsys, "train", "classify", "--data", sentiment_tsv, *TINY, "--steps", 20,
                           "--seed", seed, "--run", rd, *extra)
        assert code == 0
        assert ("pretraining the embedding and recurrent layers" in out) == bool(extra)
        assert ("language-model loss (nats/word): training " in out) == bool(extra)
        runs.append(rd)
    with open(runs[0] / "run.json") as f:
        assert json.load(f)["args"]["embedding_dropout"] == 0.2
    single = [json.loads(run(capsys, "evaluate", rd, "--data", sentiment_tsv, "--json")[1]) for rd in runs]
    code, out, _ = run(capsys, "evaluate", runs[0], "--ensemble", runs[1], "--data", sentiment_tsv, "--json")
    both = json.loads(out)
    assert code == 0 and both["runs"] == 2 and both["count"] == 240 and "runs" not in single[0]
    code, out, _ = run(capsys, "evaluate", runs[0], "--ensemble", runs[0], "--data", sentiment_tsv, "--json")
    assert json.loads(out)["accuracy"] == single[0]["accuracy"]        # a run with itself: the same votes
    code, out, _ = run(capsys, "predict", runs[0], "not good at all", "--ensemble", runs[1])
    label, p, text = out.strip().split("\t")
    assert code == 0 and label in ("neg", "pos") and 0.5 <= float(p) <= 1 and text == "not good at all"


def test_cli_errors_one_line(tmp_path, sentiment_tsv, text_file, capsys):
    rd = tmp_path / "c"
    one_line_error(*run(capsys, "train", "classify", "--data", sentiment_tsv, *TINY, "--steps", 2,
                        "--embedding-dropout", 1.5, "--run", rd)[::2], "--embedding-dropout", "1.5")
    one_line_error(*run(capsys, "train", "classify", "--data", sentiment_tsv, *TINY, "--steps", 2,
                        "--pretrain-epochs", -1, "--run", rd)[::2], "--pretrain-epochs", "-1")
    assert run(capsys, "train", "classify", "--data", sentiment_tsv, *TINY, "--steps", 2, "--run", rd)[0] == 0
    lm = tmp_path / "lm"
    assert run(capsys, "train", "lm", "--text", text_file, *TINY, "--steps", 2, "--batch", 2,
               "--seq-len", 8, "--embedding-dropout", 0.1, "--run", lm)[0] == 0
    one_line_error(*run(capsys, "evaluate", lm, "--ensemble", rd, "--data", text_file)[::2], "--ensemble", "lm")
    one_line_error(*run(capsys, "evaluate", rd, "--ensemble", lm, "--data", sentiment_tsv)[::2], "'lm' run")
    one_line_error(*run(capsys, "predict", rd, "x", "--ensemble", tmp_path / "none")[::2], "none")
    other = tmp_path / "other.tsv"
    other.write_text("text\tlabel\n" + "".join(f"w{i} x\t{'a' if i % 2 else 'b'}\n" for i in range(40)))
    rd2 = tmp_path / "c2"
    assert run(capsys, "train", "classify", "--data", other, *TINY, "--steps", 2, "--run", rd2)[0] == 0
    one_line_error(*run(capsys, "evaluate", rd, "--ensemble", rd2, "--data", sentiment_tsv)[::2],
                   "--ensemble", "classes")


# -- naive-Bayes initialised embedding --------------------------------------------------------------
def test_nb_ratios_by_hand():
    from rnnkit.cli.classify import nb_embedding, nb_ratios
    seqs = [np.array([2, 3, 3]), np.array([2, 4]), np.array([4, 5])]       # word 3 twice: counted once
    r = nb_ratios(seqs, [1, 1, 0], V=6, C=2)                               # (6, 1): class 1 against 0
    p = 1 + np.array([0, 0, 2, 1, 1, 0.0])                                 # texts of class 1 with w
    q = 1 + np.array([0, 0, 0, 0, 1, 1.0])
    np.testing.assert_allclose(r[:, 0], np.log(p / p.sum()) - np.log(q / q.sum()), rtol=1e-12)
    assert r[2, 0] > 0 > r[5, 0] and r[0, 0] == pytest.approx(np.log(q.sum() / p.sum()))
    r3 = nb_ratios(seqs, [0, 1, 2], V=6, C=3)                              # one column per class
    assert r3.shape == (6, 3) and r3[3, 0] > 0 and r3[5, 2] > 0 and r3[3, 2] < 0
    model = classifier(dtype="float32")
    before = model.input.embed.params["W"].copy()
    nb_embedding(model, seqs, [1, 1, 0], 2)
    W = model.input.embed.params["W"]
    np.testing.assert_allclose(W[:, 0], nb_ratios(seqs, [1, 1, 0], V, 2)[:, 0], rtol=1e-6)
    np.testing.assert_array_equal(W[:, 1:], before[:, 1:])


def test_cli_nb_init(tmp_path, sentiment_tsv, capsys):
    rd = tmp_path / "nb"
    code, out, _ = run(capsys, "train", "classify", "--data", sentiment_tsv, *TINY, "--steps", 30,
                       "--embedding-init", "nb", "--lr", 0.01, "--run", rd)
    assert code == 0 and "validation accuracy" in out
    three = tmp_path / "three.tsv"
    three.write_text("text\tlabel\n" + "".join(f"w{i % 7} x\t{'abc'[i % 3]}\n" for i in range(60)))
    one_line_error(*run(capsys, "train", "classify", "--data", three, "--hidden", 4, "--embedding", 2,
                        "--quiet", "--steps", 2, "--embedding-init", "nb", "--run", tmp_path / "t")[::2],
                   "--embedding-init nb", ">= 3", "got 2")
