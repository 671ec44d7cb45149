"""Tests of rnnkit.data: vocabularies, batching, synthetic tasks, the built-in corpus and file readers."""
import datetime
import json

import numpy as np
import pytest

from rnnkit.data import (BatchIterator, Vocab, char_tokenize, format_date, length_mask,
                         make_adding, make_addition_pairs, make_copy, make_date_pairs,
                         make_mackey_glass, make_negation_sentiment, mark_negation, make_reversal_pairs,
                         make_sine_mixture, make_sorting_pairs, make_tagging, make_temporal_order,
                         pad_sequences, read_labelled, read_text, sentiment_rule, sentiment_words,
                         stdlib_corpus, stream_batches, tag_of, tokenize, word_tokenize)
from rnnkit.errors import InputError, ShapeError


# -- tokenizers and Vocab ------------------------------------------------------------------------
def test_word_tokenize_splits_negation_and_punctuation():
    assert word_tokenize("The movie isn't bad, it's great!") == \
        ["The", "movie", "is", "n't", "bad", ",", "it", "'s", "great", "!"]
    assert word_tokenize("I DIDN'T like it", lowercase=True) == ["i", "did", "n't", "like", "it"]
    assert word_tokenize("don\u2019t stop 3.14 well-known") == ["do", "n't", "stop", "3.14", "well-known"]
    assert char_tokenize("Ab c", lowercase=True) == ["a", "b", " ", "c"]


def test_vocab_specials_order_and_frequency():
    v = Vocab("abracadabra")
    assert v.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"] and v.pad_id == 0
    assert v.itos[4:] == ["a", "b", "r", "c", "d"]            # by count, ties lexicographic
    v = Vocab("abracadabra", min_freq=2, bos=None, eos=None)
    assert v.itos == ["<pad>", "<unk>", "a", "b", "r"]         # c, d occur once
    assert Vocab("abracadabra", max_size=5).itos[4:] == ["a"]  # specials count toward max_size
    with pytest.raises(InputError, match="max_size"):
        Vocab("abc", max_size=3)


def test_vocab_round_trip_char_and_word_and_json():
    text = "hello world, hello rnn"
    v = Vocab(text, pad=None, unk=None, bos=None, eos=None)
    ids = v.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert v.decode(ids) == text
    w = Vocab.from_texts(["The film isn't good.", "A good film"], level="word", lowercase=True)
    ids = w.encode("the film isn't good", add_bos=True, add_eos=True)
    assert ids[0] == w.bos_id and ids[-1] == w.eos_id
    assert w.decode(ids, skip_specials=True, as_list=True) == ["the", "film", "is", "n't", "good"]
    for vocab in (v, w):
        d = json.loads(json.dumps(vocab.to_json()))             # plain JSON survives
        back = Vocab.from_json(d)
        assert back == vocab and back.itos == vocab.itos and back.level == vocab.level
        assert back.unk_id == vocab.unk_id and back.pad_id == vocab.pad_id
    assert Vocab.from_json(json.dumps(w.to_json())) == w


def test_mark_negation_scope():
    t = word_tokenize("It isn't good, but it's NOT bad at all -- no way; never again!", lowercase=True)
    assert mark_negation(t) == ["it", "is", "n't", "\u00acgood", ",", "but", "it", "'s", "not", "\u00acbad",
                                "\u00acat", "\u00acall", "-", "-", "no", "\u00acway", ";", "never",
                                "\u00acagain", "!"]
    assert mark_negation(["Not", "good", "but", "fine"]) == ["Not", "\u00acgood", "but", "fine"]  # any case
    assert mark_negation(["no", "not", "bad", "."]) == ["no", "\u00acnot", "\u00acbad", "."]   # scope goes on
    assert mark_negation(["not"]) == ["not"] and mark_negation([]) == []
    # a text's own symbols never make a marked token: "\u00ac" is split off as a symbol
    assert word_tokenize("\u00acgood") == ["\u00ac", "good"]
    assert tokenize("not good. good", "word", negation_scope=True) == ["not", "\u00acgood", ".", "good"]
    with pytest.raises(InputError, match="negation_scope: .*level='word', got level='char'"):
        tokenize("not good", "char", negation_scope=True)
    with pytest.raises(InputError, match="negation_scope: expected True or False, got 'yes'"):
        Vocab("not good", level="word", negation_scope="yes")


