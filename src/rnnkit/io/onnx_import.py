"""ONNX import: walk an ONNX graph's chain of data tensors into rnnkit modules.

What is read (operators, attributes, the glue between them) is described in rnnkit.io.onnx; every
flaw of the file raises FileFormatError naming the node. Runs with NumPy and the onnx package alone.
"""
import numpy as np

from .._checks import check_file_path
from ..errors import FileFormatError
from ..layers import GRU, LSTM, RNN, Embedding, Linear
from .onnx import _ACTS, _ORDER, _PEEP, Softmax, _onnx, _reorder

_UNORDER = {"rnn": [0], "lstm": [0, 2, 3, 1], "gru": [1, 0, 2]}   # rnnkit block j = ONNX block _UNORDER[j]
_CLASSES = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}
_DEFAULT_ACTS = {"LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"]}
_GLUE = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Cast", "Dropout"}
_FLOATS = (1, 10, 11, 16)                                          # float, float16, double, bfloat16
_STATE_GLUE = {"Slice", "Expand", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Cast", "Tile"}


def _load_model(onnx, path):
    """Parse and check an ONNX file; every flaw raises FileFormatError, a bad path InputError."""
    path = check_file_path("path", path)
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model)
        consts = _constants(onnx, model.graph)
    except Exception as e:                          # protobuf DecodeError, ValidationError, ...
        raise FileFormatError(f"{path}: not a valid ONNX model ({type(e).__name__}: "
                              f"{str(e).strip()[:200]})") from None
    return path, model, consts


def _constants(onnx, graph):
    """name -> ndarray of every initializer and Constant node output."""
    consts = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            v = onnx.helper.get_attribute_value(node.attribute[0])
            consts[node.output[0]] = (onnx.numpy_helper.to_array(v)
                                      if isinstance(v, onnx.TensorProto) else np.asarray(v))
    return consts


