"""Tokenizers and a vocabulary: text <-> tokens <-> integer ids.

Tokenizers:
    char_tokenize("Hi!")            -> ["H", "i", "!"]
    word_tokenize("It isn't bad.")  -> ["It", "is", "n't", "bad", "."]

word_tokenize follows the Penn Treebank convention for clitics: "n't" is split off as a token of its
own ("isn't" -> "is" "n't", "don't" -> "do" "n't", "can't" -> "ca" "n't"), so every negated verb
carries the same negation token; "'s", "'re", "'ve", "'ll", "'m", "'d" are split off too.
Punctuation marks are single tokens; hyphenated words ("well-known") and numbers ("3.14") stay whole.

mark_negation (a word vocabulary built with negation_scope=True applies it after splitting) marks
the scope of a negation, the classic preprocessing of sentiment analysis (Das & Chen 2001; Pang,
Lee & Vaithyanathan 2002): every token after a negation word, up to the next punctuation mark or
"but", gets the prefix "¬", so "not" "good" "," "just" "fine" -> "not" "¬good" "," "just" "fine".
"¬good" is then a word of its own, with its own embedding; the tokenizers never emit a token that
starts with "¬" and goes on, so a marked token never collides with a word of the text.

Vocab: ids 0, 1, ... are the special tokens that are switched on, in the order pad, unk, bos, eos
(so <pad> is 0 whenever it exists), followed by the other tokens by descending count, ties in
lexicographic order. Tokens with count < min_freq are dropped; max_size caps the total number of
ids, specials included. A vocabulary has a level, "char" or "word": it says how a str is split in
encode() and how decode() joins tokens ("" for chars, " " for words).

Unknown tokens map to <unk> when the vocabulary has one; otherwise encode() raises an InputError
that names them. A character-level language model usually wants no specials at all:

    vocab = Vocab(text, pad=None, unk=None, bos=None, eos=None)

to_json() returns a plain dict (str, list, bool, None only) that from_json() turns back into an
equal Vocab; it is meant to be stored inside model files.
"""
import json
import re
from collections import Counter

import numpy as np

from .._checks import check_choice, check_int, check_int_array
from ..errors import InputError

LEVELS = ("char", "word")
FORMAT = "rnnkit.vocab"
VERSION = 1

NEGATIONS = frozenset(("not", "n't", "no", "never", "nothing", "nobody", "none", "neither", "nor",
                       "nowhere", "cannot", "without"))
SCOPE_ENDS = frozenset((".", ",", ";", ":", "!", "?", "-", "but"))
MARK = "\u00ac"                   # ¬, the logical not sign

_WORD_RE = re.compile(r"""
      \w+(?=n't\b)                 # the stem before n't: "is" of "isn't"
    | n't\b                        # the negation clitic itself
    | '(?:s|re|ve|ll|m|d)\b        # other clitics: 's 're 've 'll 'm 'd
    | \d+(?:[.,]\d+)*              # numbers: 12, 3.14, 1,000
    | \w+(?:-\w+)*                 # words, hyphenated words whole
    | [^\w\s]                      # any other symbol on its own
""", re.VERBOSE | re.IGNORECASE)


def char_tokenize(text, lowercase=False):
    """Split text into its characters (lowercased first if asked)."""
    if not isinstance(text, str):
        raise InputError(f"text: expected a str, got {type(text).__name__}")
    return list(text.lower() if lowercase else text)


def word_tokenize(text, lowercase=False):
    """Split text into words, punctuation marks and clitics ("isn't" -> "is", "n't")."""
    if not isinstance(text, str):
        raise InputError(f"text: expected a str, got {type(text).__name__}")
    text = text.replace("\u2019", "'")     # typographic apostrophe -> ASCII
    if lowercase:
        text = text.lower()
    return _WORD_RE.findall(text)


def mark_negation(tokens):
    """Tokens with "¬" before each one in a negation's scope: after a word of NEGATIONS (any case),
    up to the next token of SCOPE_ENDS (not marked, and it ends the scope). A negation word inside
    a scope is marked too, and the scope goes on."""
    out, inside = [], False
    for t in tokens:
        low = t.lower()
        if low in SCOPE_ENDS:
            inside = False
            out.append(t)
            continue
        out.append(MARK + t if inside else t)
        inside = inside or low in NEGATIONS
    return out


