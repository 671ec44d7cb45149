"""Options of rnnkit.RNN / LSTM / GRU beyond PyTorch's: layer norm, regularisers, learnable initial
state, initialisation. Each is a keyword argument whose default keeps the plain layer.

    layer_norm=True       Ba et al. 2016: LN of x W_x and of h W_h (over all gates), and of c before
                          its tanh (LSTM); equations in rnnkit.layers.variant_steps
    input_dropout=p       variational dropout on each unit's input x_t: one mask (B, D) per sequence
    recurrent_dropout=p   variational dropout on h_{t-1} before W_h: one mask (B, H_out) per sequence
                          (Gal & Ghahramani 2016); dW_h then uses the masked h
    weight_drop=p         DropConnect on W_h (Merity et al. 2017): one mask (H_out, G*H) per call,
                          shared by the batch and every step; dW_h = dW_h' ⊙ mask
    zoneout=p             Krueger et al. 2016, per step and unit: s_t = d ⊙ s_{t-1} + (1 - d) ⊙ s̃_t
    zoneout_c=p           with d ~ Bernoulli(p) in training and d = p (the expectation) in evaluation;
                          zoneout acts on h, zoneout_c on c (the extra states); zoneout_c=None: as h
    learn_init=True       parameters h0 (L*dirs, H_out) [, c0 (L*dirs, H)], the initial state when
                          forward gets state=None, broadcast over the batch; dh0 = Σ_b dstate
    forget_bias=1.0       LSTM: added to b_x's forget block at construction (Jozefowicz et al. 2015):
                          the default, FORGET_BIAS, starts the forget gates open (f ≈ 0.73, not 0.5);
                          forget_bias=0.0 gives PyTorch's initialisation exactly
    init="orthogonal"     W_h: an orthogonal matrix per gate block (Saxe et al. 2014)
    init="identity"       RNN: W_h = I, b_x = b_h = 0 (IRNN with nonlinearity="relu", Le et al. 2015)
    init_gain=1.0         scale of the orthogonal / identity W_h

Dropout masks are inverted (kept entries scaled by 1/(1 - p)) and drawn from the layer's generator
`rng` at each forward in training mode; in evaluation (model.eval()) nothing is dropped. Masks
are drawn per unit (layer and direction), in the order input, recurrent, weight, zoneout.

Where it runs: input_dropout, weight_drop, learn_init and the initialisations leave the fused
whole-sequence kernels of rnnkit.kernels.sequence in use, and layer_norm those of
rnnkit.kernels.lnsequence (LSTM without projection, GRU); recurrent_dropout and zoneout (like
lengths) run VariantRecurrent's step loop, whose gate math still runs through the numba kernels
(rnnkit.kernels; LN-LSTM and LN-GRU with their normalisations: rnnkit.layers.ln_steps).
RNNKIT_KERNELS=numpy (or kernels="numpy") runs the NumPy reference of rnnkit.layers.variant_steps.
"""
from functools import partial

import numpy as np

from .. import init
from .._checks import check_choice, check_float, check_real
from ..errors import InputError, ShapeError
from .recurrent import Recurrent, cell_functions
from .sequence import check_lengths, reverse_index, reverse_padded, step_masks
from .variant_steps import project, project_back, variant_steps

DEFAULTS = dict(layer_norm=False, input_dropout=0.0, recurrent_dropout=0.0, weight_drop=0.0, zoneout=0.0,
                zoneout_c=None, learn_init=False, forget_bias=None, init="default", init_gain=1.0)
UNIT_OPTIONS = ("layer_norm", "input_dropout", "recurrent_dropout", "weight_drop", "zoneout", "zoneout_c")
INIT_NAMES = ("h0", "c0")
FORGET_BIAS = 1.0     # an LSTM's default forget_bias (Jozefowicz et al. 2015); 0.0: PyTorch's initialisation


def _bool(name, v):
    if not isinstance(v, (bool, np.bool_)):
        raise InputError(f"{name}: expected True or False, got {v!r}")
    return bool(v)


def _prob(name, v):
    v = check_real(name, v, 0.0, 1.0)
    if v >= 1:
        raise InputError(f"{name}: expected a probability in [0, 1), got {v}")
    return v


def n_states(mode):
    """1 + the number of extra states (c) of a cell kind or plug-in cell."""
    return mode.n_states if not isinstance(mode, str) else 2 if mode == "lstm" else 1


