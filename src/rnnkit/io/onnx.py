"""ONNX export and import of rnnkit pipelines: [Embedding] -> RNN/LSTM/GRU / Linear ... -> [Softmax].

A pipeline is a list of modules applied in turn, time-major (axis 0 time T, axis 1 batch B):

    ids (T, B) int64 -Embedding-> (T, B, E) -RNN/LSTM/GRU-> (T, B, dirs*H) -Linear-> (T, B, V) -Softmax->

or features (T, B, D) when the first module is not an Embedding. Dropout modules are skipped
(inference). A model passes its list of child modules.

Exported graph (export_onnx):
    inputs   "ids" int64 [T, B] or "features" [T, B, D]; "sequence_lens" int32 [B] (lengths=True);
             "m{i}.h_0", and "m{i}.c_0" for an LSTM, [L*dirs, B, H] (initial_state=True)
    outputs  "output" [T, B, F]; "m{i}.h_n" (and "m{i}.c_n") [L*dirs, B, H] for each recurrent
             module i, in PyTorch's state layout [l0, l0_reverse, l1, ...]
    Embedding  Gather(W, ids)      Linear  MatMul(x, W) + b      Softmax  Softmax(axis=-1)
    layer k of a recurrent module: one ONNX RNN/LSTM/GRU node, whose Y [T, dirs, B, H] goes
             -Transpose(0, 2, 1, 3)-> [T, B, dirs, H] -Reshape(0, 0, -1)-> [T, B, dirs*H]

Weights of direction d (rnnkit/PyTorch gate order; weight_ih = W_x^T (G*H, D), weight_hh = W_h^T):
    ONNX W[d] = π(weight_ih) [G*H, D]    R[d] = π(weight_hh) [G*H, H]    B[d] = [π(b_x), π(b_h)] [2*G*H]
    π reorders the gate blocks: LSTM i, f, g, o -> i, o, f, c;  GRU r, z, n -> z, r, h;  RNN: none
    LSTM peepholes p (3, H), rows i, f, o -> P[d] = [p_i, p_o, p_f] [3*H]
    GRU reset_after=True (PyTorch) -> linear_before_reset=1; reset_after=False (Cho) -> 0
    RNN nonlinearity tanh / relu / sigmoid -> activations Tanh / Relu / Sigmoid
LSTM projections (proj_size) have no ONNX equivalent and raise InputError; so do batch_first layers
(build them time-major: the weights are the same).

Import (import_onnx) reads graphs of the same kinds: Gather on a constant table (Embedding);
RNN/LSTM/GRU nodes, where consecutive nodes of one kind, size, direction and activation become ONE
stacked rnnkit layer (num_layers = their count; a stack of separate 1-layer modules computes the
same); MatMul [+ Add] or Gemm on constants (Linear); Softmax over the last axis. Between them only
layout ops (Transpose, Reshape, Squeeze, Unsqueeze, Identity, Cast, Dropout) are allowed, and their
effect on the shape is followed symbolically: the graph input's axis 0 must reach every recurrent
node as time and axis 1 as batch (batch-first graphs are refused). Shape computations are ignored.
Imported layers start from a zero state; an initial_h/initial_c that is a nonzero constant is
refused. Every graph the importer cannot follow raises FileFormatError naming the node.
onnx.load only parses protobuf: nothing in the file is executed.

run_pipeline(modules, x, lengths) runs such a list with NumPy alone (inference, zero initial
states). float64 modules export to valid double-precision graphs, but onnxruntime's CPU RNN, LSTM
and GRU kernels run float32 only. onnx is imported on first use: rnnkit works without it.
"""

import numpy as np

from .._checks import check_array, check_choice, check_float, check_int
from ..errors import DTypeError, InputError, ShapeError
from ..functional import softmax
from ..layers import Dropout, Embedding, Linear, Module, RecurrentNet
from ..layers.variants import nonstandard
from .safe import atomic_write_bytes