def test_vocab_negation_scope_encodes_and_round_trips():
    texts = ["not good at all .", "good , fine", "it was n't bad"]
    v = Vocab.from_texts(texts, level="word", lowercase=True, negation_scope=True)
    assert v.negation_scope and {"\u00acgood", "\u00acat", "\u00acall", "\u00acbad"} <= set(v.itos)
    assert v.tokenize("Not GOOD , good") == ["not", "\u00acgood", ",", "good"]
    assert v.encode("not good , good").tolist() == [v.stoi[t] for t in ("not", "\u00acgood", ",", "good")]
    d = json.loads(json.dumps(v.to_json()))
    assert d["negation_scope"] is True and Vocab.from_json(d) == v
    assert Vocab.from_json(d).tokenize("not bad") == ["not", "\u00acbad"]
    plain = Vocab.from_texts(texts, level="word", lowercase=True)
    old = {k: val for k, val in plain.to_json().items() if k != "negation_scope"}   # a file from before
    assert not Vocab.from_json(old).negation_scope and Vocab.from_json(old) == plain
    with pytest.raises(InputError, match="negation_scope"):
        Vocab.from_json({**plain.to_json(), "negation_scope": "true"})


def test_vocab_unknown_symbols():
    v = Vocab("abc", pad=None, unk=None, bos=None, eos=None)
    with pytest.raises(InputError, match=r"3 character\(s\) not in the vocabulary: 'x', 'y', '!'"):
        v.encode("abxy!a")
    with pytest.raises(InputError, match=r"and 2 more"):
        v.encode("defghij")
    u = Vocab("abc")
    assert u.encode("axb").tolist() == [u.stoi["a"], u.unk_id, u.stoi["b"]]
    with pytest.raises(InputError, match="no <bos>"):
        v.encode("ab", add_bos=True)
    with pytest.raises(InputError, match="ids"):
        v.decode([0, 7])
    with pytest.raises(InputError, match="format"):
        Vocab.from_json({"itos": ["a"]})


# -- padding and batching ------------------------------------------------------------------------
def test_pad_sequences_and_mask():
    seqs = [np.array([1, 2, 3]), np.array([4]), np.array([5, 6])]
    ids, lengths = pad_sequences(seqs, pad=0)
    assert ids.shape == (3, 3) and ids.dtype == np.int64
    assert ids.T.tolist() == [[1, 2, 3], [4, 0, 0], [5, 6, 0]]
    assert lengths.tolist() == [3, 1, 2]
    bf, _ = pad_sequences(seqs, pad=9, batch_first=True)
    assert bf.tolist() == [[1, 2, 3], [4, 9, 9], [5, 6, 9]]
    mask = length_mask(lengths)
    assert mask.shape == (3, 3) and mask.T.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    with pytest.raises(InputError):
        pad_sequences([])
    with pytest.raises(ShapeError, match=r"seqs\[1\]"):
        pad_sequences([np.array([1]), np.zeros((2, 2), dtype=np.int64)])


def test_batch_iterator_deterministic_and_covers_epoch():
    a = BatchIterator(10, 3, seed=5)
    b = BatchIterator(10, 3, seed=5)
    ea, eb = [x.tolist() for x in a], [x.tolist() for x in b]
    assert ea == eb and [len(x) for x in ea] == [3, 3, 3, 1]
    assert sorted(sum(ea, [])) == list(range(10))
    assert [x.tolist() for x in a] != ea                        # epoch 1 is a new permutation
    assert len(BatchIterator(10, 3, drop_last=True)) == 3
    assert [x.tolist() for x in BatchIterator(5, 2, shuffle=False)] == [[0, 1], [2, 3], [4]]


def test_batch_iterator_resume_mid_epoch():
    run = BatchIterator(23, 4, seed=1)
    ref = [run.next_batch().tolist() for _ in range(15)]       # crosses two epoch boundaries
    it = BatchIterator(23, 4, seed=1)
    for _ in range(9):
        it.next_batch()
    saved = json.loads(json.dumps(it.state()))
    resumed = BatchIterator(23, 4, seed=1)
    resumed.set_state(saved)
    assert [resumed.next_batch().tolist() for _ in range(6)] == ref[9:]
    with pytest.raises(InputError, match="seed"):
        BatchIterator(23, 4, seed=2).set_state(saved)