def check_options(mode, options, reset_after=True):
    """Validate the variant keyword options of a layer -> (every option resolved, those given)."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise InputError(f"{unknown[0]}: not an option of the recurrent layers (options: "
                         f"{', '.join(DEFAULTS)}), got {options[unknown[0]]!r}")
    o = {**DEFAULTS, **options}
    for name in ("layer_norm", "learn_init"):
        o[name] = _bool(name, o[name])
    for name in ("input_dropout", "recurrent_dropout", "weight_drop", "zoneout"):
        o[name] = _prob(name, o[name])
    k = n_states(mode)
    if o["zoneout_c"] is not None and k == 1:
        raise InputError(f"zoneout_c: the cell has no c state (use zoneout), got {o['zoneout_c']!r}")
    o["zoneout_c"] = o["zoneout"] if o["zoneout_c"] is None else _prob("zoneout_c", o["zoneout_c"])
    lstm = isinstance(mode, str) and mode == "lstm"
    if o["forget_bias"] is not None and not lstm:
        raise InputError(f"forget_bias: only an LSTM has a forget gate, got {o['forget_bias']!r}")
    fb = FORGET_BIAS if o["forget_bias"] is None else o["forget_bias"]
    o["forget_bias"] = check_real("forget_bias", fb) if lstm else 0.0
    check_choice("init", o["init"], ("default", "orthogonal", "identity"))
    if o["init"] == "identity" and mode != "rnn":
        raise InputError("init: 'identity' (IRNN) is for rnnkit.RNN, got init='identity' for another cell")
    o["init_gain"] = check_real("init_gain", o["init_gain"], 0.0, low_open=True)
    if o["layer_norm"] and mode == "gru" and not reset_after:
        raise InputError("layer_norm: needs reset_after=True (LN of h W_h over all three gates), "
                         "got reset_after=False")
    return o, {name: o[name] for name in options}


def unit_maker(o, mode):
    """The unit class: Recurrent, or VariantRecurrent with its options bound (always for a plug-in cell)."""
    kw = {name: o[name] for name in UNIT_OPTIONS}
    variant = any(kw.values()) or not isinstance(mode, str)
    return (partial(VariantRecurrent, **kw), True) if variant else (Recurrent, False)


def nonstandard(net):
    """The options in use that change what a layer computes in evaluation from PyTorch's equations."""
    o = getattr(net, "options", DEFAULTS)
    used = [name for name in ("layer_norm", "zoneout", "zoneout_c", "learn_init") if o[name]]
    return used + ([] if isinstance(net.mode, str) else ["cell"])


# -- initialisation and the learnable initial state (whole layer) ----------------------------------
def setup(net, o):
    """After the units are built: forget-gate bias, orthogonal / identity W_h, parameters h0 (c0)."""
    for _, _, unit in net.units():
        P, H, G = unit.params, unit.hidden_size, unit.steps.n_gates
        if o["forget_bias"]:
            P["b_x"][H:2 * H] += o["forget_bias"]
        if o["init"] == "orthogonal":
            for g in range(G):
                P["W_h"][:, g * H:(g + 1) * H] = init.orthogonal(net.rng, (unit.output_size, H), unit.dtype,
                                                                 o["init_gain"])
        elif o["init"] == "identity":
            P["W_h"][...] = o["init_gain"] * np.eye(H, dtype=unit.dtype)
            P["b_x"][...] = 0
            P["b_h"][...] = 0
    net.init_names = ()
    if o["learn_init"]:
        units = net.units()
        sizes = [s[1] for s in units[0][2].state_shapes(1)]
        net.init_names = (INIT_NAMES + tuple(f"s{i}_0" for i in range(2, len(sizes))))[:len(sizes)]
        for name, size in zip(net.init_names, sizes):
            net.add_param(name, np.zeros((len(units), size), net.dtype))      # (L*dirs, H)


def learned_state(net, B):
    """The learnable initial state broadcast over B sequences, in forward's state layout."""
    arrays = tuple(np.repeat(net.params[n][:, None], B, axis=1) for n in net.init_names)  # (L*dirs, B, H)
    return arrays if len(arrays) > 1 else arrays[0]


def add_init_grads(net, dstate):
    """dh0 += Σ_b dstate (and likewise c0)."""
    for name, d in zip(net.init_names, dstate if isinstance(dstate, tuple) else (dstate,)):
        net.grads[name] += d.sum(1)


# -- one unit with the per-call options ----------------------------------------------------------
def _zone(s_new, s_prev, d):
    """Zoneout: d ⊙ s_prev + (1 - d) ⊙ s_new (d None: off)."""
    return s_new if d is None else s_new + d * (s_prev - s_new)