DEFAULT_OPSET = 17
_ORDER = {"rnn": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}     # ONNX block j = rnnkit block _ORDER[j]
_PEEP = [0, 2, 1]                                                 # i, f, o <-> i, o, f (its own inverse)
_OPS = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
_ACTS = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid"}


class Softmax(Module):
    """y = softmax(x) over the last axis; backward dx = y ⊙ (dy - Σ dy ⊙ y)."""

    def forward(self, x):
        """x (..., F) float -> y (..., F), cache."""
        x = check_array("x", x)
        if x.dtype not in (np.float32, np.float64):
            raise DTypeError(f"x: expected dtype float32 or float64, got {x.dtype.name}")
        y = softmax(x, axis=-1)                                             # (..., F)
        return y, y

    def backward(self, dy, cache):
        """dy (..., F) -> dx (..., F)."""
        y = cache
        dy = check_float("dy", dy, y.dtype, shape=y.shape)
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))             # (..., F)


def _onnx():
    """The onnx package, imported on first use."""
    try:
        import onnx
    except ImportError:
        raise ImportError("rnnkit's ONNX export and import need the onnx package "
                          "(pip install onnx, or the rnnkit[onnx] extra)") from None
    return onnx


def _reorder(a, order):
    """The gate blocks of a (G*H, ...) along axis 0, taken in `order`."""
    blocks = np.split(a, len(order), axis=0)
    return np.concatenate([blocks[j] for j in order], axis=0)


def _sizes(m):
    """(input size or None, output size or None) of a pipeline module."""
    if isinstance(m, Embedding):
        return None, m.E
    if isinstance(m, Linear):
        return m.D, m.H
    if isinstance(m, RecurrentNet):
        return m.input_size, m.dirs * (m.proj_size or m.hidden_size)
    return None, None


def _check_pipeline(modules, export=True):
    """The modules to run or export (Dropout removed), checked in kind, order, sizes and dtype."""
    if not isinstance(modules, (list, tuple)) or not modules:
        raise InputError(f"modules: expected a non-empty list of rnnkit modules, got {modules!r:.80}")
    kinds = (Embedding, Linear, RecurrentNet, Softmax, Dropout)
    out, size, dtypes = [], None, set()
    for i, m in enumerate(modules):
        if not isinstance(m, kinds):
            raise InputError(f"modules[{i}]: expected Embedding, RNN, LSTM, GRU, Linear, Dropout or "
                             f"Softmax, got {type(m).__name__}")
        if isinstance(m, Dropout):
            continue
        if isinstance(m, Embedding) and out:
            raise InputError(f"modules[{i}]: an Embedding can only be the first module")
        if out and isinstance(out[-1], Softmax):
            raise InputError(f"modules[{i}]: nothing can follow a Softmax (it must be last)")
        if export and isinstance(m, RecurrentNet) and m.proj_size:
            raise InputError(f"modules[{i}]: LSTM proj_size={m.proj_size}: ONNX LSTM has no projection")
        if export and isinstance(m, RecurrentNet) and nonstandard(m):
            raise InputError(f"modules[{i}]: {', '.join(nonstandard(m))}: rnnkit-only options with no ONNX "
                             f"RNN/LSTM/GRU counterpart; export a layer without them")
        if export and isinstance(m, RecurrentNet) and m.batch_first:
            raise InputError(f"modules[{i}]: batch_first=True: ONNX export is time-major; build the "
                             f"layer with batch_first=False (same weights)")
        d_in, d_out = _sizes(m)
        if d_in is not None and size is not None and d_in != size:
            raise ShapeError(f"modules[{i}]: expected input size {size} (the previous module's "
                             f"output size), got {d_in}")
        size = d_out or size
        dtypes |= {m.dtype} if hasattr(m, "dtype") else set()
        out.append(m)
    if not out:
        raise InputError("modules: expected at least one module other than Dropout, got none")
    if len(dtypes) > 1:
        raise DTypeError(f"modules: expected one dtype for all modules, got {sorted(map(str, dtypes))}")
    return out, (dtypes.pop() if dtypes else np.dtype(np.float32)), size


