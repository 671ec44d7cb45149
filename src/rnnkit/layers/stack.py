"""RNN, LSTM and GRU: stacked, optionally bidirectional layers of Recurrent units, PyTorch-compatible.

    layer l input: x for l = 0, else the previous layer's output (fwd ‖ bwd when bidirectional),
                   with dropout between layers in training mode (not after the last layer)
    state:         h_n (L*dirs, B, H_out), and c_n (L*dirs, B, H) for LSTM, ordered
                   [l0, l0_reverse, l1, l1_reverse, ...] as PyTorch's nn.RNN/LSTM/GRU

Child modules are named "l0", "l0_reverse", "l1", ...; their parameters map to PyTorch names:
    l{k}{sfx}.W_x = weight_ih_l{k}{sfx}.T    l{k}{sfx}.W_h = weight_hh_l{k}{sfx}.T
    l{k}{sfx}.b_x = bias_ih_l{k}{sfx}        l{k}{sfx}.b_h = bias_hh_l{k}{sfx}
    l{k}{sfx}.W_hr = weight_hr_l{k}{sfx}.T   (LSTM with proj_size)
    l{k}{sfx}.p   = peephole_l{k}{sfx}       (rnnkit only: PyTorch has no peepholes), rows p_i, p_f, p_o
    l{k}{sfx}.ln_x_g = ln_x_g_l{k}{sfx}      (rnnkit only, layer_norm; likewise ln_h_g, ln_c_g, ln_c_b)
    h0, c0 = h0, c0                          (rnnkit only, learn_init)
torch.nn's load_state_dict(strict=True) rejects the rnnkit-only keys, so such a layer cannot pass as
a PyTorch one by mistake.

Options beyond PyTorch's (layer_norm, input_dropout, recurrent_dropout, weight_drop, zoneout,
zoneout_c, learn_init, forget_bias, init, init_gain) are keyword arguments: rnnkit.layers.variants.
By default every initialisation is PyTorch's; forget_bias=1.0 starts an LSTM's forget gates open.
"""
import numpy as np

from .._checks import check_choice, check_dtype, check_float, check_int, check_real
from ..errors import InputError, ShapeError
from .module import Module, load_torch_layout
from .variants import add_init_grads, check_options, learned_state, setup, unit_maker

_TORCH = (("W_x", "weight_ih", True), ("W_h", "weight_hh", True), ("b_x", "bias_ih", False),
          ("b_h", "bias_hh", False), ("W_hr", "weight_hr", True), ("p", "peephole", False),
          ("ln_x_g", "ln_x_g", False), ("ln_h_g", "ln_h_g", False), ("ln_c_g", "ln_c_g", False),
          ("ln_c_b", "ln_c_b", False))


