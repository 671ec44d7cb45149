"""EncoderDecoder: the N -> M architecture (sequence to sequence), with optional attention.

Encoder   x_s = E_src[src_s];  o, final = RNN(x) over each source's own length (rnnkit.RNN/LSTM/GRU)
          o (S, B, dirs H): the outputs; final: h_n (L dirs, B, H) [and c_n for an LSTM]
Bridge    per decoder layer l and state part (h, and c for an LSTM), from final:
          "sum"        s_l = Σ_dir final_{l,dir}            (a bidirectional encoder's directions add)
          "transform"  s_l = tanh([final_{l,fwd}; final_{l,bwd}] W_c + b_c)   one Linear per part
Context   context="last"       c = the "sum" bridge
          context="transform"  c = the "transform" bridge
          context="attention"  a_t = Attention(h_{t-1}, o, source mask): recomputed at every step
                               from the decoder's previous top hidden state (Bahdanau-style);
                               o W_k is computed once per source (Attention.precompute)
Feed      feed="init"        the decoder starts from s (with attention: from the "sum" bridge)
          feed="every_step"  the decoder starts from 0 and reads c = s_top's h at every step
          (the attention context a_t is fed at every step whatever `feed`)
Decoder   x_t = [E_tgt[y_{t-1}]; a_t or c];  h_t = cell(x_t, h_{t-1}) (L layers, one step at a
          time: the cells' step functions, with the products by W_x and W_h summed after the loop)
          logits_t = h_t W_y + b_y
Training  teacher forcing, y_{t-1} = tgt_in[t]; scheduled sampling (sampling_prob p > 0, training
          mode): for t >= 1 each sequence feeds argmax logits_{t-1} instead, with probability p drawn
          from the model's rng (self.rng) at the start of forward; the choice is a constant for
          the gradient. The loss is cross-entropy over t < tgt_lengths[b], summed for loss_sum;
          its gradient is that of the mean over those tokens. Gradients reach the encoder through
          c (or the attention keys) and the decoder's initial state.
Dropout   with probability `dropout` on the embeddings, between encoder layers and on h_t before
          the output layer.
Decoding  greedy and beam_search (rnnkit.beam): one decoder step per emitted token; beam search
          ranks by log p(y) / |y|^alpha (plain length normalisation, |y| counting the eos).

objective batch: "src" (S, B) int64, "src_lengths" (B,), "tgt_in" (T, B) = bos y_1 .. y_n,
"tgt_out" (T, B) = y_1 .. y_n eos, "tgt_lengths" (B,) = n + 1; padding is `pad`. Metrics:
"correct" tokens (teacher-forced argmax), "exact" sequences with every token right, "sequences".
"""
import numpy as np

from .. import beam
from .._checks import check_choice, check_dtype, check_int, check_int_array, check_real
from ..errors import InputError
from ..functional import log_softmax
from ..layers import GRU, LSTM, RNN, Dropout, Embedding, Linear, Module
from ..layers.attention import KINDS, Attention
from ..losses import cross_entropy

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
CONTEXTS = ("last", "transform", "attention")
FEEDS = ("init", "every_step")


