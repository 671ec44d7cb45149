"""Sequence-to-sequence data and decoding: pair files -> vocabularies -> batches -> translations.

Pair file (TSV, UTF-8): one pair per line, "source<TAB>target"; further tab-separated columns
are ignored, blank lines skipped; a line without a tab or with an empty side is an error naming
its line. Built-in pairs (no file): addition "12+345" -> "357", dates "march 5, 1999" ->
"1999-03-05", reverse "31415" -> "51413", sort "31415" -> "11345" (rnnkit.data generators).

Vocabularies: the source's holds <pad> (id 0) and its tokens; the target's <pad> 0, <bos> 1,
<eos> 2 and its tokens (the ids rnnkit.models.EncoderDecoder expects). Neither has an <unk>: a
token never seen in training is an error at translation time.

Batch (EncoderDecoder.objective), for target tokens y_1 .. y_n of each pair:
    src (S, B) int64, src_lengths (B,), tgt_in (T, B) = <bos> y_1 .. y_n,
    tgt_out (T, B) = y_1 .. y_n <eos>, tgt_lengths (B,) = n + 1;  padded with <pad>, T = max n + 1.
Held-out split: the distinct sources are shuffled (seeded) and the last fraction of them, with
every pair they appear in, is held out, so no held-out source was seen in training.
Exact match: the share of held-out pairs whose decoded output equals the target token for token.
Attention map: the decoder re-run on a source and its output (teacher-forced), keeping the
attention weights w (T, S) of every output token (its <eos> included) over the source tokens.
"""

import numpy as np

from ._checks import check_choice, check_int, check_real
from .data import (Vocab, make_addition_pairs, make_date_pairs, make_reversal_pairs,
                   make_sorting_pairs, pad_sequences, tokenize)
from .errors import InputError

BUILTINS = {"addition": make_addition_pairs, "dates": make_date_pairs,
            "reverse": make_reversal_pairs, "sort": make_sorting_pairs}


# -- pairs ----------------------------------------------------------------------------------------
def read_pairs(path):
    """[(source, target)] of a TSV pair file."""
    from .data import read_text
    try:
        lines = read_text(path).splitlines()  # clear errors: missing, not UTF-8
    except InputError as e:
        if "is empty" in str(e) or "only whitespace" in str(e):
            raise InputError(f"{path}: empty file (expected lines 'source<TAB>target')") from None
        raise
    pairs = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 2:
            raise InputError(f"{path}: line {i}: expected 'source<TAB>target', found no tab in {line[:60]!r}")
        src, tgt = cols[0].strip(), cols[1].strip()
        if not src or not tgt:
            side = "source" if not src else "target"
            raise InputError(f"{path}: line {i}: empty {side} in {line[:60]!r}")
        pairs.append((src, tgt))
    if not pairs:
        raise InputError(f"{path}: empty file (expected lines 'source<TAB>target')")
    return pairs


def builtin_pairs(name, n, seed=0):
    """n pairs of the built-in task `name` (addition, dates, reverse, sort)."""
    check_choice("builtin", name, tuple(BUILTINS))
    return BUILTINS[name](check_int("n", n, low=1), seed=seed)


def split_pairs(pairs, val_fraction, seed=0):
    """(train, held-out) pairs; the held-out ones share no source with the training ones."""
    val_fraction = check_real("val_fraction", val_fraction, 0.0, 1.0)
    sources = list(dict.fromkeys(s for s, _ in pairs))
    order = np.random.default_rng(seed).permutation(len(sources))            # (U,)
    n_val = int(round(val_fraction * len(sources)))
    if n_val and n_val == len(sources):
        raise InputError(f"val_split: {len(sources)} distinct sources leave none to train on")
    held = {sources[i] for i in order[len(sources) - n_val:]}
    return [p for p in pairs if p[0] not in held], [p for p in pairs if p[0] in held]


# -- vocabularies and batches ---------------------------------------------------------------------
def build_vocabs(pairs, level="char", lowercase=False):
    """(source Vocab with <pad>, target Vocab with <pad> <bos> <eos>) from the pairs."""
    check_choice("level", level, ("char", "word"))
    src = Vocab.from_texts([s for s, _ in pairs], level=level, lowercase=lowercase,
                           unk=None, bos=None, eos=None)
    tgt = Vocab.from_texts([t for _, t in pairs], level=level, lowercase=lowercase, unk=None)
    return src, tgt


def encode_source(vocab, text):
    """ids (S,) of a source text; tokens never seen in training are an error naming them."""
    toks = vocab.tokenize(text)
    unknown = [t for t in dict.fromkeys(toks) if t not in vocab]
    if unknown:
        kind = "characters" if vocab.level == "char" else "words"
        shown = ", ".join(repr(t) for t in unknown[:8])
        raise InputError(f"text: {kind} not seen in training: {shown} (the model knows "
                         f"{len(vocab) - len(vocab.specials)} {kind})")
    if not toks:
        raise InputError(f"text: expected at least one token, got {text!r}")
    return vocab.encode(toks)