class _Reader:
    """Walks the graph's one chain of data tensors, from the input to the output, into items."""

    def __init__(self, onnx, path, model, consts):
        self.onnx, self.path, self.consts, graph = onnx, path, consts, model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.producers = {o: n for n in graph.node for o in n.output}
        inits = {t.name for t in graph.initializer}
        inputs = [v for v in graph.input if v.name not in inits]
        if not inputs:
            raise FileFormatError(f"{path}: the graph has no input")
        first = inputs[0]
        rank = len(first.type.tensor_type.shape.dim)
        self.floats = first.type.tensor_type.elem_type in _FLOATS
        self.shape = tuple(f"d{i}" for i in range(rank - self.floats)) + ("?",) * self.floats
        self.chain, self.data, self.states = first.name, {first.name}, set()
        self.items, self.last = [], None
        self.outputs = [o.name for o in graph.output]

    def fail(self, node, why):
        raise FileFormatError(f"{self.path}: node {node.name or node.output[0]!r} ({node.op_type}): {why}")

    def const(self, node, i, ndim=None, weights=False):
        """The constant at input i of node (None when left out); weights must be float32/float64."""
        name = node.input[i] if i < len(node.input) else ""
        if not name:
            return None
        if name not in self.consts:
            self.fail(node, f"input {i} ({name!r}) must be a constant")
        a = self.consts[name]
        if ndim is not None and a.ndim != ndim:
            self.fail(node, f"input {i} must be {ndim}-d, got shape {a.shape}")
        if weights and a.dtype not in (np.float32, np.float64):
            self.fail(node, f"input {i}: weights must be float32 or float64, got {a.dtype}")
        return a

    def attrs(self, node):
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def read(self, graph):
        """Fill self.items from the graph's nodes (in their topological order)."""
        for node in graph.node:
            ins = [n for n in node.input if n in self.data]
            states = [n for n in node.input if n in self.states]
            if node.op_type in ("Shape", "Size") or not ins and not states:
                continue
            if states and not ins:                   # final states on their way to an output
                self.states |= set(node.output)
                continue
            if ins != [self.chain] or states:
                self.fail(node, f"reads {ins}; only one chain of layers from the input is supported "
                                f"(current tensor {self.chain!r})")
            op = node.op_type
            if op in _GLUE:
                self.shape, last = _glue_shape(self, node, self.attrs(node)), None
            else:
                last = self.layer(node, op, self.attrs(node))
            self.data.add(node.output[0])
            self.states |= set(node.output[1:])     # Y_h, Y_c of a recurrent node
            self.chain, self.last = node.output[0], last
        if self.chain not in self.outputs or not self.items:
            raise FileFormatError(f"{self.path}: the graph output is not the end of a chain of layers "
                                  f"(chain ends at {self.chain!r}, outputs {self.outputs})")
        return self.items

    def expect_features(self, node, D):
        if len(self.shape) != 3 or self.shape[:2] != ("d0", "d1") or self.shape[2] not in (D, "?"):
            self.fail(node, f"expected a time-major input (input axis 0, input axis 1, {D}), got "
                            f"{self.shape} (batch-first graphs are not supported)")

    def layer(self, node, op, at):
        """Append (or extend) the item of one compute node and return it."""
        if self.items and self.items[-1][0] == "softmax":
            self.fail(node, "only layout ops may follow a Softmax")
        if op == "Gather":
            W = self.const(node, 0, ndim=2, weights=True)
            if node.input[1] != self.chain or at.get("axis", 0) != 0 or self.items:
                self.fail(node, "only Gather(table, ids) as the first layer is supported")
            self.items.append(["embedding", W])
            self.shape += (W.shape[1],)
        elif op in ("MatMul", "Gemm"):
            self.linear(node, op, at)
        elif op == "Add":
            b = self.const(node, 1 - list(node.input).index(self.chain))
            if not self.last or self.last[0] != "linear" or self.last[2] is not None \
                    or b.size != self.shape[-1]:
                self.fail(node, "Add is supported only as the bias right after a MatMul")
            self.last[2] = b.reshape(-1)
        elif op == "Softmax":
            axis = at.get("axis", -1 if self.opset >= 13 else 1)
            if axis % len(self.shape) != len(self.shape) - 1:
                self.fail(node, f"only a softmax over the last axis is supported, got axis={axis}")
            self.items.append(["softmax"])
        elif op in _CLASSES:
            spec, prev = _recurrent_spec(self, node, at), self.items[-1] if self.items else [None]
            if prev[0] == "recurrent" and prev[1][-1][0] == spec[0]:
                prev[1].append(spec)                # the next layer of the same stack
            else:
                self.items.append(["recurrent", [spec]])
        else:
            self.fail(node, "operator not supported; a pipeline holds Gather, RNN, LSTM, GRU, MatMul, "
                            "Add, Gemm, Softmax and layout ops " + ", ".join(sorted(_GLUE)))
        return self.items[-1]

    def linear(self, node, op, at):
        """MatMul(x, W) or Gemm(x, W, C) -> a Linear item (W (D, H), b (H,) or None)."""
        W = self.const(node, 1, ndim=2, weights=True)
        if op == "Gemm":
            if len(self.shape) != 2 or at.get("transA", 0) or at.get("alpha", 1.0) != 1.0 \
                    or at.get("beta", 1.0) != 1.0:
                self.fail(node, "only Gemm(x (N, D), W, b) with alpha = beta = 1, transA = 0")
            W = W.T if at.get("transB", 0) else W
        if node.input[0] != self.chain or self.shape[-1] not in (W.shape[0], "?"):
            self.fail(node, f"expected x (..., {W.shape[0]}) @ W, got x {self.shape}")
        b = self.const(node, 2) if op == "Gemm" else None
        if b is not None and b.size != W.shape[1]:
            self.fail(node, f"bias C of shape {b.shape}: expected {W.shape[1]} values")
        self.items.append(["linear", W, None if b is None else b.reshape(-1)])
        self.shape = self.shape[:-1] + (W.shape[1],)

    def check_zero_state(self, node, name):
        """Refuse an initial state that is not zero: imported layers start from zero state."""
        while name in self.producers and self.producers[name].op_type in _STATE_GLUE:
            name = self.producers[name].input[0]
        src = self.producers.get(name)
        if src is not None and src.op_type == "ConstantOfShape":
            v = self.attrs(src).get("value")
            if v is None or not np.any(self.onnx.numpy_helper.to_array(v)):
                return
        elif src is None or src.op_type == "Constant":
            if name not in self.consts or not np.any(self.consts[name]):
                return                               # zero, or a graph input the caller may give
        self.fail(node, f"initial state {name!r} is not zero; rnnkit imports zero initial states")


