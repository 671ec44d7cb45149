"""Data preparation and evaluation for the command line's tasks: language model, classifier, tagger.

Language model ("lm"): the text is cut at character n·(1 - val_split) (moved back to a whitespace
for word level): the first part trains, the last part validates. A char vocabulary holds every
character of the whole text and no specials; a word vocabulary is built on the training part with
<unk>. Each part is one id stream cut into B lanes and seq_len windows (StreamWindows) for
truncated BPTT with carried state: batch {"x": (k, B), "y": (k, B)}, y the next token.
    loss in nats per token; perplexity = exp(loss); bits per token = loss / ln 2.

Classifier ("classify"): Labelled texts (rnnkit.data.read_labelled, or one file per class:
read_class_files) split at random (seeded) into train / validation; a word vocabulary (lowercase,
<pad> = 0, <unk>) built on the training texts; batch {"x": ids (T, B), "y": classes (B,),
"lengths": (B,)}, each text cut to max_len tokens, an empty one becoming one <unk>.

Tagger ("tag"): a token-per-line file, "token TAG" or "token<TAB>TAG" (the first field is the
token, the last the tag), a blank line between sentences, "-DOCSTART-" lines skipped (CoNLL).
batch {"x": ids (T, B), "y": tag ids (T, B), "lengths": (B,)}; only real steps count.
"""
import math
import os

import numpy as np

from ._checks import check_int, check_real
from .data import Labelled, Vocab, pad_sequences, read_text
from .errors import InputError
from .train import Batches, StreamWindows


# -- language model -------------------------------------------------------------------------------
def split_text(text, val_split, level="char"):
    """(train text, validation text): the last val_split of the characters validates."""
    check_real("val_split", val_split, 0.0, 1.0)
    cut = int(len(text) * (1 - val_split))
    if level == "word":
        while 0 < cut < len(text) and not text[cut - 1].isspace():
            cut -= 1
    return text[:cut], text[cut:]


def text_vocab(text, level="char", max_size=None, lowercase=False):
    """Char: every character, no specials. Word: words of `text` with <unk> (max_size caps it)."""
    if level == "char":
        return Vocab(text, level="char", lowercase=lowercase, pad=None, unk=None, bos=None, eos=None)
    return Vocab(text, level="word", lowercase=lowercase, max_size=max_size, pad=None, unk="<unk>",
                 bos=None, eos=None)


def unknown_tokens(vocab, text):
    """The distinct tokens of text that the vocabulary lacks (in order of appearance)."""
    return [t for t in dict.fromkeys(vocab.tokenize(text)) if t not in vocab.stoi]


def stream_windows(ids, batch_size, seq_len):
    """StreamWindows over ids (N,) with at most batch_size lanes (fewer for a short stream); None if N < 2."""
    if len(ids) < 2:
        return None
    B = max(1, min(batch_size, (len(ids) - 1) // seq_len))
    return StreamWindows(ids, B, seq_len)


def lm_data(text, level, val_split, batch_size, seq_len, vocab=None, max_size=None):
    """(vocab, train StreamWindows, validation StreamWindows or None) for a language model."""
    train_text, val_text = split_text(text, val_split, level)
    if vocab is None:
        vocab = text_vocab(text if level == "char" else train_text, level, max_size)
    train_ids = vocab.encode(train_text)                                    # (N,)
    if len(train_ids) < 2:
        raise InputError(f"text: the training part holds {len(train_ids)} token(s); a language model "
                         f"needs at least 2 (use more text or a smaller val_split)")
    val_ids = vocab.encode(val_text) if val_text else np.zeros(0, np.int64)  # (M,)
    return vocab, stream_windows(train_ids, batch_size, seq_len), stream_windows(val_ids, batch_size, seq_len)


def lm_scores(loss, level="char"):
    """{"loss", "perplexity", "bits_per_<level>"} from a mean loss in nats."""
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), f"bits_per_{level}": loss / math.log(2)}


