"""rnnkit.translation (pair files, vocabularies, batches, decoding) and `rnnkit train seq2seq` / `rnnkit translate`."""
import argparse

import numpy as np
import pytest

from rnnkit import translation as tr
from rnnkit.cli import main
from rnnkit.cli.common import load_run
from rnnkit.cli.seq2seq import evaluate_seq2seq
from rnnkit.errors import InputError
from rnnkit.models.seq2seq import EncoderDecoder


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- pair files -----------------------------------------------------------------------------------
def test_read_pairs(tmp_path):
    path = write(tmp_path / "p.tsv", "hello\tbonjour\textra column\n\ncat\tchat\n")
    assert tr.read_pairs(path) == [("hello", "bonjour"), ("cat", "chat")]


@pytest.mark.parametrize("text, message", [
    ("a\tb\nno tab here\n", "line 2: expected 'source<TAB>target', found no tab"),
    ("a\tb\n\n\t x\n", "line 3: empty source"),
    ("a\t\n", "line 1: empty target"),
    ("", "empty file"),
    ("\n  \n", "empty file"),
])
def test_read_pairs_errors(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        tr.read_pairs(write(tmp_path / "bad.tsv", text))


def test_split_pairs_holds_out_whole_sources():
    pairs = [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4"), ("d", "5")] * 3
    train, held = tr.split_pairs(pairs, 0.5, seed=0)
    assert len(train) + len(held) == len(pairs) and held
    assert not {s for s, _ in train} & {s for s, _ in held}
    assert tr.split_pairs(pairs, 0.0)[1] == []


def test_builtin_pairs():
    for name in tr.BUILTINS:
        pairs = tr.builtin_pairs(name, 5, seed=3)
        assert len(pairs) == 5 and all(isinstance(s, str) and isinstance(t, str) for s, t in pairs)
    s, t = tr.builtin_pairs("addition", 1)[0]
    a, b = s.split("+")
    assert int(a) + int(b) == int(t)
    with pytest.raises(InputError, match="builtin"):
        tr.builtin_pairs("nope", 5)


# -- vocabularies and batches ---------------------------------------------------------------------
def test_vocabs_and_batch_layout():
    pairs = [("ab", "xyz"), ("b", "y")]
    src_v, tgt_v = tr.build_vocabs(pairs)
    assert (src_v.pad_id, src_v.unk_id, src_v.bos_id) == (0, None, None)
    assert (tgt_v.pad_id, tgt_v.bos_id, tgt_v.eos_id, tgt_v.unk_id) == (0, 1, 2, None)
    enc = tr.encode_pairs(pairs, src_v, tgt_v)
    b = tr.make_batch(enc, [0, 1])
    y, x, z = (tgt_v.stoi[c] for c in "yxz")
    np.testing.assert_array_equal(b["src_lengths"], [2, 1])
    np.testing.assert_array_equal(b["tgt_lengths"], [4, 2])
    np.testing.assert_array_equal(b["tgt_in"], [[1, 1], [x, y], [y, 0], [z, 0]])
    np.testing.assert_array_equal(b["tgt_out"], [[x, y], [y, 2], [z, 0], [2, 0]])
    assert b["src"].shape == (2, 2) and b["src"][1, 1] == 0


def test_encode_known_pairs_leaves_out_unseen_tokens():
    src_v, tgt_v = tr.build_vocabs([("ab", "x"), ("b", "y")])
    enc = tr.encode_known_pairs([("ba", "yx"), ("bc", "x"), ("a", "z")], src_v, tgt_v)
    assert len(enc) == 1
    np.testing.assert_array_equal(enc[0][0], src_v.encode("ba"))


def test_unknown_characters_are_an_error():
    src_v, _ = tr.build_vocabs([("12+3", "15")])
    np.testing.assert_array_equal(tr.encode_source(src_v, "3+21"), src_v.encode("3+21"))
    with pytest.raises(InputError, match="characters not seen in training: 'x', '-'"):
        tr.encode_source(src_v, "1x-2")


# -- decoding and attention maps ------------------------------------------------------------------
def tiny_model(src_v, tgt_v, context="attention"):
    return EncoderDecoder(len(src_v), len(tgt_v), hidden_size=8, embedding_dim=4, context=context, seed=0)


def test_decode_exact_match_and_attention_map():
    pairs = tr.builtin_pairs("reverse", 20, seed=1)
    src_v, tgt_v = tr.build_vocabs(pairs)
    enc = tr.encode_pairs(pairs, src_v, tgt_v)
    model = tiny_model(src_v, tgt_v)
    greedy = tr.decode(model, [s for s, _ in enc], beam=1, max_len=6)
    assert len(greedy) == 20 and all(len(o) <= 6 for o in greedy)
    share, wrong = tr.exact_match(model, enc, beam=1, max_len=6)
    assert share == 1 - len(wrong) / 20
    assert all(o == greedy[i] for i, o in wrong)
    # teacher-forced "exact" of the objective = greedy exact match
    _, _, metrics, _ = model.objective(tr.make_batch(enc, range(20)), train=False)
    assert metrics["exact"] == 20 - len(wrong)
    text, src, out = tr.translate(model, src_v, tgt_v, pairs[0][0], beam=3, max_len=6)
    assert isinstance(text, str) and len(out) <= 6
    w = tr.attention_map(model, src, out)
    assert w.shape == (len(out) + 1, len(src))
    np.testing.assert_allclose(w.sum(axis=1), 1, rtol=1e-5)
    with pytest.raises(InputError, match="no attention"):
        tr.attention_map(tiny_model(src_v, tgt_v, context="last"), src, out)


# -- command line ---------------------------------------------------------------------------------
def train_args(run, *extra):
    return ["train", "seq2seq", "--hidden", "8", "--embedding", "4", "--steps", "4", "--batch", "8",
            "--quiet", "--run", str(run), *extra]


def test_cli_builtin_train_and_translate(tmp_path, capsys):
    run = tmp_path / "add"
    assert main(train_args(run, "--builtin", "addition", "--size", "60", "--beam", "2",
                           "--eval-every", "2")) == 0
    out = capsys.readouterr().out
    assert "held-out exact match: greedy" in out and "beam 2:" in out
    for name in ("model.rnnkit", "loss.png", "metrics.jsonl", "run.json"):
        assert (run / name).exists(), name
    png = tmp_path / "attn.png"
    assert main(["translate", str(run), "12+34", "--beam", "2", "--attention-png", str(png)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and set(out[0]) <= set("0123456789") and out[1] == f"attention map: {png}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["translate", str(run), "12*34"]) == 2
    err = capsys.readouterr().err
    assert "characters not seen in training: '*'" in err and err.count("\n") == 1


def test_cli_resume_continues_the_run(tmp_path, capsys):
    run = tmp_path / "rev"
    args = train_args(run, "--builtin", "reverse", "--size", "40", "--beam", "1")
    assert main(args) == 0
    args[args.index("--steps") + 1] = "7"
    assert main(args + ["--resume"]) == 0
    assert "trained 7 steps" in capsys.readouterr().out


def test_evaluate_seq2seq_scores_a_pair_file(tmp_path, capsys):
    run = tmp_path / "rev"
    assert main(train_args(run, "--builtin", "reverse", "--size", "40", "--beam", "1")) == 0
    model, meta = load_run(run, "seq2seq")
    data = write(tmp_path / "d.tsv", "123\t321\n45\t54\n1x\tx1\n")
    scores = evaluate_seq2seq(argparse.Namespace(data=data), model, meta)
    assert scores["count"] == 2 and scores["skipped_unknown_tokens"] == 1
    enc = tr.encode_pairs([("123", "321"), ("45", "54")], *(tr.Vocab.from_json(meta[k])
                                                           for k in ("src_vocab", "tgt_vocab")))
    assert scores["exact_match"] == tr.exact_match(model, enc, 1, meta["max_len"])[0]
    assert scores["loss"] > 0 and 0 <= scores["token_accuracy"] <= 1


def test_cli_pairs_file_word_level_without_attention(tmp_path, capsys):
    pairs = write(tmp_path / "p.tsv", "".join(f"the {w} cat\tle chat {w}\n" for w in
                                              ("big", "small", "red", "old", "new", "fat")))
    run = tmp_path / "w"
    assert main(train_args(run, "--pairs", pairs, "--level", "word", "--attention", "none",
                           "--val-split", "0.3")) == 0
    assert "vocabularies" in capsys.readouterr().out
    assert main(["translate", str(run), "the cat", "--beam", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and not (run / "attention.png").exists()
    assert main(["translate", str(run), "the cat", "--attention-png", str(tmp_path / "a.png")]) == 2
    assert "has no attention" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ("a\tb\nbroken line\n", "line 2: expected 'source<TAB>target'"),
    ("", "empty file"),
])
def test_cli_bad_pair_files(tmp_path, capsys, text, message):
    assert main(train_args(tmp_path / "r", "--pairs", write(tmp_path / "bad.tsv", text))) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_usage_errors(tmp_path, capsys):
    assert main(train_args(tmp_path / "r")) == 2
    assert "expected exactly one" in capsys.readouterr().err
    assert main(["translate", str(tmp_path / "nothing"), "x"]) == 2
    assert "no such run folder" in capsys.readouterr().err
    assert main(train_args(tmp_path / "r", "--pairs", str(tmp_path / "missing.tsv"))) == 2
    assert "--pairs: no such file" in capsys.readouterr().err
    assert main(train_args(tmp_path / "r", "--builtin", "sort", "--attention", "dot")) == 2
    assert "--no-bidirectional" in capsys.readouterr().err


def test_translate_refuses_a_forecast_run(tmp_path, capsys):
    csv = tmp_path / "s.csv"
    csv.write_text("v\n" + "".join(f"{np.sin(i / 3):.4f}\n" for i in range(40)))
    run = tmp_path / "fc"
    assert main(["train", "forecast", "--csv", str(csv), "--column", "v", "--window", "5", "--hidden", "4",
                 "--steps", "2", "--quiet", "--run", str(run)]) == 0
    capsys.readouterr()
    assert main(["translate", str(run), "x"]) == 2
    assert "is a 'forecast' run; `rnnkit translate` needs a 'seq2seq' run" in capsys.readouterr().err