def _glue_shape(r, node, at):
    """The chain's symbolic shape after a layout op."""
    s, op = r.shape, node.op_type
    if op == "Transpose":
        perm = at.get("perm", list(range(len(s)))[::-1])
        return tuple(s[i] for i in perm)
    if op in ("Squeeze", "Unsqueeze"):
        axes = at.get("axes") if "axes" in at else r.const(node, 1)
        if axes is None:
            if op == "Unsqueeze":
                r.fail(node, "Unsqueeze needs axes")
            return tuple(d for d in s if d != 1)
        n = len(s) + (len(axes) if op == "Unsqueeze" else 0)
        axes = sorted(int(a) % n for a in np.ravel(axes))
        if op == "Squeeze":
            if any(s[a] != 1 for a in axes):
                r.fail(node, f"squeezes axes {axes} of {s} that are not 1")
            return tuple(d for i, d in enumerate(s) if i not in axes)
        out = list(s)
        for a in axes:
            out.insert(a, 1)
        return tuple(out)
    if op == "Reshape":
        return _reshape(r, node, s, [int(v) for v in r.const(node, 1, ndim=1)], at)
    if op == "Cast" and (at.get("to") in _FLOATS) != (r.items != [] or r.floats):
        r.fail(node, "a Cast between integer ids and floating-point values is not supported")
    return s