def sample_text(model, vocab, prompt, length, temperature=1.0, top_k=None, top_p=None, seed=0):
    """The prompt continued by `length` sampled tokens (the model's state carried, one step per token)."""
    from .decode import generate, prime
    ids = vocab.encode(prompt)                                              # (P,)
    if len(ids) == 0:
        raise InputError("prompt: expected at least one token, got none")
    was_training = model.training
    model.eval()
    try:
        step = model.generation_step() if hasattr(model, "generation_step") else model.step
        step_fn = _no_unk(step, vocab.unk_id)                               # the plan built once, here
        state, _ = prime(step_fn, ids[:-1, None])
        out, _, _ = generate(step_fn, state, ids[-1:], length, temperature=temperature,
                             top_k=top_k, top_p=top_p, seed=seed)           # (length, 1)
    finally:
        model.train(was_training)
    sep = "" if vocab.level == "char" else " "
    return prompt + sep + vocab.decode(out[:, 0])


def _no_unk(step, unk_id):
    """A step function whose logits forbid <unk> (never generated); step itself when there is none."""
    if unk_id is None:
        return step

    def step_fn(x, state):
        z, state = step(x, state)                                           # (B, V)
        z = z.copy()
        z[:, unk_id] = -np.inf
        return z, state
    return step_fn


# -- classification -------------------------------------------------------------------------------
def read_class_files(directory):
    """Labelled examples from a folder holding one text file per class (name = class, a line = an example)."""
    d = os.fspath(directory)
    if not os.path.isdir(d):
        what = "is not a folder" if os.path.exists(d) else "does not exist"
        raise InputError(f"data_dir: {d!r} {what} (expected a folder with one text file per class)")
    files = sorted(f for f in os.listdir(d) if not f.startswith(".") and os.path.isfile(os.path.join(d, f)))
    if not files:
        raise InputError(f"data_dir: {d!r} holds no files (expected one text file per class)")
    texts, names = [], []
    for f in files:
        lines = [line.strip() for line in read_text(os.path.join(d, f)).splitlines() if line.strip()]
        texts += lines
        names += [os.path.splitext(f)[0]] * len(lines)
    classes = sorted(set(names))
    if len(classes) < 2:
        raise InputError(f"data_dir: {d!r} holds one class ({classes[0]!r}); a classifier needs at least two")
    labels = np.array([classes.index(n) for n in names], dtype=np.int64)    # (N,)
    return Labelled(texts, labels, classes)