class EncoderDecoder(Module):
    """Encoder RNN -> context (last state, transform or attention) -> decoder RNN -> logits."""

    def __init__(self, src_vocab, tgt_vocab, cell="lstm", hidden_size=64, embedding_dim=32,
                 num_layers=1, bidirectional_encoder=False, context="attention", attention="additive",
                 feed="init", dropout=0.0, sampling_prob=0.0, dtype="float32", seed=0, bos=1, eos=2,
                 pad=0):
        super().__init__()
        V_s, V = check_int("src_vocab", src_vocab, 1), check_int("tgt_vocab", tgt_vocab, 3)
        self.H, self.E = check_int("hidden_size", hidden_size, 1), check_int("embedding_dim", embedding_dim, 1)
        self.L, self.V = check_int("num_layers", num_layers, 1), V
        self.cell = check_choice("cell", cell, tuple(CELLS))
        self.context = check_choice("context", context, CONTEXTS)
        self.attention = check_choice("attention", attention, KINDS)
        self.feed = check_choice("feed", feed, FEEDS)
        bidirectional = check_choice("bidirectional_encoder", bidirectional_encoder, (False, True))
        if context == "attention" and attention == "dot" and bidirectional:
            raise InputError("attention: 'dot' needs keys of the decoder's size, but a bidirectional"
                             " encoder gives 2 * hidden_size; expected 'additive' or 'general', got 'dot'")
        self.dtype, seed = check_dtype("dtype", dtype), check_int("seed", seed, 0)
        self.bos, self.eos = check_int("bos", bos, 0, V - 1), check_int("eos", eos, 0, V - 1)
        self.pad = check_int("pad", pad, 0, V - 1)
        if self.bos == self.eos:
            raise InputError(f"eos: expected an id different from bos={bos}, got {eos}")
        self.sampling_prob = check_real("sampling_prob", sampling_prob, 0.0, 1.0)
        self.set_config(src_vocab=V_s, tgt_vocab=V, cell=cell, hidden_size=self.H, embedding_dim=self.E,
                        num_layers=self.L, bidirectional_encoder=bool(bidirectional), context=context,
                        attention=attention, feed=feed, dropout=dropout, sampling_prob=self.sampling_prob,
                        dtype=self.dtype, seed=seed, bos=bos, eos=eos, pad=pad)
        self.dirs = 2 if bidirectional else 1
        self.n_parts = 2 if cell == "lstm" else 1          # state parts: (h,) or (h, c)
        self.rng = np.random.default_rng([seed, 1])        # scheduled-sampling draws
        self._build(V_s, dropout, seed)

    def _build(self, V_s, dropout, seed):
        """Add the child modules: embeddings, encoder, bridge or attention, decoder, output layer."""
        H, E, L, Hk, dt = self.H, self.E, self.L, self.dirs * self.H, self.dtype
        self.src_emb = self.add_child("src_emb", Embedding(V_s, E, dt, seed))
        self.encoder = self.add_child("encoder", CELLS[self.cell](E, H, L, self.dirs == 2, dropout=dropout,
                                                                  dtype=dt, seed=seed + 1))
        if self.context == "transform":
            self.bridges = [self.add_child("bridge_h", Linear(Hk, H, dtype=dt, seed=seed + 2))]
            if self.n_parts == 2 and self.feed == "init":
                self.bridges.append(self.add_child("bridge_c", Linear(Hk, H, dtype=dt, seed=seed + 3)))
        if self.context == "attention":
            self.attn = self.add_child("attn", Attention(H, Hk, self.attention, dtype=dt, seed=seed + 3))
        C = Hk if self.context == "attention" else (H if self.feed == "every_step" else 0)
        self.tgt_emb = self.add_child("tgt_emb", Embedding(self.V, E, dt, seed + 4))
        self.decoder = self.add_child("decoder", CELLS[self.cell](E + C, H, L, dtype=dt, seed=seed + 5))
        self.out = self.add_child("out", Linear(H, self.V, dtype=dt, seed=seed + 6))
        self.drop = self.add_child("drop", Dropout(dropout, seed=seed + 7))
        self.units = [u for _, _, u in self.decoder.units()]

    def config(self):
        """{"type": "EncoderDecoder", **kwargs}: rnnkit.models.build(config) rebuilds the model."""
        return {**super().config(), "sampling_prob": self.sampling_prob}      # p may be annealed

    # -- encoder and bridge ---------------------------------------------------------------------
    def _bridge(self, final):
        """Encoder final state -> the (L, B, H) bridge of each state part the decoder reads, cache."""
        parts = final if isinstance(final, tuple) else (final,)
        used = self.n_parts if self.feed == "init" else int(self._feeds_c())    # parts the decoder reads
        out, caches = [], []
        for i in range(used):
            X = parts[i].reshape(self.L, self.dirs, -1, self.H)                 # (L, dirs, B, H)
            if self.context != "transform":
                out.append(X.sum(axis=1))                                        # (L, B, H)
                caches.append(None)
                continue
            Z = X.transpose(0, 2, 1, 3).reshape(self.L, -1, self.dirs * self.H)  # (L, B, dirs H)
            Y, c = self.bridges[i].forward(Z)
            out.append(np.tanh(Y))                                               # (L, B, H)
            caches.append((c, out[-1]))
        return out, caches

    def _bridge_backward(self, dS, caches, B):
        """Gradients of the bridge outputs (L, B, H) per part -> d(final state) like the encoder's."""
        dparts = []
        for i in range(self.n_parts):
            if i >= len(dS):
                dparts.append(np.zeros((self.L * self.dirs, B, self.H), self.dtype))   # unused c_n
                continue
            if caches[i] is None:
                dX = np.broadcast_to(dS[i][:, None], (self.L, self.dirs, B, self.H))  # Σ_dir
            else:
                c, Y = caches[i]
                dZ = self.bridges[i].backward(dS[i] * (1 - Y * Y), c)              # (L, B, dirs H)
                dX = dZ.reshape(self.L, B, self.dirs, self.H).transpose(0, 2, 1, 3)
            dparts.append(np.ascontiguousarray(dX).reshape(self.L * self.dirs, B, self.H))
        return tuple(dparts) if self.n_parts == 2 else dparts[0]

    def _encode(self, src, src_lengths, need_cache):
        """src (S, B), src_lengths (B,) -> memory (what the decoder reads), cache."""
        src = check_int_array("src", src, 0, self.src_emb.V, ndim=2)
        S, B = src.shape
        lengths = check_int_array("src_lengths", src_lengths, 0, S + 1, shape=(B,))
        x, emb_cache = self.src_emb.forward(src)                                 # (S, B, E)
        x, drop_cache = self.drop.forward(x)
        o, final, enc_cache = self.encoder.forward(x, None, lengths, need_cache)
        S_parts, bridge_cache = self._bridge(final)
        zeros = [tuple(np.zeros((B, self.H), self.dtype) for _ in range(self.n_parts))] * self.L
        init = zeros if self.feed != "init" else [tuple(p[k] for p in S_parts) for k in range(self.L)]
        memory, K_cache = dict(state=init, c=S_parts[0][-1] if self._feeds_c() else None), None
        if self.context == "attention":
            memory["keys"] = o                                                   # (S, B, dirs H)
            memory["K"], K_cache = self.attn.precompute(o)                       # (S, B, A)
            memory["mask"] = np.arange(S)[:, None] < lengths[None, :]            # (S, B)
        cache = dict(emb=emb_cache, drop=drop_cache, enc=enc_cache, bridge=bridge_cache, K=K_cache,
                     S=S, B=B) if need_cache else None
        return memory, cache

    def _feeds_c(self):
        """True when a fixed c is concatenated to the decoder's input at every step."""
        return self.context != "attention" and self.feed == "every_step"

    def _encode_backward(self, dinit, dmem, cache):
        """Gradients of the initial decoder state and the memory -> encoder and embedding grads."""
        S, B = cache["S"], cache["B"]
        if self.feed == "init":
            dS = [np.stack([d[i] for d in dinit]) for i in range(self.n_parts)]  # (L, B, H) per part
        elif self._feeds_c():
            dS = [np.zeros((self.L, B, self.H), self.dtype)]
            dS[0][-1] = dmem["c"]
        else:
            dS = []
        dfinal = self._bridge_backward(dS, cache["bridge"], B)
        do = np.zeros((S, B, self.dirs * self.H), self.dtype)                    # (S, B, dirs H)
        if self.context == "attention":
            do = dmem["keys"] + self.attn.precompute_backward(dmem["K"], cache["K"])
        dx, _ = self.encoder.backward(do, cache["enc"], dfinal)
        self.src_emb.backward(self.drop.backward(dx, cache["drop"]), cache["emb"])

    def encode(self, src, src_lengths):
        """src (S, B), src_lengths (B,) -> memory: dict of the initial decoder state and what steps read."""
        return self._encode(src, src_lengths, need_cache=False)[0]

    # -- one decoder step -----------------------------------------------------------------------
    def _step(self, memory, y, state, need_cache=True):
        """y (B,) previous tokens, state per layer -> top output h_t (B, H) (after dropout), state, cache."""
        e, e_drop = self.drop.forward(self.tgt_emb.W[y])                         # (B, E)
        a_cache = None
        if self.context == "attention":
            a, _, a_cache = self.attn.attend(state[-1][0], memory["keys"], memory["K"], memory["mask"],
                                             need_cache)
            x = np.concatenate([e, a], axis=1)                                   # (B, E + dirs H)
        else:
            x = e if memory["c"] is None else np.concatenate([e, memory["c"]], axis=1)
        new, layers = [], []
        for unit, s in zip(self.units, state):
            P = unit.params
            b = P["b_x"] + P["b_h"] if unit.steps.fold_bias else P["b_x"]
            h, s_new, c = unit.steps.step(P, x @ P["W_x"] + b, s)
            layers.append((x, s[0], c))
            new.append(s_new)
            x = h
        h, h_drop = self.drop.forward(x)
        return h, new, ((y, e_drop, a_cache, layers, h_drop) if need_cache else None)

    def _step_backward(self, dh, dstate, cache, dmem, rec):
        """dh (B, H) of the step's output, dstate of its new state -> d(previous state), dE (B, E)."""
        y, e_drop, a_cache, layers, h_drop = cache
        dx = self.drop.backward(dh, h_drop)
        dprev = [None] * self.L
        for k in reversed(range(self.L)):
            unit, (x, h_prev, c) = self.units[k], layers[k]
            dh_k = dstate[k][0] + dx                                             # h feeds step and layer above
            dax, dah, dh_prev, drest, extra = unit.steps.step_back(unit.params, dh_k, dstate[k][1:], c)
            rec[k].append((x, h_prev, dax, dah, c, extra))
            dx = dax @ unit.params["W_x"].T                                      # (B, D_k)
            dprev[k] = [dh_prev, *drest]
        if self.context == "attention":
            dq, dkeys, dK = self.attn.attend_backward(dx[:, self.E:], None, a_cache)
            dprev[-1][0] = dprev[-1][0] + dq                                     # query = h_{t-1}
            dmem["keys"] += dkeys
            dmem["K"] += dK
        elif self._feeds_c():
            dmem["c"] += dx[:, self.E:]
        return [tuple(d) for d in dprev], self.drop.backward(dx[:, :self.E], e_drop)

    def _layer_grads(self, rec):
        """Add dW_x, db_x, dW_h, db_h of every decoder layer: one GEMM each over all steps."""
        for unit, r in zip(self.units, rec):
            X, Hp, dAX, dAH = (np.stack([s[i] for s in r]) for i in range(4))   # (T, B, .)
            P, G = unit.params, unit.grads
            G["W_x"] += X.reshape(-1, X.shape[-1]).T @ dAX.reshape(-1, dAX.shape[-1])
            G["b_x"] += dAX.reshape(-1, dAX.shape[-1]).sum(axis=0)
            unit.steps.param_grads(P, G, Hp, dAH, [s[4] for s in r], [s[5] for s in r])

    # -- training -------------------------------------------------------------------------------
    def forward(self, src, src_lengths, tgt_in, need_cache=True):
        """src (S, B), src_lengths (B,), tgt_in (T, B) -> logits (T, B, V), cache."""
        memory, enc_cache = self._encode(src, src_lengths, need_cache)
        B = _batch_size(memory)
        T = check_int_array("tgt_in", tgt_in, 0, self.V, ndim=2, shape=(None, B)).shape[0]
        if T < 1:
            raise InputError(f"tgt_in: expected at least one step, got shape {tgt_in.shape}")
        coins = None
        if self.training and self.sampling_prob > 0:
            coins = self.rng.random((T, B)) < self.sampling_prob                # (T, B) feed own guess
        Hs = np.empty((T, B, self.H), self.dtype)                                # (T, B, H)
        state, steps = memory["state"], []
        for t in range(T):
            y = tgt_in[t]
            if coins is not None and t:
                y = np.where(coins[t], self.out.infer(Hs[t - 1]).argmax(axis=-1), y)
            Hs[t], state, c = self._step(memory, y, state, need_cache)
            steps.append(c)
        logits, out_cache = self.out.forward(Hs)                                 # (T, B, V)
        if not need_cache:
            return logits, None
        return logits, dict(enc=enc_cache, memory=memory, steps=steps, out=out_cache)

    def backward(self, dlogits, cache):
        """dlogits (T, B, V) -> None (token ids have no gradient); adds every parameter's gradient."""
        dHs = self.out.backward(dlogits, cache["out"])                          # (T, B, H)
        memory, steps = cache["memory"], cache["steps"]
        T, B = dHs.shape[:2]
        dstate = [tuple(np.zeros_like(s) for s in layer) for layer in memory["state"]]
        dmem = {"c": 0, "keys": 0, "K": 0}                                       # summed over steps
        rec = [[] for _ in range(self.L)]
        dE = np.empty((T, B, self.E), self.dtype)                                # (T, B, E)
        for t in reversed(range(T)):
            dstate, dE[t] = self._step_backward(dHs[t], dstate, steps[t], dmem, rec)
        self._layer_grads(rec)
        self.tgt_emb.backward(dE, np.stack([s[0] for s in steps]))
        self._encode_backward(dstate, dmem, cache["enc"])
        return None

    def objective(self, batch, state=None, train=True):
        """Teacher-forced loss on a batch (keys: module docstring) -> (loss_sum, tokens, metrics, None)."""
        if state is not None:
            raise InputError(f"state: EncoderDecoder carries no state between batches, expected None,"
                             f" got {type(state).__name__}")
        src, src_lengths, tgt_in, tgt_out, mask = self._check_batch(batch)
        logits, cache = self.forward(src, src_lengths, tgt_in, need_cache=train)
        loss_sum, dlogits = cross_entropy(logits, tgt_out, mask=mask, reduction="sum")
        count = int(mask.sum())
        hit = (logits.argmax(axis=-1) == tgt_out) & mask                         # (T, B)
        metrics = {"correct": int(hit.sum()), "exact": int(np.all(hit | ~mask, axis=0).sum()),
                   "sequences": int(mask.shape[1])}
        if train and count:
            dlogits /= count
            self.backward(dlogits, cache)
        return loss_sum, count, metrics, None

    def _check_batch(self, batch):
        """The batch's arrays, checked -> src, src_lengths, tgt_in, tgt_out, target mask (T, B) bool."""
        if not isinstance(batch, dict):
            raise InputError(f"batch: expected a dict of arrays, got {type(batch).__name__}")
        keys = ("src", "src_lengths", "tgt_in", "tgt_out", "tgt_lengths")
        missing = [k for k in keys if k not in batch]
        if missing:
            raise InputError(f"batch: missing keys {missing} (expected {list(keys)})")
        src = check_int_array("batch['src']", batch["src"], 0, self.src_emb.V, ndim=2)
        tgt_in = check_int_array("batch['tgt_in']", batch["tgt_in"], 0, self.V, ndim=2,
                                 shape=(None, src.shape[1]))
        tgt_out = check_int_array("batch['tgt_out']", batch["tgt_out"], 0, self.V, shape=tgt_in.shape)
        T, B = tgt_in.shape
        tgt_lengths = check_int_array("batch['tgt_lengths']", batch["tgt_lengths"], 0, T + 1, shape=(B,))
        mask = np.arange(T)[:, None] < tgt_lengths[None, :]                      # (T, B)
        return src, batch["src_lengths"], tgt_in, tgt_out, mask

    # -- decoding -------------------------------------------------------------------------------
    def _log_probs(self, memory):
        """The step function of rnnkit.beam: (y (N,), state) -> log p (N, V), state."""
        def step(y, state):
            h, state, _ = self._step(memory, y, state, need_cache=False)
            return log_softmax(self.out.infer(h)), state
        return step

    def greedy(self, src, src_lengths, max_len=50):
        """Greedy decoding -> ids (T, B) (eos, then pad), lengths (B,) before eos, scores (B,) log p."""
        max_len = check_int("max_len", max_len, 1)
        memory = self.encode(src, src_lengths)
        B = _batch_size(memory)
        return beam.greedy_search(self._log_probs(memory), memory["state"], B, self.bos, self.eos,
                                  self.pad, max_len)

    def beam_search(self, src, src_lengths, beam_size=5, max_len=50, length_penalty=0.6):
        """Beam search, ranked by log p / |y|^length_penalty -> ids (T, B), lengths (B,), scores (B,)."""
        K = check_int("beam_size", beam_size, 1)
        max_len = check_int("max_len", max_len, 1)
        alpha = check_real("length_penalty", length_penalty, 0.0)
        memory = self.encode(src, src_lengths)
        B = _batch_size(memory)
        tiled = _tile(memory, K)
        return beam.beam_search(self._log_probs(tiled), tiled["state"], _take_rows, B, self.bos,
                                self.eos, self.pad, K, max_len, alpha)


def _tile(memory, K):
    """Repeat each source's rows K times (beam b K + k reads source b)."""
    rows = np.repeat(np.arange(_batch_size(memory)), K)                          # (B K,)
    tiled = dict(state=_take_rows(memory["state"], rows),
                 c=None if memory["c"] is None else memory["c"][rows])
    for key in ("keys", "K", "mask"):                                            # (S, B, ...) arrays
        if key in memory:
            tiled[key] = memory[key][:, rows]
    return tiled


def _take_rows(state, rows):
    """The rows `rows` of every array of a per-layer state."""
    return [tuple(s[rows] for s in layer) for layer in state]


def _batch_size(memory):
    """B, the number of rows of the decoder state in `memory`."""
    return memory["state"][0][0].shape[0]
