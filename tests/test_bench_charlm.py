"""benchmarks/bench_charlm.py runs end to end on a tiny config (not a timing test)."""
import importlib.util
import json
import os

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "bench_charlm.py")
TINY = ["--hidden", "16", "--embed", "8", "--batch", "2", "--seq-len", "8", "--steps", "2",
        "--repeat", "1", "--warmup", "1", "--text", ""]


def load_script():
    spec = importlib.util.spec_from_file_location("bench_charlm", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_main_writes_json_with_memory(tmp_path, capsys):
    out = tmp_path / "charlm.json"
    assert load_script().main(TINY + ["--no-torch", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res) == {"config", "machine", "rnnkit"}
    assert res["config"]["V"] == 65 and res["config"]["H"] == 16
    r = res["rnnkit"]
    for key in ("chars_per_s", "step_ms", "first_loss", "last_loss", "peak_mb", "baseline_mb"):
        assert isinstance(r[key], float), key
    assert r["chars_per_s"] > 0 and r["peak_mb"] >= 0
    assert "chars/s" in capsys.readouterr().out


def test_torch_twin_starts_from_rnnkit_weights(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "charlm.json"
    assert load_script().main(TINY + ["--no-memory", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["ratio"] > 0
    assert res["torch"]["first_loss"] == pytest.approx(res["rnnkit"]["first_loss"], rel=1e-5)


def test_isolated_rounds_run_each_framework_in_its_own_process(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "charlm.json"
    assert load_script().main(TINY + ["--no-memory", "--isolate", "--repeat", "2", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["config"]["isolate"] is True
    for name in ("rnnkit", "torch"):
        assert len(res[name]["round_s"]) == 2 and res[name]["chars_per_s"] > 0
    # every child starts from the same initial weights and data: the same first and last losses
    assert res["torch"]["first_loss"] == pytest.approx(res["rnnkit"]["first_loss"], rel=1e-5)
    assert res["torch"]["last_loss"] == pytest.approx(res["rnnkit"]["last_loss"], rel=1e-4)