def tokenize(text, level="char", lowercase=False, negation_scope=False):
    """Split text by `level`: "char" or "word" (then mark_negation when negation_scope)."""
    check_choice("level", level, LEVELS)
    _check_scope(level, negation_scope)
    if level == "char":
        return char_tokenize(text, lowercase)
    toks = word_tokenize(text, lowercase)
    return mark_negation(toks) if negation_scope else toks


def _check_scope(level, negation_scope):
    if not isinstance(negation_scope, (bool, np.bool_)):
        raise InputError(f"negation_scope: expected True or False, got {negation_scope!r}")
    if negation_scope and level != "word":
        raise InputError(f"negation_scope: marks words, so it needs level='word', got level={level!r}")


def _show(symbols, limit=5):
    """Up to `limit` symbols, repr'd, and how many more."""
    shown = ", ".join(repr(s) for s in symbols[:limit])
    more = len(symbols) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def _flatten(tokens, level, lowercase, negation_scope):
    """Tokens from a str (split by level), a list of str, or a list of token lists."""
    if isinstance(tokens, str):
        return tokenize(tokens, level, lowercase, negation_scope)
    if isinstance(tokens, (bytes, dict)) or not hasattr(tokens, "__iter__"):
        raise InputError(f"tokens: expected a str, str tokens or lists of them, got {type(tokens).__name__}")
    out = []
    for item in tokens:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, (list, tuple)):
            bad = [t for t in item if not isinstance(t, str)]
            if bad:
                raise InputError(f"tokens: expected str tokens, got {type(bad[0]).__name__}")
            out.extend(item)
        else:
            raise InputError(f"tokens: expected a str, str tokens or lists of them, "
                             f"got an item of type {type(item).__name__}")
    return out