class _Graph:
    """The nodes, initializers, inputs and outputs of the graph being written."""

    def __init__(self, onnx, dtype, T, B, lengths, initial_state):
        self.onnx, self.T, self.B = onnx, T, B
        self.lengths, self.initial_state = lengths, initial_state
        self.elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        self.nodes, self.inits, self.inputs, self.outputs = [], {}, [], []

    def const(self, name, a):
        if name not in self.inits:
            self.inits[name] = self.onnx.numpy_helper.from_array(np.ascontiguousarray(a), name)
        return name

    def node(self, op, ins, outs, **attrs):
        while ins and ins[-1] == "":                 # trailing optional inputs left out
            ins = ins[:-1]
        self.nodes.append(self.onnx.helper.make_node(op, ins, outs, name=outs[0], **attrs))
        return outs[0]

    def value(self, where, name, shape, elem=None):
        where.append(self.onnx.helper.make_tensor_value_info(name, elem or self.elem, shape))


def _layer_weights(m, k, sd):
    """ONNX W [dirs, G*H, D], R [dirs, G*H, H], B [dirs, 2*G*H], P [dirs, 3*H] or None of layer k."""
    order, W, R, Bs, P = _ORDER[m.mode], [], [], [], []
    for d in range(m.dirs):
        s = f"_l{k}" + ("_reverse" if d else "")
        W.append(_reorder(sd["weight_ih" + s], order))
        R.append(_reorder(sd["weight_hh" + s], order))
        Bs.append(np.concatenate([_reorder(sd["bias_ih" + s], order), _reorder(sd["bias_hh" + s], order)]))
        if m.peepholes:
            P.append(sd["peephole" + s][_PEEP].reshape(-1))
    return np.stack(W), np.stack(R), np.stack(Bs), (np.stack(P) if P else None)


def _export_recurrent(g, m, x, p):
    """One ONNX node per layer, Y reshaped to [T, B, dirs*H] between; final states to p+"h_n"."""
    H, n, names = m.hidden_size, m.num_layers * m.dirs, ["h", "c"] if m.mode == "lstm" else ["h"]
    attrs = dict(hidden_size=H, direction="bidirectional" if m.dirs == 2 else "forward")
    if m.mode == "rnn":
        attrs["activations"] = [_ACTS[m.nonlinearity]] * m.dirs
    if m.mode == "gru":
        attrs["linear_before_reset"] = int(m.reset_after)
    for s in names if g.initial_state else []:
        g.value(g.inputs, f"{p}{s}_0", [n, g.B, H])
    sd, finals = m.torch_state_dict(), {s: [] for s in names}
    for k in range(m.num_layers):
        q = f"{p}l{k}."
        W, R, Bias, P = _layer_weights(m, k, sd)
        ins = [x, g.const(q + "W", W), g.const(q + "R", R), g.const(q + "B", Bias),
               "sequence_lens" if g.lengths else ""]
        for s in names:
            ins.append(g.node("Slice", [f"{p}{s}_0", g.const(f"{q}start", np.array([k * m.dirs])),
                                        g.const(f"{q}end", np.array([(k + 1) * m.dirs])),
                                        g.const("axis0", np.array([0]))], [f"{q}{s}_0"])
                       if g.initial_state else "")
        if P is not None:
            ins.append(g.const(q + "P", P))
        g.node(_OPS[m.mode], ins, [q + "Y"] + [f"{q}{s}_n" for s in names], **attrs)
        for s in names:
            finals[s].append(f"{q}{s}_n")
        y = g.node("Transpose", [q + "Y"], [q + "Y_t"], perm=[0, 2, 1, 3])      # [T, B, dirs, H]
        x = g.node("Reshape", [y, g.const("shape_TB_", np.array([0, 0, -1]))], [q + "out"])
    for s in names:
        g.node("Concat", finals[s], [f"{p}{s}_n"], axis=0)                     # [L*dirs, B, H]
        g.value(g.outputs, f"{p}{s}_n", [n, g.B, H])
    return x