class RecurrentNet(Module):
    """The shared body of RNN, LSTM and GRU."""

    mode, OPTIONS = None, ()

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False,
                 dropout=0.0, *, proj_size=0, nonlinearity="tanh", reset_after=True, peepholes=False,
                 dtype=np.float32, seed=0, kernels=None, **options):
        super().__init__()
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.num_layers = check_int("num_layers", num_layers, 1)
        self.proj_size = check_int("proj_size", proj_size, 0)
        if self.proj_size and self.proj_size >= self.hidden_size:
            raise InputError(f"proj_size: expected 0 or less than hidden_size={hidden_size}, got {proj_size}")
        self.dropout = check_real("dropout", dropout, 0.0, 1.0)
        if self.dropout >= 1:
            raise InputError(f"dropout: expected a probability in [0, 1), got {dropout}")
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, ("tanh", "relu", "sigmoid"))
        self.bidirectional, self.batch_first = bool(bidirectional), bool(batch_first)
        self.reset_after, self.peepholes = bool(reset_after), bool(peepholes)
        self.dtype = check_dtype("dtype", dtype)
        self.seed = check_int("seed", seed, 0)
        self.options, given = check_options(self.mode, options, self.reset_after)
        self.set_config(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                        bidirectional=self.bidirectional, batch_first=self.batch_first, dropout=self.dropout,
                        dtype=self.dtype, seed=seed, **self._options(proj_size=proj_size, nonlinearity=nonlinearity,
                                                                    reset_after=reset_after, peepholes=peepholes),
                        **given)
        make_unit, self.variant_units = unit_maker(self.options, self.mode)
        self.rng = np.random.default_rng(seed)         # weights, then dropout masks
        self.dirs = 2 if self.bidirectional else 1
        H_out = self.proj_size or self.hidden_size
        for k in range(self.num_layers):
            for d in range(self.dirs):
                self.add_child(self._name(k, d), make_unit(
                    self.mode, input_size if k == 0 else H_out * self.dirs, hidden_size,
                    proj_size=self.proj_size, nonlinearity=nonlinearity, reset_after=reset_after,
                    peepholes=peepholes, reverse=d == 1, dtype=self.dtype, rng=self.rng,
                    kernels=kernels))
        setup(self, self.options)            # forget_bias, init, learn_init

    def _options(self, **options):
        """The cell options this class's constructor takes (for config())."""
        return {k: v for k, v in options.items() if k in self.OPTIONS}

    @staticmethod
    def _name(k, d):
        return f"l{k}" + ("_reverse" if d else "")

    def units(self):
        """The Recurrent units in state order: [(k, d, unit), ...]."""
        return [(k, d, self.children[self._name(k, d)]) for k in range(self.num_layers)
                for d in range(self.dirs)]

    # -- state packing: PyTorch's (L*dirs, B, H) arrays <-> one tuple per unit ------------------
    def _n_states(self):
        return self.children["l0"].steps.n_states       # 2 for LSTM, 1 + extra states for a plug-in cell

    def _unpack(self, state, B, name):
        if state is None:
            return [None] * (self.num_layers * self.dirs)
        n_s = self._n_states()
        parts = state if n_s > 1 else (state,)
        if n_s > 1 and (not isinstance(state, (tuple, list)) or len(state) != n_s):
            what = "(h, c) for LSTM" if self.mode == "lstm" else f"of {n_s} arrays (h and the cell's states)"
            raise InputError(f"{name}: expected a tuple {what}, got {type(state).__name__}")
        H_out = self.proj_size or self.hidden_size
        sizes = (H_out,) + (self.hidden_size,) * (n_s - 1)
        n = self.num_layers * self.dirs
        parts = [check_float(f"{name}[{i}]" if n_s > 1 else name, s, self.dtype,
                             shape=(n, B, sizes[i])) for i, s in enumerate(parts)]
        return [tuple(p[u] for p in parts) for u in range(n)]

    def _pack(self, per_unit):
        arrays = tuple(np.stack([s[i] for s in per_unit]) for i in range(self._n_states()))
        return arrays if self._n_states() > 1 else arrays[0]

    # -- forward / backward ---------------------------------------------------------------------
    def forward(self, x, state=None, lengths=None, need_cache=True):
        """x (T, B, D) (or (B, T, D) with batch_first) -> out (T, B, dirs*H_out), state, cache."""
        x = check_float("x", x, self.dtype, ndim=3)
        if self.batch_first:
            x = x.transpose(1, 0, 2)
        B = x.shape[1]
        learned = state is None and bool(self.init_names)       # learn_init: the parameters h0 (c0)
        states = self._unpack(learned_state(self, B) if learned else state, B, "state")
        unit_kw = {"rng": self.rng} if self.variant_units else {}   # the generator of their masks
        finals, unit_caches, drop_masks = [], [], []
        layer_in = x
        for k in range(self.num_layers):
            outs = []
            for d in range(self.dirs):
                u = k * self.dirs + d
                unit = self.children[self._name(k, d)]
                o, s, c = unit.forward(layer_in, states[u], lengths, need_cache, **unit_kw)
                outs.append(o)
                finals.append(s)
                unit_caches.append(c)
            layer_in = np.concatenate(outs, axis=-1) if self.dirs == 2 else outs[0]
            mask = None
            if self.training and self.dropout > 0 and k < self.num_layers - 1:
                keep = self.rng.random(layer_in.shape) >= self.dropout
                mask = (keep / (1 - self.dropout)).astype(self.dtype)
                layer_in = layer_in * mask
            drop_masks.append(mask)
        out = layer_in.transpose(1, 0, 2) if self.batch_first else layer_in
        cache = dict(units=unit_caches, drop=drop_masks, learned=learned) if need_cache else None
        return out, self._pack(finals), cache

    def backward(self, dout, cache, dstate=None):
        """dout like out, dstate like state (or None) -> dx like x, d(initial state) like state."""
        if not isinstance(cache, dict) or "units" not in cache:
            raise InputError(f"cache: expected the cache of forward(..., need_cache=True), got {cache!r:.60}")
        dout = check_float("dout", dout, self.dtype, ndim=3)
        width = self.dirs * (self.proj_size or self.hidden_size)
        if dout.shape[-1] != width:
            raise ShapeError(f"dout: expected last dimension {width} (the output's), got shape {dout.shape}")
        if self.batch_first:
            dout = dout.transpose(1, 0, 2)
        B = dout.shape[1]
        dfinals = self._unpack(dstate, B, "dstate")
        dinit = [None] * len(dfinals)
        H_out = self.proj_size or self.hidden_size
        for k in reversed(range(self.num_layers)):
            if cache["drop"][k] is not None:
                dout = dout * cache["drop"][k]
            dx = 0
            for d in range(self.dirs):
                u = k * self.dirs + d
                unit = self.children[self._name(k, d)]
                g = np.ascontiguousarray(dout[..., d * H_out:(d + 1) * H_out])
                dxd, dinit[u] = unit.backward(g, cache["units"][u], dfinals[u])
                dx = dx + dxd
            dout = dx
        dx = dout.transpose(1, 0, 2) if self.batch_first else dout
        dinit = self._pack(dinit)
        if cache.get("learned"):
            add_init_grads(self, dinit)
        return dx, dinit

    def infer(self, x, state=None, lengths=None):
        """Inference: (out, state); no cache kept, no dropout in eval mode."""
        out, state, _ = self.forward(x, state, lengths, need_cache=False)
        return out, state

    # -- PyTorch state dicts --------------------------------------------------------------------
    def _torch_pairs(self):
        for k, d, unit in self.units():
            sfx = f"_l{k}" + ("_reverse" if d else "")
            for mine, theirs, transpose in _TORCH:
                if mine in unit.params:
                    yield unit, mine, theirs + sfx, transpose
        for name in self.init_names:
            yield self, name, name, False

    def torch_state_dict(self, grads=False):
        """Parameters (or accumulated gradients) under PyTorch's names and layouts, as NumPy arrays."""
        out = {}
        for unit, mine, theirs, transpose in self._torch_pairs():
            a = (unit.grads if grads else unit.params)[mine]
            out[theirs] = (a.T if transpose else a).copy()
        return out

    def load_torch_state_dict(self, sd):
        """Copy weights from a PyTorch-named state dict (NumPy arrays or CPU tensors) into this module."""
        load_torch_layout(self, sd, {theirs: (unit.params[mine], transpose)
                                     for unit, mine, theirs, transpose in self._torch_pairs()})