def split_indices(n, val_split, seed=0):
    """(train indices, validation indices) of n examples, shuffled by seed; validation may be empty."""
    check_real("val_split", val_split, 0.0, 1.0)
    order = np.random.default_rng([check_int("seed", seed, low=0), 7]).permutation(n)   # (N,)
    n_val = min(int(round(n * val_split)), n - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def word_vocab(texts, max_size=None, min_freq=1, lowercase=True, negation_scope=False):
    """A word vocabulary of texts: <pad> = 0, <unk> = 1, then words by count (negation scopes
    marked when negation_scope: rnnkit.data.vocab.mark_negation)."""
    return Vocab.from_texts(list(texts), level="word", lowercase=lowercase, max_size=max_size,
                            min_freq=min_freq, pad="<pad>", unk="<unk>", bos=None, eos=None,
                            negation_scope=negation_scope)


def encode_texts(vocab, texts, max_len=None):
    """Id arrays of texts, each cut to max_len; an empty text becomes [<unk>]."""
    seqs = []
    for t in texts:
        ids = vocab.encode(t)[:max_len]                                      # (L,)
        seqs.append(ids if len(ids) else np.array([vocab.unk_id], np.int64))
    return seqs


def sequence_batches(seqs, targets, batch_size, pad_id=0, seed=0, shuffle=True):
    """Batches of {"x": (T, B), "y": (B,) or (T, B) padded, "lengths": (B,)} over seqs and targets."""
    if len(seqs) == 0:
        raise InputError("seqs: expected at least one example, got none")
    per_step = not np.isscalar(targets[0]) and np.ndim(targets[0]) == 1

    def make_batch(idx):
        x, lengths = pad_sequences([seqs[i] for i in idx], pad=pad_id)     # (T, B), (B,)
        if per_step:
            y, _ = pad_sequences([targets[i] for i in idx], pad=0)         # (T, B)
        else:
            y = np.asarray(targets)[idx].astype(np.int64)                  # (B,)
        return {"x": x, "y": y, "lengths": lengths}
    return Batches(make_batch, len(seqs), batch_size, shuffle=shuffle, seed=seed)


def classify_probs(model, seqs, batch_size=64):
    """Class probabilities (N, C) of id sequences under a ManyToOne classifier (eval mode)."""
    was_training = model.training
    model.eval()
    out = []
    try:
        for s in range(0, len(seqs), batch_size):
            x, lengths = pad_sequences(seqs[s:s + batch_size])              # (T, B), (B,)
            z = model.forward(x, None, lengths, need_cache=False)[0].astype(np.float64)  # (B, C)
            e = np.exp(z - z.max(axis=1, keepdims=True))                    # (B, C)
            out.append(e / e.sum(axis=1, keepdims=True))
    finally:
        model.train(was_training)
    return np.concatenate(out)                                              # (N, C)


def per_class(pred, y, classes):
    """{class: {"count", "correct", "accuracy"}}: recall of each class."""
    out = {}
    for c, name in enumerate(classes):
        m = y == c
        n, k = int(m.sum()), int((pred[m] == c).sum())
        out[name] = {"count": n, "correct": k, "accuracy": k / n if n else None}
    return out


def relabel(labelled, classes):
    """labels of `labelled` re-indexed into `classes` (a model's); unknown labels raise."""
    extra = [c for c in labelled.classes if c not in classes]
    if extra:
        raise InputError(f"labels: {extra[:5]} not among the model's classes {classes[:20]}")
    index = np.array([classes.index(c) for c in labelled.classes], dtype=np.int64)   # (C_file,)
    return index[labelled.labels]                                           # (N,)


# -- tagging --------------------------------------------------------------------------------------
def read_tagged(path):
    """(sentences, tags): lists of token lists and tag-string lists from a token-per-line file."""
    text = read_text(path)
    sentences, tags, toks, tg = [], [], [], []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            if toks:
                sentences.append(toks)
                tags.append(tg)
            toks, tg = [], []
            continue
        if len(parts) < 2:
            raise InputError(f"{os.fspath(path)}: line {n}: expected 'token TAG', got {line.strip()!r:.80}")
        toks.append(parts[0])
        tg.append(parts[-1])
    if toks:
        sentences.append(toks)
        tags.append(tg)
    if not sentences:
        raise InputError(f"path: {os.fspath(path)!r} holds no tagged tokens")
    return sentences, tags


def tag_sequences(vocab, sentences, tags, tag_names):
    """(token id arrays, tag id arrays); a tag missing from tag_names raises."""
    index = {t: i for i, t in enumerate(tag_names)}
    missing = sorted({t for ts in tags for t in ts} - set(index))
    if missing:
        raise InputError(f"tags: {missing[:5]} not among the model's tags {list(tag_names)[:20]}")
    xs = [vocab.encode(s) for s in sentences]
    ys = [np.array([index[t] for t in ts], np.int64) for ts in tags]       # (L,)
    return xs, ys


def tag_vocab(sentences, max_size=None):
    """A word vocabulary of the tagged tokens (taken whole, case kept): <pad> = 0, <unk> = 1."""
    return Vocab(sentences, level="word", max_size=max_size, pad="<pad>", unk="<unk>", bos=None, eos=None)
