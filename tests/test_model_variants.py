"""The four architectures with the layer variants: minGRU / minLSTM cells and the options of
rnnkit.layers.variants, checked end to end by finite differences, step-by-step generation,
config round trips and the exports that must refuse them."""
import numpy as np
import pytest

import rnnkit
from rnnkit.errors import InputError
from rnnkit.io.keras import to_keras
from rnnkit.io.model_file import load, save
from rnnkit.models import build
from rnnkit.models.many_to_many import ManyToMany
from rnnkit.models.many_to_one import ManyToOne
from rnnkit.models.one_to_many import OneToMany

from test_models import LENGTHS, B, D, T, V, check_objective, ids, m2m_batch, rng

# options that are deterministic in evaluation, so objective(train=False) is the trained function
CASES = {
    "mingru-2layers": dict(cell="mingru", num_layers=2),
    "minlstm": dict(cell="minlstm"),
    "ln-lstm-learn-init": dict(cell="lstm", layer_norm=True, learn_init=True),
    "ln-gru-orthogonal": dict(cell="gru", layer_norm=True, init="orthogonal"),
    "irnn": dict(cell="rnn", nonlinearity="relu", init="identity", init_gain=0.5),
    "lstm-forget-bias-peepholes": dict(cell="lstm", forget_bias=2.0, peepholes=True),
}


def learned(model):
    """Give learnable initial states trained-looking values (at h0 = 0, LN of h W_h = 0 is so curved
    that central differences with eps = 1e-5 are off by 1e-5 relative; the gradient itself is exact)."""
    for name, p, _ in model.named_parameters():
        if name.endswith(("h0", "c0")):
            p[...] = rng().uniform(0.1, 0.5, p.shape)
    return model


@pytest.mark.parametrize("case", sorted(CASES))
def test_many_to_many_variants_gradcheck(case):
    model = ManyToMany(vocab_size=V, embedding_dim=D, hidden_size=5, dtype="float64", **CASES[case])
    check_objective(learned(model), m2m_batch(model, "ids", True))


@pytest.mark.parametrize("case", sorted(CASES))
def test_many_to_one_variants_gradcheck(case):
    model = ManyToOne(vocab_size=V, embedding_dim=D, hidden_size=4, num_outputs=3, dtype="float64",
                      **CASES[case])
    check_objective(learned(model), {"x": ids(), "y": np.array([0, 2, 1]), "lengths": LENGTHS})


@pytest.mark.parametrize("case", ["mingru-2layers", "minlstm", "ln-lstm-learn-init", "ln-gru-orthogonal"])
def test_step_equals_full_forward(case):
    model = ManyToMany(vocab_size=V, embedding_dim=D, hidden_size=6, dtype="float64", **CASES[case]).eval()
    x = ids()
    y_full, _ = model.infer(x)
    state = None
    for t in range(T):
        y_t, state = model.step(x[t], state)
        np.testing.assert_allclose(y_t, y_full[t], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_and_model_file_round_trip(tmp_path, case):
    model = ManyToOne(vocab_size=V, embedding_dim=D, hidden_size=4, num_outputs=2, seed=3, **CASES[case])
    path = tmp_path / "m.rnnkit"
    save(model, path)
    back = load(path)
    x = ids()
    np.testing.assert_array_equal(back.infer(x)[0], model.infer(x)[0])
    assert back.config() == model.config() and type(build(model.config())) is ManyToOne


def test_training_only_regularisers_change_training_not_evaluation():
    kw = dict(vocab_size=V, embedding_dim=D, hidden_size=6, num_outputs=2, seed=1)
    plain = ManyToOne(cell="lstm", **kw)
    reg = ManyToOne(cell="lstm", recurrent_dropout=0.5, input_dropout=0.3, weight_drop=0.4, **kw)
    for (_, p, _), (_, q, _) in zip(plain.named_parameters(), reg.named_parameters()):
        np.testing.assert_array_equal(p, q)
    batch = {"x": ids(), "y": np.array([0, 1, 1])}
    assert reg.objective(batch, train=True)[0] != pytest.approx(plain.objective(batch, train=True)[0])
    plain.eval(), reg.eval()
    assert reg.objective(batch, train=False)[0] == pytest.approx(plain.objective(batch, train=False)[0])


def test_lstm_forget_gates_start_open_in_models():
    m = ManyToMany(vocab_size=V, embedding_dim=D, hidden_size=8)
    P = m.rnn.children["l0"].params
    f = rnnkit.functional.sigmoid(P["b_x"][8:16] + P["b_h"][8:16])
    assert f.mean() > 0.65
    m0 = ManyToMany(vocab_size=V, embedding_dim=D, hidden_size=8, forget_bias=0.0)
    assert np.abs(m0.rnn.children["l0"].params["b_x"]).max() <= 1 / np.sqrt(8)


def test_minimal_cells_refuse_what_they_cannot_do():
    with pytest.raises(InputError, match="bidirectional"):
        ManyToOne(vocab_size=V, embedding_dim=D, hidden_size=4, num_outputs=2, cell="mingru",
                  bidirectional=True)
    with pytest.raises(InputError, match="dropout"):
        ManyToMany(vocab_size=V, embedding_dim=D, hidden_size=4, cell="minlstm", num_layers=2, dropout=0.2)
    with pytest.raises(InputError, match="layer_norm: not an option of cell='mingru'"):
        ManyToMany(vocab_size=V, embedding_dim=D, hidden_size=4, cell="mingru", layer_norm=True)
    with pytest.raises(InputError, match="OneToMany"):
        OneToMany(input_size=3, vocab_size=V, embedding_dim=D, hidden_size=4, cell="mingru")
    with pytest.raises(InputError, match="forget_bias"):
        ManyToMany(vocab_size=V, embedding_dim=D, hidden_size=4, cell="gru", forget_bias=1.0)


@pytest.mark.parametrize("kw", [dict(layer_norm=True), dict(zoneout=0.1), dict(learn_init=True)])
def test_exports_refuse_rnnkit_only_options(tmp_path, kw):
    layer = rnnkit.LSTM(D, 5, **kw)
    with pytest.raises(InputError, match=next(iter(kw))):
        to_keras(layer)
    pytest.importorskip("onnx")
    from rnnkit.io.onnx import export_onnx
    with pytest.raises(InputError, match=next(iter(kw))):
        export_onnx([layer], tmp_path / "m.onnx", input="features")
    assert not (tmp_path / "m.onnx").exists()


def test_training_only_options_still_export(tmp_path):
    layer = rnnkit.GRU(D, 5, recurrent_dropout=0.3, weight_drop=0.2)
    assert len(to_keras(layer)) == 3
    x = rng().standard_normal((T, B, D)).astype(np.float32)
    assert layer.eval().infer(x)[0].shape == (T, B, 5)
