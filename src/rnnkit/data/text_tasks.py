"""Synthetic text tasks: negation sentiment, seq2seq string pairs, a token-tagging rule. All seeded.

Negation sentiment (make_negation_sentiment): lower-case sentences over a vocabulary of 43 words
(as split by word_tokenize; "wasn't" -> "was" "n't"), labelled by this rule (sentiment_rule):
    1. if the sentence contains "but", only the clause after the last "but" counts;
    2. the last sentiment word of that clause gives the polarity (+1 good, great, liked, ...;
       -1 bad, boring, hated, ...);
    3. a negation ("not", "n't", "never") before it in the clause flips the polarity;
    4. label = 1 if the polarity is positive, else 0.
So "the movie was not very good" -> 0, "the plot was not bad at all" -> 1, "i did not like it" -> 0,
"the film was good but not great" -> 0, "the plot was bad but the acting was great" -> 1.
`negated` marks the sentences that contain a negation. Classes are balanced (N // 2 ones).
Baselines: chance 50%. A linear bag-of-words model stays well below 100%: negation is an XOR of
words ("good" 1, "not good" 0, "bad" 0, "not bad" 1) and "x was good but y was bad" has the same
bag as "x was bad but y was good". An order-aware recurrent model can reach ~100%.

Seq2seq pairs, lists of (src, tgt) strings:
    addition   "12+345" -> "357"
    dates      "march 5, 1999" / "5 march 1999" / "mar 5 1999" -> "1999-03-05"
    reversal   "31415" -> "51413"        sorting   "31415" -> "11345"
Baseline: exact-match accuracy 0 for a model that ignores the source.

Tagging (make_tagging): token sequences over number words, names and other words; the tag of a
token depends on the token alone (TAGS = O, NUM, NAME), so a tagger can reach 100% accuracy.
Baseline: always "O" gets about half the tokens right.
"""
import datetime

import numpy as np

from .._checks import check_int, check_real
from ..errors import InputError
from .synthetic import rng_from_seed
from .vocab import word_tokenize

POSITIVE = ("good", "great", "excellent", "wonderful", "enjoyable", "fun")
NEGATIVE = ("bad", "terrible", "awful", "boring", "dull", "poor")
VERBS = {1: ("like", "love", "enjoy"), 0: ("hate", "dislike")}            # base forms
PAST = {"like": "liked", "love": "loved", "enjoy": "enjoyed", "hate": "hated", "dislike": "disliked"}
SUBJECTS = ("the movie", "the film", "the plot", "the acting", "the story", "the ending")
INTENSIFIERS = ("very", "really", "truly")
NEGATIONS = ("not", "n't", "never")
_POLARITY = {**{w: 1 for w in POSITIVE + VERBS[1]}, **{w: -1 for w in NEGATIVE + VERBS[0]},
             **{PAST[v]: 1 for v in VERBS[1]}, **{PAST[v]: -1 for v in VERBS[0]}}


def sentiment_rule(sentence):
    """The label (0 or 1) of a sentence under the negation rule of this module's docstring."""
    toks = word_tokenize(sentence, lowercase=True)
    if "but" in toks:
        toks = toks[len(toks) - toks[::-1].index("but"):]
    hits = [i for i, t in enumerate(toks) if t in _POLARITY]
    if not hits:
        raise InputError(f"sentence: no sentiment word after the last 'but' in {sentence!r}")
    p = _POLARITY[toks[hits[-1]]]
    if any(t in NEGATIONS for t in toks[:hits[-1]]):
        p = -p
    return int(p > 0)


def _adj(rng, polarity):
    return str(rng.choice(POSITIVE if polarity else NEGATIVE))


def _pick(rng, items):
    return str(rng.choice(items))


def _intens(rng):
    return _pick(rng, INTENSIFIERS) + " " if rng.random() < 0.5 else ""


def _plain(rng, y, k):
    """A sentence of label y without negation; k picks the template."""
    s, be = _pick(rng, SUBJECTS), _pick(rng, ("was", "is"))
    if k == 0:
        return f"{s} {be} {_intens(rng)}{_adj(rng, y)}"                  # the movie was very good
    if k == 1:
        return f"i {PAST[_pick(rng, VERBS[y])]} it"                       # i loved it
    return f"{s} {be} {_adj(rng, 1 - y)} but {_pick(rng, SUBJECTS)} {be} {_adj(rng, y)}"


def _negated(rng, y, k):
    """A sentence of label y with a negation; k picks the template."""
    s, be = _pick(rng, SUBJECTS), _pick(rng, ("was", "is"))
    if k == 0:
        return f"{s} {be} not {_intens(rng)}{_adj(rng, 1 - y)}"          # was not very good
    if k == 1:
        return f"{s} {be} not {_adj(rng, 1 - y)} at all"                   # not bad at all
    if k == 2:
        return f"{s} {be}n't {_adj(rng, 1 - y)}"                           # wasn't good
    if k == 3:
        neg = _pick(rng, ("did not", "didn't", "never"))
        verb = _pick(rng, VERBS[1 - y])
        return f"i {neg} {PAST[verb] if neg == 'never' else verb} it"      # i did not like it
    if k == 4:
        a, b = rng.choice(NEGATIVE if y else POSITIVE, size=2, replace=False)
        return f"{s} {be} {a} but not {b}"                                 # good but not great
    return f"{s} {be} not {_adj(rng, y)} but {_pick(rng, SUBJECTS)} {be} {_adj(rng, y)}"


def sentiment_words():
    """Every word the negation-sentiment generator can emit, sorted."""
    words = set(POSITIVE + NEGATIVE + INTENSIFIERS + NEGATIONS + tuple(PAST.values()))
    words |= set(VERBS[0] + VERBS[1]) | {"i", "it", "did", "was", "is", "but", "at", "all"}
    words |= {w for s in SUBJECTS for w in s.split()}
    return sorted(words)