class RNN(RecurrentNet):
    """Elman RNN, h_t = f(x_t W_x + h_{t-1} W_h + b), f in tanh / relu / sigmoid (nn.RNN's layout)."""
    mode, OPTIONS = "rnn", ("nonlinearity",)

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False,
                 dropout=0.0, nonlinearity="tanh", dtype=np.float32, seed=0, kernels=None, **options):
        super().__init__(input_size, hidden_size, num_layers, bidirectional, batch_first, dropout,
                         nonlinearity=nonlinearity, dtype=dtype, seed=seed, kernels=kernels, **options)


class LSTM(RecurrentNet):
    """LSTM, gate order i, f, g, o, with optional projection (proj_size) and peepholes (nn.LSTM's layout)."""
    mode, OPTIONS = "lstm", ("proj_size", "peepholes")

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False,
                 dropout=0.0, proj_size=0, peepholes=False, dtype=np.float32, seed=0, kernels=None,
                 **options):
        super().__init__(input_size, hidden_size, num_layers, bidirectional, batch_first, dropout,
                         proj_size=proj_size, peepholes=peepholes, dtype=dtype, seed=seed,
                         kernels=kernels, **options)


class GRU(RecurrentNet):
    """GRU, gate order r, z, n; reset_after=True is nn.GRU / cuDNN, False is Cho et al. 2014."""
    mode, OPTIONS = "gru", ("reset_after",)

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, batch_first=False,
                 dropout=0.0, reset_after=True, dtype=np.float32, seed=0, kernels=None, **options):
        super().__init__(input_size, hidden_size, num_layers, bidirectional, batch_first, dropout,
                         reset_after=reset_after, dtype=dtype, seed=seed, kernels=kernels, **options)