def test_stream_batches_lanes_concatenate_and_resume():
    w = np.arange(103, dtype=np.int64) * 7
    it = stream_batches(w, batch_size=4, seq_len=6)
    wins = list(it)
    L = (103 - 1) // 4
    assert len(wins) == len(it) == -(-L // 6) and wins[-1][0].shape == (L % 6, 4)
    X = np.concatenate([x for x, _ in wins])                   # (L, B)
    Y = np.concatenate([y for _, y in wins])
    for b in range(4):
        assert np.array_equal(X[:, b], w[b * L:(b + 1) * L])
        assert np.array_equal(Y[:, b], w[b * L + 1:(b + 1) * L + 1])
    it2 = stream_batches(w, 4, 6)
    for _ in range(3):
        it2.next_batch()
    again = stream_batches(w, 4, 6)
    again.set_state(json.loads(json.dumps(it2.state())))
    rest = list(again)
    assert len(rest) == len(wins) - 3
    assert all(np.array_equal(x, wx) and np.array_equal(y, wy)
               for (x, y), (wx, wy) in zip(rest, wins[3:]))
    with pytest.raises(InputError, match="too short"):
        stream_batches(np.arange(4), batch_size=4, seq_len=2)


# -- synthetic tasks -----------------------------------------------------------------------------
def test_adding_problem():
    x, y = make_adding(20000, T=50, seed=0)
    assert x.shape == (50, 20000, 2) and y.shape == (20000, 1) and x.dtype == np.float32
    assert np.all(x[:, :, 1].sum(axis=0) == 2)
    assert np.all(x[:25, :, 1].sum(axis=0) == 1)                # one marker in each half
    assert np.allclose((x[:, :, 0] * x[:, :, 1]).sum(axis=0), y[:, 0], atol=1e-6)
    assert 0.15 <= float(((y - y.mean()) ** 2).mean()) <= 0.19
    assert np.array_equal(make_adding(5, seed=3)[0], make_adding(5, seed=3)[0])


def test_copy_and_temporal_order():
    x, y = make_copy(50, n_copy=5, delay=7, n_symbols=4, seed=0)
    assert x.shape == y.shape == (17, 50)
    assert np.array_equal(y[-5:], x[:5]) and np.all(y[:-5] == 0)
    assert np.all(x[5 + 7 - 1] == 5) and x[:5].min() >= 1 and x[:5].max() <= 4
    x, c = make_temporal_order(400, T=100, seed=0)
    assert x.shape == (100, 400) and np.all(x[0] == 6) and np.all(x[-1] == 7)
    rel = [np.flatnonzero((x[:, i] == 4) | (x[:, i] == 5)) for i in range(400)]
    assert all(len(r) == 2 and 10 <= r[0] <= 20 and 50 <= r[1] <= 60 for r in rel)
    assert all(c[i] == 2 * (x[r[0], i] == 5) + (x[r[1], i] == 5) for i, r in enumerate(rel))
    assert set(np.unique(c).tolist()) == {0, 1, 2, 3}


def test_sine_mixture_and_mackey_glass():
    s = make_sine_mixture(8, T=300, noise=0.0, seed=1)
    assert s.shape == (300, 8) and np.all(np.abs(s) <= 1.0 + 1e-6)
    assert not np.array_equal(s, make_sine_mixture(8, T=300, noise=0.0, seed=2))
    mg = make_mackey_glass(500, seed=0)
    assert mg.shape == (500,) and np.all(np.isfinite(mg))
    assert 0.1 < mg.min() and mg.max() < 1.6 and mg.std() > 0.1   # chaotic, not a fixed point
    assert np.array_equal(mg, make_mackey_glass(500, seed=0))
    with pytest.raises(InputError, match="tau"):
        make_mackey_glass(10, tau=17.05)


def test_negation_sentiment_balanced_and_follows_rule():
    sents, labels, negated = make_negation_sentiment(1000, seed=0)
    assert len(sents) == 1000 and labels.sum() == 500
    assert 0.4 < negated.mean() < 0.6
    assert all(("not" in s.split() or "n't" in s or "never" in s.split()) == bool(g)
               for s, g in zip(sents, negated))
    assert all(sentiment_rule(s) == y for s, y in zip(sents, labels.tolist()))
    words = {t for s in sents for t in word_tokenize(s)}
    assert words <= set(sentiment_words()) and 20 <= len(sentiment_words()) <= 60
    hand = {"the movie was not very good": 0, "the plot was not bad at all": 1,
            "i did not like it": 0, "i didn't hate it": 1, "the film was good but not great": 0,
            "the plot was bad but the acting was great": 1, "the story is really boring": 0,
            "i loved it": 1, "the ending wasn't terrible": 1}
    assert {s: sentiment_rule(s) for s in hand} == hand
    seen = {s: y for s, y in zip(sents, labels.tolist()) if s in hand}
    assert seen and all(hand[s] == y for s, y in seen.items())


def test_seq2seq_pairs():
    def adds_up(src, tgt):
        a, b = src.split("+")
        return int(a) + int(b) == int(tgt) and (a == "0" or a[0] != "0")
    assert adds_up("12+345", "357") and not adds_up("12+345", "358")
    pairs = make_addition_pairs(300, max_digits=3, seed=0)
    assert all(adds_up(s, t) and max(map(len, s.split("+"))) <= 3 for s, t in pairs)
    assert pairs == make_addition_pairs(300, max_digits=3, seed=0)
    formats = {"long": "%B %d, %Y", "day_first": "%d %B %Y", "short": "%b %d %Y"}
    for src, tgt in make_date_pairs(200, styles=tuple(formats), seed=0):
        parsed = [datetime.datetime.strptime(src, f).date() for f in formats.values()
                  if _parses(src, f)]
        assert parsed and parsed[0].isoformat() == tgt
    assert format_date(datetime.date(1999, 3, 5)) == "march 5, 1999"
    assert all(t == s[::-1] for s, t in make_reversal_pairs(50, seed=0))
    assert all(t == "".join(sorted(s)) and s.isdigit() for s, t in make_sorting_pairs(50, seed=0))


def _parses(s, fmt):
    try:
        datetime.datetime.strptime(s, fmt)
        return True
    except ValueError:
        return False


def test_tagging_rule():
    sents, tags = make_tagging(100, seed=0)
    assert all(len(s) == len(t) and 3 <= len(s) <= 12 for s, t in zip(sents, tags))
    assert all(t.tolist() == [tag_of(w) for w in s] for s, t in zip(sents, tags))
    flat = np.concatenate(tags)
    assert set(flat.tolist()) == {0, 1, 2}
    assert tag_of("seven") == 1 and tag_of("alice") == 2 and tag_of("saw") == 0


# -- corpus and files ----------------------------------------------------------------------------
def test_stdlib_corpus_deterministic(tmp_path):
    a = stdlib_corpus(max_chars=50_000, seed=0)
    assert len(a) == 50_000 and "def " in a
    assert a == stdlib_corpus(max_chars=50_000, seed=0)
    assert a != stdlib_corpus(max_chars=50_000, seed=1)
    with pytest.raises(InputError, match="no readable"):
        stdlib_corpus(max_chars=100, root=tmp_path)


def test_read_text_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_text(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_text(tmp_path / "empty.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"abc\ndef\xff ok")
    with pytest.raises(InputError, match=r"bad\.txt.*0xff at byte offset 7 \(line 2\)"):
        read_text(bad)
    assert read_text(bad, errors="replace") == "abc\ndef\ufffd ok"
    (tmp_path / "ok.txt").write_bytes(b"\xef\xbb\xbfhello\n")
    assert read_text(tmp_path / "ok.txt") == "hello\n"
    with pytest.raises(InputError, match="directory"):
        read_text(tmp_path)


def test_read_labelled_formats(tmp_path):
    (tmp_path / "a.tsv").write_text("sentence\tlabel\ngood film\t1\nbad, \"dull\" film\t0\n")
    d = read_labelled(tmp_path / "a.tsv")
    assert d.texts == ["good film", 'bad, "dull" film'] and d.labels.tolist() == [1, 0]
    assert d.classes == ["0", "1"]
    (tmp_path / "b.csv").write_text('good,pos\n"bad, dull",neg\nfine,pos\n')
    d = read_labelled(tmp_path / "b.csv")
    assert d.texts == ["good", "bad, dull", "fine"] and d.classes == ["neg", "pos"]
    assert d.labels.tolist() == [1, 0, 1]
    (tmp_path / "c.jsonl").write_text('{"text": "ok", "label": 2}\n\n{"text": "meh", "label": 10}\n')
    d = read_labelled(tmp_path / "c.jsonl")
    assert d.classes == ["2", "10"] and d.labels.tolist() == [0, 1]
    (tmp_path / "d.txt").write_text("1 a gorgeous film\n__label__0 a dull one\n")
    d = read_labelled(tmp_path / "d.txt", format="sst")
    assert d.texts == ["a gorgeous film", "a dull one"] and d.labels.tolist() == [1, 0]


def test_read_labelled_errors(tmp_path):
    (tmp_path / "one.tsv").write_text("text\tlabel\na\t1\nb\t1\n")
    with pytest.raises(InputError, match="two classes"):
        read_labelled(tmp_path / "one.tsv")
    (tmp_path / "nolabel.jsonl").write_text('{"text": "a", "score": 1}\n')
    with pytest.raises(InputError, match="line 1: no label key"):
        read_labelled(tmp_path / "nolabel.jsonl")
    (tmp_path / "nolabel.csv").write_text("text,score\na,1\n")
    with pytest.raises(InputError, match="no label column"):
        read_labelled(tmp_path / "nolabel.csv")
    (tmp_path / "short.tsv").write_text("x\t1\ny\n")
    with pytest.raises(InputError, match="line 2: expected at least 2 columns"):
        read_labelled(tmp_path / "short.tsv")
    (tmp_path / "head.tsv").write_text("text\tlabel\n")
    with pytest.raises(InputError, match="no examples"):
        read_labelled(tmp_path / "head.tsv")
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_labelled(tmp_path / "e.csv")
    with pytest.raises(InputError, match="extension"):
        read_labelled(tmp_path / "data.xyz")