def _reshape(r, node, s, target, at):
    """Follow Reshape(shape=target): 0 copies an input axis, -1 takes the rest; symbols stay put."""
    if at.get("allowzero", 0) and 0 in target:
        r.fail(node, "allowzero=1 with a 0 in the shape is not supported")
    copied = [i for i, t in enumerate(target) if t == 0]
    if any(i >= len(s) for i in copied) or target.count(-1) > 1:
        r.fail(node, f"cannot reshape {s} to {target}")
    left = [d for i, d in enumerate(s) if i not in copied]
    known = int(np.prod([t for t in target if t > 0]))
    if any(isinstance(d, str) for d in left):
        r.fail(node, f"reshape of {s} to {target} merges the time or batch axis; not supported")
    total = int(np.prod(left))
    if (total % known if -1 in target else total != known):
        r.fail(node, f"cannot reshape {s} to {target}")
    return tuple(s[i] if t == 0 else (total // known if t == -1 else t) for i, t in enumerate(target))


def _recurrent_spec(r, node, at):
    """A recurrent node -> (merge key, input size, PyTorch-layout weights per direction)."""
    op = node.op_type
    W, R, Bias = (r.const(node, i, ndim=n, weights=True) for i, n in ((1, 3), (2, 3), (3, 2)))
    if W is None or R is None:
        r.fail(node, "inputs W and R are required")
    dirs = {"forward": 1, "bidirectional": 2}.get(_text(at.get("direction", "forward")))
    bad = [k for k in ("clip", "activation_alpha", "activation_beta") if k in at]
    bad += [k for k in ("input_forget", "layout") if at.get(k, 0)]
    if dirs is None or bad or W.shape[0] != dirs:
        r.fail(node, f"unsupported direction or attributes ({_text(at.get('direction'))}, {bad})")
    H, G = R.shape[2], len(_ORDER[op.lower()])
    acts = [_text(a).lower() for a in at.get("activations", [])]
    if op == "RNN":
        acts = acts or ["tanh"] * dirs
        if len(set(acts)) != 1 or acts[0] not in _ACTS or len(acts) not in (1, dirs):
            r.fail(node, f"activations {acts}: expected one of Tanh, Relu, Sigmoid for every direction")
        kw = dict(nonlinearity=acts[0])
    elif acts and acts != _DEFAULT_ACTS[op] * dirs:
        r.fail(node, f"activations {acts}: only the default {_DEFAULT_ACTS[op]} are supported")
    if op == "GRU":
        kw = dict(reset_after=bool(at.get("linear_before_reset", 0)))
    P = r.const(node, 7, ndim=2, weights=True) if op == "LSTM" else None
    if op == "LSTM":
        kw = dict(peepholes=P is not None)
    if W.shape[1] != G * H or R.shape != (dirs, G * H, H) or at.get("hidden_size", H) != H \
            or Bias is not None and Bias.shape != (dirs, 2 * G * H) \
            or P is not None and P.shape != (dirs, 3 * H):
        r.fail(node, f"W, R, B, P of shapes {[None if a is None else a.shape for a in (W, R, Bias, P)]} "
                     f"do not fit hidden_size {H}, {G} gates and {dirs} direction(s)")
    r.expect_features(node, W.shape[2])
    for i in (5, 6) if op == "LSTM" else (5,):
        if i < len(node.input) and node.input[i]:
            r.check_zero_state(node, node.input[i])
    r.shape = (r.shape[0], dirs, r.shape[1], H)       # Y [T, dirs, B, H]
    key = (op, H, dirs, tuple(sorted(kw.items())), W.dtype.name)
    return key, W.shape[2], _torch_weights(op.lower(), W, R, Bias, P)


def _torch_weights(mode, W, R, Bias, P):
    """ONNX W, R, B [, P] -> per direction {weight_ih, weight_hh, bias_ih, bias_hh [, peephole]}."""
    dirs, GH, H = R.shape
    Bias = np.zeros((dirs, 2 * GH), W.dtype) if Bias is None else Bias
    order, per_dir = _UNORDER[mode], []
    for d in range(dirs):
        sd = dict(weight_ih=_reorder(W[d], order), weight_hh=_reorder(R[d], order),
                  bias_ih=_reorder(Bias[d, :GH], order), bias_hh=_reorder(Bias[d, GH:], order))
        if P is not None:
            sd["peephole"] = P[d].reshape(3, H)[_PEEP]
        per_dir.append(sd)
    return per_dir


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def _module(item):
    """The rnnkit module of one item: Embedding, Linear, Softmax or a stacked RNN/LSTM/GRU."""
    if item[0] == "embedding":
        m = Embedding(*item[1].shape, dtype=item[1].dtype)
        m.load_torch_state_dict({"weight": item[1]})
    elif item[0] == "linear":
        _, W, b = item
        m = Linear(W.shape[0], W.shape[1], bias=b is not None, dtype=W.dtype)
        m.load_torch_state_dict({"weight": W.T} if b is None else {"weight": W.T, "bias": b})
    elif item[0] == "softmax":
        m = Softmax()
    else:
        m = _stacked(item[1])
    return m


def _stacked(group):
    """One rnnkit RNN/LSTM/GRU of len(group) layers from the specs of consecutive nodes."""
    (op, H, dirs, kw, dtype), D, _ = group[0]
    m = _CLASSES[op](D, H, num_layers=len(group), bidirectional=dirs == 2, dtype=dtype, **dict(kw))
    sd = {}
    for k, (_, _, per_dir) in enumerate(group):
        for d, weights in enumerate(per_dir):
            sd.update({f"{name}_l{k}" + ("_reverse" if d else ""): v for name, v in weights.items()})
    m.load_torch_state_dict(sd)
    return m


def read_onnx(path):
    """Read an ONNX pipeline (see rnnkit.io.onnx) into a list of rnnkit modules."""
    onnx = _onnx()
    path, model, consts = _load_model(onnx, path)
    reader = _Reader(onnx, path, model, consts)
    return [_module(item) for item in reader.read(model.graph)]