def encode_pairs(pairs, src_vocab, tgt_vocab):
    """[(source ids (S,), target ids (n,))] of the pairs (targets without <bos> and <eos>)."""
    return [(encode_source(src_vocab, s), tgt_vocab.encode(tgt_vocab.tokenize(t))) for s, t in pairs]


def encode_known_pairs(pairs, src_vocab, tgt_vocab):
    """encode_pairs of the pairs whose every token is in the vocabularies (the others are left out)."""
    known = [(s, t) for s, t in pairs if all(x in src_vocab for x in src_vocab.tokenize(s))
             and all(y in tgt_vocab for y in tgt_vocab.tokenize(t))]
    return encode_pairs(known, src_vocab, tgt_vocab)


def make_batch(encoded, idx, pad=0, bos=1, eos=2):
    """The EncoderDecoder batch dict of the encoded pairs at idx (module docstring)."""
    items = [encoded[int(i)] for i in idx]
    src, src_lengths = pad_sequences([s for s, _ in items], pad=pad)          # (S, B), (B,)
    tgt_in, tgt_lengths = pad_sequences([np.concatenate([[bos], t]) for _, t in items], pad=pad)
    tgt_out, _ = pad_sequences([np.concatenate([t, [eos]]) for _, t in items], pad=pad)  # (T, B)
    return {"src": src, "src_lengths": src_lengths, "tgt_in": tgt_in, "tgt_out": tgt_out,
            "tgt_lengths": tgt_lengths}


def batch_maker(encoded, pad=0, bos=1, eos=2):
    """make_batch(indices (B,)) over `encoded`, for rnnkit.train.Batches."""
    return lambda idx: make_batch(encoded, idx, pad, bos, eos)


# -- decoding -------------------------------------------------------------------------------------
def decode(model, sources, beam=1, max_len=50):
    """Output id lists (without <eos>) of source id arrays: greedy (beam 1) or beam search."""
    beam, outputs = check_int("beam", beam, low=1), []
    model.eval()
    for start in range(0, len(sources), 256):
        chunk = sources[start:start + 256]
        src, lengths = pad_sequences(chunk, pad=model.pad)                    # (S, B), (B,)
        if beam == 1:
            ids, out_len, _ = model.greedy(src, lengths, max_len=max_len)
        else:
            ids, out_len, _ = model.beam_search(src, lengths, beam_size=beam, max_len=max_len)
        outputs += [ids[:out_len[b], b].tolist() for b in range(len(chunk))]
    return outputs


def exact_match(model, encoded, beam=1, max_len=50):
    """(share of pairs decoded exactly, [(index, output ids)] of the wrong ones)."""
    if not encoded:
        raise InputError("pairs: expected at least one held-out pair, got none")
    outputs = decode(model, [s for s, _ in encoded], beam, max_len)
    wrong = [(i, o) for i, (o, (_, t)) in enumerate(zip(outputs, encoded)) if o != t.tolist()]
    return 1 - len(wrong) / len(encoded), wrong


def translate(model, src_vocab, tgt_vocab, text, beam=5, max_len=50):
    """(output text without specials, source ids (S,), output ids (n,)) of a text, ends stripped."""
    src = encode_source(src_vocab, text.strip() if isinstance(text, str) else text)
    out = decode(model, [src], beam, max_len)[0]
    out = np.array(out, np.int64)                                            # (n,)
    return tgt_vocab.decode(out, skip_specials=True), src, out


def attention_map(model, src, out):
    """Attention weights w (n + 1, S): row t over the source when output token t (<eos> last) was emitted."""
    if model.context != "attention":
        raise InputError(f"model: has no attention (context {model.context!r}), so no attention map")
    model.eval()
    memory = model.encode(np.asarray(src, np.int64)[:, None], np.array([len(src)]))
    state, y, rows = memory["state"], np.array([model.bos]), []
    for token in list(out) + [model.eos]:
        _, w, _ = model.attn.attend(state[-1][0], memory["keys"], memory["K"], memory["mask"],
                                    need_cache=False)                        # w (S, 1)
        rows.append(w[:, 0])
        _, state, _ = model._step(memory, y, state, need_cache=False)        # reads the same query
        y = np.array([token])
    return np.stack(rows)                                                    # (n + 1, S)


def tokens(vocab, ids):
    """The token strings of ids (for plot labels)."""
    return [vocab.itos[int(i)] for i in ids]


def max_target_len(pairs, level="char", lowercase=False):
    """The most target tokens of any pair."""
    return max(len(tokenize(t, level, lowercase)) for _, t in pairs)