class VariantRecurrent(Recurrent):
    """Recurrent with layer norm, variational / recurrent dropout, DropConnect on W_h and zoneout.

    Extra parameters with layer_norm: ln_x_g, ln_h_g (G*H,) and, for an LSTM, ln_c_g, ln_c_b (H,)
    (gains start at 1, shifts at 0). forward takes the generator of this call's masks as `rng`
    (the stacked layer passes its own); the cache keeps the masks under cache["noise"].
    """

    def __init__(self, mode, input_size, hidden_size, *, proj_size=0, nonlinearity="tanh", reset_after=True,
                 peepholes=False, reverse=False, dtype=np.float32, rng=None, kernels=None, layer_norm=False,
                 input_dropout=0.0, recurrent_dropout=0.0, weight_drop=0.0, zoneout=0.0, zoneout_c=0.0):
        super().__init__(mode, input_size, hidden_size, proj_size=proj_size, nonlinearity=nonlinearity,
                         reset_after=reset_after, peepholes=peepholes, reverse=reverse, dtype=dtype, rng=rng,
                         kernels=kernels)
        self.layer_norm, self.input_dropout = layer_norm, input_dropout
        self.recurrent_dropout, self.weight_drop = recurrent_dropout, weight_drop
        self.zoneout, self.zoneout_c = zoneout, zoneout_c
        self.noise_rng = rng if rng is not None else np.random.default_rng(0)
        GH = self.steps.n_gates * hidden_size
        if layer_norm:
            self.add_param("ln_x_g", np.ones(GH, self.dtype))                    # (G*H,)
            self.add_param("ln_h_g", np.ones(GH, self.dtype))
            if mode == "lstm":
                self.add_param("ln_c_g", np.ones(hidden_size, self.dtype))       # (H,)
                self.add_param("ln_c_b", np.zeros(hidden_size, self.dtype))
        self.steps = variant_steps(mode, cell_functions(kernels), self.steps, layer_norm,
                                   recurrent_dropout > 0, nonlinearity, peepholes, proj_size > 0)
        if layer_norm and self.fused is not None:       # the numba kernels: LN-LSTM, LN-GRU fused
            from ..kernels.lnsequence import ln_runner
            self.fused = ln_runner(mode, peepholes, proj_size > 0)
        self.fusable = self.fused is not None and not (recurrent_dropout or zoneout or zoneout_c)

    def _noise(self, rng, T, B):
        """This call's masks: x (B, D), h (B, H_out), W (H_out, G*H), zone (one per state); None: off."""
        dt, train = self.dtype, self.training

        def keep(p, shape):                       # inverted dropout: 0 or 1 / (1 - p)
            return ((rng.random(shape) >= p) / (1 - p)).astype(dt) if train and p > 0 else None

        def zone(p, size):                        # 1: keep the previous value; p in evaluation
            if p == 0:
                return None
            return (rng.random((T, B, size)) < p).astype(dt) if train else dt.type(p)

        noise = dict(x=keep(self.input_dropout, (B, self.input_size)),
                     h=keep(self.recurrent_dropout, (B, self.output_size)),
                     W=keep(self.weight_drop, self.params["W_h"].shape))
        sizes = [s[1] for s in self.state_shapes(B)]
        rates = (self.zoneout,) + (self.zoneout_c,) * (len(sizes) - 1)
        noise["zone"] = tuple(zone(p, size) for p, size in zip(rates, sizes))
        return noise

    def _call_params(self, noise):
        """The parameters as this call sees them: W_h ⊙ mask, and the recurrent mask as m_h."""
        P = dict(self.params)
        if noise["W"] is not None:
            P["W_h"] = self.params["W_h"] * noise["W"]
        if noise["h"] is not None:
            P["m_h"] = noise["h"]
        return P

    def forward(self, x, state=None, lengths=None, need_cache=True, rng=None):
        """x (T, B, D) -> out (T, B, H_out), final state, cache; masks drawn from rng (training)."""
        x = check_float("x", x, self.dtype, ndim=3)
        T, B, D = x.shape
        if D != self.input_size:
            raise ShapeError(f"x: expected last dimension {self.input_size} (input_size), "
                             f"got shape {x.shape}")
        lengths = check_lengths(lengths, T, B)
        state = self._check_state(state, B)
        if T == 0 or B == 0:             # no step to take: empty output, the state passes through
            out = np.zeros((T, B, self.output_size), self.dtype)
            return out, state, dict(x=x, empty=True) if need_cache else None
        noise = self._noise(self.noise_rng if rng is None else rng, T, B)
        idx = reverse_index(lengths, T, B) if self.reverse else None
        if idx is not None:
            x = reverse_padded(x, idx)
        if noise["x"] is not None:
            x = x * noise["x"]
        masks, P = step_masks(lengths, T, bool), self._call_params(noise)
        if self.fused is not None and self.fusable and masks is None and T > 0:
            out, state, fused = self.fused.forward(P, x, state, need_cache)
            cache = dict(fused=fused)
        else:
            out, state, cache = self._loop(P, x, state, masks, noise["zone"], need_cache)
        if idx is not None:
            out = reverse_padded(out, idx)
        if not need_cache:
            return out, state, None
        cache.update(x=x, P=P, noise=noise, masks=masks, idx=idx)
        return out, state, cache

    def backward(self, dout, cache, dstate=None):
        """dout (T, B, H_out), dstate -> dx (T, B, D), d(initial state); adds parameter gradients."""
        T, B, D = cache["x"].shape
        dout = check_float("dout", dout, self.dtype, shape=(T, B, self.output_size))
        dstate = self._check_state(dstate, B, "dstate")
        if "empty" in cache:
            return np.zeros((T, B, D), self.dtype), dstate
        x, idx, noise, P = cache["x"], cache["idx"], cache["noise"], cache["P"]
        if idx is not None:
            dout = reverse_padded(dout, idx)
        G = self.grads
        if noise["W"] is not None:                # gradient of the masked W_h, masked after
            G = {**G, "W_h": np.zeros_like(G["W_h"])}
        if "fused" in cache:
            dx, dstate = self.fused.backward(P, G, dout, dstate, cache["fused"])
        else:
            dx, dstate = self._loop_backward(P, G, dout, dstate, cache)
        if noise["W"] is not None:
            self.grads["W_h"] += G["W_h"] * noise["W"]
        if noise["x"] is not None:
            dx = dx * noise["x"]
        if idx is not None:
            dx = reverse_padded(dx, idx)
        return dx, dstate

    def _loop(self, P, x, state, masks, zone, need_cache):
        """The step loop with zoneout and lengths -> out, final state, cache."""
        T, B, _ = x.shape
        steps = self.steps
        AX, pcache = project(steps, P, x)                                  # (T, B, G*H)
        out = np.empty((T, B, self.output_size), self.dtype)              # (T, B, H_out)
        Hprev = np.empty_like(out) if need_cache else None                # (T, B, H_out)
        caches = []
        for t in range(T):
            if need_cache:
                Hprev[t] = state[0]
            _, new, cache = steps.step(P, AX[t], state)
            new = tuple(_zone(n, s, None if d is None else d[t] if d.ndim else d)
                        for n, s, d in zip(new, state, zone))
            if masks is not None:
                m = masks[t]
                out[t] = np.where(m, new[0], 0)
                new = tuple(np.where(m, n, s) for n, s in zip(new, state))
            else:
                out[t] = new[0]
            state = new
            if need_cache:
                caches.append(cache)
        return out, state, dict(Hprev=Hprev, caches=caches, pcache=pcache)

    def _loop_backward(self, P, G, dout, dstate, cache):
        """Backward of _loop -> dx, d(initial state); adds parameter gradients into G."""
        x, masks, zone = cache["x"], cache["masks"], cache["noise"]["zone"]
        T, B, _ = x.shape
        steps = self.steps
        dAX = np.empty((T, B, steps.n_gates * self.hidden_size), self.dtype)   # (T, B, G*H)
        dAH = dAX if steps.shared else np.empty_like(dAX)
        extras, ds = [None] * T, tuple(dstate)
        for t in reversed(range(T)):
            dn = (dout[t] + ds[0], *ds[1:])               # into the state after step t
            if masks is not None:
                dn = tuple(np.where(masks[t], d, 0) for d in dn)
            d_t = [None if d is None else d[t] if d.ndim else d for d in zone]
            dnew = tuple(g if d is None else g * (1 - d) for g, d in zip(dn, d_t))
            dax, dah, dh_prev, drest_prev, extras[t] = steps.step_back(P, dnew[0], dnew[1:],
                                                                        cache["caches"][t])
            dprev = tuple(p if d is None else p + d * g for p, g, d in zip((dh_prev, *drest_prev), dn, d_t))
            if masks is not None:                         # padded steps pass the carried gradient through
                dprev = tuple(np.where(masks[t], p, d) for p, d in zip(dprev, ds))
            ds = dprev
            dAX[t] = dax
            if not steps.shared:
                dAH[t] = dah
        dx = project_back(steps, P, G, x, dAX, cache["pcache"])
        steps.param_grads(P, G, cache["Hprev"], dAH, cache["caches"], extras)
        return dx, ds
