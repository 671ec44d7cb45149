"""Greedy and beam search over a step function: one decoder step per emitted token.

    step(y_prev (N,), state) -> log_probs (N, V), state     one decoder step for N rows
    reorder(state, rows)     -> state                        the rows `rows` (N,) of a state

Greedy:      y_t = argmax_y log p(y | y_<t, x), fed back, until eos or max_len.
Beam search: K = beam_size hypotheses per source, rows b K .. b K + K - 1 of the state. At each
step every live hypothesis is extended by every token and the 2K best extensions by total
log-probability are kept (fairseq's rule): those among the first K that end in eos are finished,
the K best that do not stay live. A source is done when K of its hypotheses are finished; at
max_len its live hypotheses join the finished ones. The answer maximises (plain length
normalisation)

    score(y) / |y|^alpha         score(y) = Σ_t log p(y_t | y_<t, x), |y| counting the eos

alpha = length_penalty: 0 ranks by the raw log-probability, 1 by the mean per token. With K = 1
beam search is greedy search.

Both return ids (T, B) int64 (each output with its eos, then `pad`), lengths (B,) (tokens before
the eos, or T when none was emitted) and scores (B,) (the raw log-probability score(y)).
"""
import numpy as np


def _pack(hyps, pad, eos):
    """Per-source token lists -> ids (T, B) padded, lengths (B,) before eos."""
    T = max(len(h) for h in hyps)
    ids = np.full((T, len(hyps)), pad, dtype=np.int64)                      # (T, B)
    lengths = np.empty(len(hyps), dtype=np.int64)                           # (B,)
    for b, h in enumerate(hyps):
        ids[:len(h), b] = h
        lengths[b] = len(h) - 1 if len(h) and h[-1] == eos else len(h)
    return ids, lengths


def greedy_search(step, state, B, bos, eos, pad, max_len):
    """Greedy decoding of B sources -> ids (T, B), lengths (B,), scores (B,)."""
    y = np.full(B, bos, dtype=np.int64)                                     # (B,)
    done = np.zeros(B, dtype=bool)                                          # (B,)
    scores = np.zeros(B)                                                    # (B,)
    out = []
    for _ in range(max_len):
        logp, state = step(y, state)
        y = logp.argmax(axis=-1)                                            # (B,)
        scores += np.where(done, 0.0, logp[np.arange(B), y])
        y = np.where(done, pad, y)
        out.append(y)
        done |= y == eos
        if done.all():
            break
    ids = np.stack(out)                                                     # (T, B)
    return ids, _lengths(ids, eos), scores


def _lengths(ids, eos):
    """Tokens before the first eos of each column of ids (T, B) (T when there is none)."""
    hit = ids == eos                                                        # (T, B)
    return np.where(hit.any(axis=0), hit.argmax(axis=0), ids.shape[0]).astype(np.int64)


def _normalised(score, n, alpha):
    """score / n^alpha."""
    return score / (n ** alpha) if alpha else score


def beam_search(step, state, reorder, B, bos, eos, pad, beam_size, max_len, length_penalty):
    """Beam search for B sources (state tiled to B K rows) -> ids (T, B), lengths (B,), scores (B,)."""
    K, alpha = beam_size, length_penalty
    y = np.full(B * K, bos, dtype=np.int64)                                 # (B K,)
    score = np.full((B, K), -np.inf)                                        # (B, K)
    score[:, 0] = 0.0                                                       # one live start per source
    seqs = np.zeros((B, K, 0), dtype=np.int64)                              # (B, K, t)
    finished = [[] for _ in range(B)]                                       # (normalised, raw, tokens)
    rows_b = np.arange(B)[:, None]                                          # (B, 1)
    for t in range(max_len):
        logp, state = step(y, state)
        V = logp.shape[-1]
        cand = (score[:, :, None] + logp.reshape(B, K, V)).reshape(B, K * V)  # (B, K V)
        top = np.argsort(-cand, axis=1, kind="stable")[:, :2 * K]           # (B, 2K) best first
        top_score = np.take_along_axis(cand, top, axis=1)                   # (B, 2K)
        beam, tok = top // V, top % V                                       # (B, 2K)
        is_eos = tok == eos
        for b, j in zip(*np.nonzero(is_eos[:, :K] & np.isfinite(top_score[:, :K]))):
            if len(finished[b]) < K:
                toks = list(seqs[b, beam[b, j]]) + [eos]
                finished[b].append((_normalised(top_score[b, j], t + 1, alpha), top_score[b, j], toks))
        live = np.argsort(is_eos, axis=1, kind="stable")[:, :K]             # (B, K) best non-eos
        beam, tok = np.take_along_axis(beam, live, 1), np.take_along_axis(tok, live, 1)
        score = np.take_along_axis(top_score, live, 1)                      # (B, K)
        seqs = np.concatenate([seqs[rows_b, beam], tok[:, :, None]], axis=2)  # (B, K, t + 1)
        state = reorder(state, (rows_b * K + beam).reshape(-1))
        y = tok.reshape(-1)                                                 # (B K,)
        if all(len(f) >= K for f in finished):
            break
    for b in range(B):
        if len(finished[b]) < K:
            n = seqs.shape[2]
            finished[b] += [(_normalised(s, n, alpha), s, list(seqs[b, k]))
                            for k, s in enumerate(score[b]) if np.isfinite(s)]
    best = [max(f, key=lambda h: h[0]) for f in finished]
    ids, lengths = _pack([h[2] for h in best], pad, eos)
    return ids, lengths, np.array([h[1] for h in best])