def _export_module(g, m, x, p):
    """Add the nodes of one module reading tensor x; return its output tensor's name."""
    if isinstance(m, Embedding):
        return g.node("Gather", [g.const(p + "W", m.W), x], [p + "out"], axis=0)
    if isinstance(m, Linear):
        y = g.node("MatMul", [x, g.const(p + "W", m.W)], [p + "xW"])
        return g.node("Add", [y, g.const(p + "b", m.b)], [p + "out"]) if m.b is not None else y
    if isinstance(m, Softmax):
        return g.node("Softmax", [x], [p + "out"], axis=-1)
    return _export_recurrent(g, m, x, p)


def export_onnx(modules, path, *, input="ids", seq_len=None, batch=None, softmax=False,
                lengths=True, initial_state=False, opset=DEFAULT_OPSET):
    """Write a pipeline of rnnkit modules to `path` as an ONNX model, checked by onnx.checker."""
    onnx = _onnx()
    check_choice("input", input, ("ids", "features"))
    opset = check_int("opset", opset, 13, onnx.defs.onnx_opset_version())
    T = "T" if seq_len is None else check_int("seq_len", seq_len, 1)
    B = "B" if batch is None else check_int("batch", batch, 1)
    mods, dtype, F = _check_pipeline(modules)
    if (input == "ids") != isinstance(mods[0], Embedding):
        raise InputError(f"input: 'ids' needs an Embedding first and 'features' a first module that "
                         f"is not one; got input={input!r} and {type(mods[0]).__name__} first")
    if softmax and isinstance(mods[-1], Softmax):
        raise InputError("softmax: expected False when the modules already end in a Softmax, got True")
    mods = mods + [Softmax()] if softmax else mods
    g = _Graph(onnx, dtype, T, B, bool(lengths), bool(initial_state))
    if input == "ids":
        g.value(g.inputs, "ids", [T, B], onnx.TensorProto.INT64)
    else:
        g.value(g.inputs, "features", [T, B, _sizes(mods[0])[0]])
    if g.lengths:
        g.value(g.inputs, "sequence_lens", [B], onnx.TensorProto.INT32)
    x, index = input, [i for i, m in enumerate(modules) if not isinstance(m, Dropout)] + [len(modules)]
    for i, m in zip(index, mods):                     # names "m{i}." use positions in `modules`
        x = _export_module(g, m, x, f"m{i}.")
    g.node("Identity", [x], ["output"])
    g.value(g.outputs, "output", [T, B, F])
    graph = onnx.helper.make_graph(g.nodes, "rnnkit", g.inputs, g.outputs[-1:] + g.outputs[:-1],
                                   list(g.inits.values()))
    ops = [onnx.helper.make_opsetid("", opset)]
    model = onnx.helper.make_model(graph, opset_imports=ops, producer_name="rnnkit",
                                   ir_version=onnx.helper.find_min_ir_version_for(ops))
    onnx.checker.check_model(model, full_check=True)
    atomic_write_bytes(path, model.SerializeToString())


# -- import ---------------------------------------------------------------------------------------
def import_onnx(path):
    """Read an ONNX pipeline (see the module docstring) into a list of rnnkit modules."""
    from .onnx_import import read_onnx
    return read_onnx(path)


def run_pipeline(modules, x, lengths=None, return_states=False):
    """Run the modules in turn (inference, zero initial states) -> output [, final states per RNN]."""
    mods = _check_pipeline(modules, export=False)[0]
    states = []
    for m in mods:
        if isinstance(m, RecurrentNet):
            was = m.training
            m.eval()                                      # no dropout between layers
            try:
                x, state = m.infer(x, None, lengths)
            finally:
                m.train(was)
            states.append(state)
        else:
            x = m(x)
    return (x, states) if return_states else x