def make_negation_sentiment(n, negation_fraction=0.5, seed=0):
    """N sentences, labels (N,) int64 balanced 0/1, negated (N,) bool: see the module docstring."""
    n = check_int("n", n, low=2)
    q = check_real("negation_fraction", negation_fraction, low=0.0, high=1.0)
    rng = rng_from_seed(seed)
    labels = rng.permutation(np.arange(n) % 2).astype(np.int64)      # (N,) balanced
    negated = rng.random(n) < q                                       # (N,)
    sentences = []
    for y, neg in zip(labels.tolist(), negated.tolist()):
        k = int(rng.integers(0, 6 if neg else 3))
        sentences.append(_negated(rng, y, k) if neg else _plain(rng, y, k))
    return sentences, labels, negated


# -- seq2seq pairs ---------------------------------------------------------------------------------
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
DATE_STYLES = ("long", "day_first", "short")


def _number(rng, max_digits):
    """A non-negative integer with 1..max_digits digits (digit count uniform), no leading zeros."""
    d = int(rng.integers(1, max_digits + 1))
    return int(rng.integers(0 if d == 1 else 10 ** (d - 1), 10 ** d))


def make_addition_pairs(n, max_digits=3, seed=0):
    """N pairs ("12+345", "357") of two numbers of 1..max_digits digits and their sum."""
    n, m = check_int("n", n, low=1), check_int("max_digits", max_digits, low=1, high=18)
    rng = rng_from_seed(seed)
    pairs = []
    for _ in range(n):
        a, b = _number(rng, m), _number(rng, m)
        pairs.append((f"{a}+{b}", str(a + b)))
    return pairs


def format_date(d, style="long"):
    """A date in words: "long" march 5, 1999; "day_first" 5 march 1999; "short" mar 5 1999."""
    if style not in DATE_STYLES:
        raise InputError(f"style: expected one of {DATE_STYLES}, got {style!r}")
    month = MONTHS[d.month - 1]
    if style == "long":
        return f"{month} {d.day}, {d.year}"
    if style == "day_first":
        return f"{d.day} {month} {d.year}"
    return f"{month[:3]} {d.day} {d.year}"


def make_date_pairs(n, years=(1950, 2049), styles=("long",), seed=0):
    """N pairs ("march 5, 1999", "1999-03-05"); the source style is drawn from `styles`."""
    n = check_int("n", n, low=1)
    if not (isinstance(years, (tuple, list)) and len(years) == 2 and 1 <= years[0] <= years[1] <= 9999):
        raise InputError(f"years: expected (first, last) with 1 <= first <= last <= 9999, got {years!r}")
    bad = [s for s in styles if s not in DATE_STYLES]
    if bad or not styles:
        raise InputError(f"styles: expected a non-empty subset of {DATE_STYLES}, got {styles!r}")
    rng = rng_from_seed(seed)
    lo = datetime.date(int(years[0]), 1, 1).toordinal()
    hi = datetime.date(int(years[1]), 12, 31).toordinal()
    pairs = []
    for _ in range(n):
        d = datetime.date.fromordinal(int(rng.integers(lo, hi + 1)))
        pairs.append((format_date(d, _pick(rng, list(styles))), d.isoformat()))
    return pairs


def _digit_strings(n, min_len, max_len, seed):
    """N random digit strings of length min_len..max_len."""
    n, lo = check_int("n", n, low=1), check_int("min_len", min_len, low=1)
    hi = check_int("max_len", max_len, low=lo)
    rng = rng_from_seed(seed)
    return ["".join(map(str, rng.integers(0, 10, size=int(rng.integers(lo, hi + 1)))))
            for _ in range(n)]


def make_reversal_pairs(n, min_len=1, max_len=8, seed=0):
    """N pairs ("31415", "51413") of a digit string and its reverse."""
    return [(s, s[::-1]) for s in _digit_strings(n, min_len, max_len, seed)]


def make_sorting_pairs(n, min_len=1, max_len=8, seed=0):
    """N pairs ("31415", "11345") of a digit string and its digits sorted."""
    return [(s, "".join(sorted(s))) for s in _digit_strings(n, min_len, max_len, seed)]


# -- tagging ----------------------------------------------------------------------------------------
TAGS = ("O", "NUM", "NAME")
NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "twenty", "hundred")
NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
OTHER_WORDS = ("the", "a", "saw", "met", "with", "and", "gave", "to", "apples", "books", "cats",
               "today", "went", "home", "has", "likes")
_TAG_OF = {**{w: 1 for w in NUMBER_WORDS}, **{w: 2 for w in NAMES}}


def tag_of(token):
    """The tag id of a token: 1 NUM for a number word, 2 NAME for a name, else 0 O."""
    return _TAG_OF.get(token, 0)


def make_tagging(n, min_len=3, max_len=12, seed=0):
    """N token lists and their tag ids (L,) int64 by tag_of; tokens are O, NUM, NAME w.p. 1/2, 1/4, 1/4."""
    n, lo = check_int("n", n, low=1), check_int("min_len", min_len, low=1)
    hi = check_int("max_len", max_len, low=lo)
    rng = rng_from_seed(seed)
    pools = (OTHER_WORDS, OTHER_WORDS, NUMBER_WORDS, NAMES)
    sentences, tags = [], []
    for _ in range(n):
        L = int(rng.integers(lo, hi + 1))
        toks = [_pick(rng, pools[int(c)]) for c in rng.integers(0, 4, size=L)]
        sentences.append(toks)
        tags.append(np.array([tag_of(t) for t in toks], dtype=np.int64))   # (L,)
    return sentences, tags