class Vocab:
    """Token <-> id map: specials first (<pad> = 0), then tokens by descending count."""

    def __init__(self, tokens, *, level="char", lowercase=False, min_freq=1, max_size=None,
                 pad="<pad>", unk="<unk>", bos="<bos>", eos="<eos>", negation_scope=False):
        check_choice("level", level, LEVELS)
        _check_scope(level, negation_scope)
        check_int("min_freq", min_freq, low=1)
        counts = Counter(_flatten(tokens, level, lowercase, negation_scope))
        specials = [s for s in (pad, unk, bos, eos) if s is not None]
        if max_size is not None:
            check_int("max_size", max_size, low=max(len(specials), 1))
        kept = [t for t, c in counts.items() if c >= min_freq and t not in specials]
        kept.sort(key=lambda t: (-counts[t], t))
        itos = specials + kept
        if max_size is not None:
            itos = itos[:max_size]
        self._setup(itos, level, lowercase, pad, unk, bos, eos, negation_scope)
        self.counts = dict(counts)

    def _setup(self, itos, level, lowercase, pad, unk, bos, eos, negation_scope=False):
        """Set the tables and special ids from a final id -> token list."""
        for name, s in (("pad", pad), ("unk", unk), ("bos", bos), ("eos", eos)):
            if s is not None and not isinstance(s, str):
                raise InputError(f"{name}: expected a str or None, got {s!r}")
        self.itos = list(itos)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise InputError("itos: expected distinct tokens, found duplicates")
        if not self.itos:
            raise InputError("tokens: the vocabulary is empty (no tokens and no specials)")
        self.level, self.lowercase, self.negation_scope = level, bool(lowercase), bool(negation_scope)
        self.pad, self.unk, self.bos, self.eos = pad, unk, bos, eos
        self.pad_id = self.stoi[pad] if pad is not None else None
        self.unk_id = self.stoi[unk] if unk is not None else None
        self.bos_id = self.stoi[bos] if bos is not None else None
        self.eos_id = self.stoi[eos] if eos is not None else None
        self.specials = [s for s in (pad, unk, bos, eos) if s is not None]

    @classmethod
    def from_texts(cls, texts, *, level="char", lowercase=False, negation_scope=False, **kwargs):
        """Build from a list of texts, each split by `level` (and negations marked if asked)."""
        if isinstance(texts, str):
            texts = [texts]
        return cls([tokenize(t, level, lowercase, negation_scope) for t in texts], level=level,
                   lowercase=lowercase, negation_scope=negation_scope, **kwargs)

    def __len__(self):
        return len(self.itos)

    def __contains__(self, token):
        return token in self.stoi

    def __eq__(self, other):
        return isinstance(other, Vocab) and self.to_json() == other.to_json()

    def __repr__(self):
        return f"Vocab(size={len(self)}, level={self.level!r}, specials={self.specials!r})"

    def tokenize(self, text):
        """Split text the way this vocabulary was built (level, lowercase, negation_scope)."""
        return tokenize(text, self.level, self.lowercase, self.negation_scope)

    def encode(self, tokens, add_bos=False, add_eos=False):
        """Ids (T,) int64 of a str (split by level) or a list of tokens; unknowns -> <unk> or error."""
        if not isinstance(tokens, str) and (isinstance(tokens, (bytes, dict))
                                            or not hasattr(tokens, "__iter__")):
            raise InputError(f"tokens: expected a str or a list of tokens, got {type(tokens).__name__}")
        toks = self.tokenize(tokens) if isinstance(tokens, str) else list(tokens)
        missing = [t for t in dict.fromkeys(toks) if t not in self.stoi]
        if missing and self.unk_id is None:
            kind = "character" if self.level == "char" else "token"
            raise InputError(f"tokens: {len(missing)} {kind}(s) not in the vocabulary: "
                             f"{_show(missing)} (the vocabulary has no <unk>; build it from text "
                             f"that contains them, or with unk='<unk>')")
        ids = [self.stoi.get(t, self.unk_id) for t in toks]
        if add_bos:
            ids.insert(0, self._special_id("bos", self.bos_id))
        if add_eos:
            ids.append(self._special_id("eos", self.eos_id))
        return np.array(ids, dtype=np.int64)       # (T,)

    def _special_id(self, name, i):
        if i is None:
            raise InputError(f"add_{name}: this vocabulary has no <{name}> token (built with {name}=None)")
        return i

    def decode(self, ids, skip_specials=False, as_list=False):
        """Tokens of ids (T,): joined into a str ("" for chars, " " for words) or as a list."""
        ids = check_int_array("ids", ids, 0, len(self.itos), ndim=1)
        drop = set(self.specials) if skip_specials else set()
        toks = [self.itos[i] for i in ids.tolist() if self.itos[i] not in drop]
        if as_list:
            return toks
        return ("" if self.level == "char" else " ").join(toks)

    def to_json(self):
        """A plain JSON-able dict holding everything from_json needs."""
        return {"format": FORMAT, "version": VERSION, "level": self.level,
                "lowercase": self.lowercase, "negation_scope": self.negation_scope, "pad": self.pad, "unk": self.unk,
                "bos": self.bos, "eos": self.eos, "itos": list(self.itos)}

    @classmethod
    def from_json(cls, d):
        """The Vocab of a to_json() dict (or of its JSON string)."""
        if isinstance(d, str):
            try:
                d = json.loads(d)
            except json.JSONDecodeError as e:
                raise InputError(f"d: not valid JSON ({e})") from None
        if not isinstance(d, dict):
            raise InputError(f"d: expected a dict from Vocab.to_json(), got {type(d).__name__}")
        if d.get("format") != FORMAT or d.get("version") != VERSION:
            raise InputError(f"d: expected format {FORMAT!r} version {VERSION}, got "
                             f"{d.get('format')!r} version {d.get('version')!r}")
        itos = d.get("itos")
        if not isinstance(itos, list) or not all(isinstance(t, str) for t in itos):
            raise InputError("d['itos']: expected a list of str")
        check_choice("d['level']", d.get("level"), LEVELS)
        specials = {k: d.get(k) for k in ("pad", "unk", "bos", "eos")}
        for k, s in specials.items():
            if s is not None and s not in itos:
                raise InputError(f"d[{k!r}]: special token {s!r} is not in d['itos']")
        v = cls.__new__(cls)
        scope = d.get("negation_scope", False)      # absent in files written before it existed
        _check_scope(d["level"], scope)
        v._setup(itos, d["level"], bool(d.get("lowercase", False)), negation_scope=scope, **specials)
        v.counts = {}
        return v
