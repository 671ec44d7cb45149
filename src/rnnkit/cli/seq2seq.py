"""`rnnkit train seq2seq` and `rnnkit translate RUN "text"`: encoder-decoder models on string pairs.

    rnnkit train seq2seq --pairs pairs.tsv [--level char|word] [--attention additive|dot|general|none]
    rnnkit train seq2seq --builtin addition|dates|reverse|sort [--size N]
    rnnkit translate runs/seq2seq-... "12+345" [--beam 5] [--attention-png out.png]

Training uses teacher forcing (rnnkit.models.EncoderDecoder); the validation exact match is the
teacher-forced one, which equals greedy decoding's; at the end the held-out pairs are decoded
with greedy and beam search and their exact match printed (rnnkit.translation).
"""
import os

from .. import translation as tr
from ..data import Vocab
from ..models.seq2seq import EncoderDecoder
from ..train import Batches
from .common import check_file, load_run, resume_state, train_model, train_subparsers
from .flags import VARIANT_FLAGS, add_training_args, fail

TASK = "seq2seq"
ATTENTION = ("additive", "dot", "general", "none")


def _pairs(args):
    """The pairs of --pairs FILE or --builtin NAME."""
    if (args.pairs is None) == (args.builtin is None):
        fail("--pairs, --builtin: expected exactly one (a TSV file of pairs, or a built-in task)")
    if args.pairs is not None:
        return tr.read_pairs(check_file("--pairs", args.pairs))
    if args.size < 2:
        fail(f"--size: expected an integer >= 2, got {args.size}")
    return tr.builtin_pairs(args.builtin, args.size, seed=args.seed)


def _model(args, src_vocab, tgt_vocab, config):
    """The EncoderDecoder of the flags (or of a resumed run's config)."""
    if config is not None:
        from ..models import build
        return build(config)
    if args.cell not in ("rnn", "lstm", "gru") or any(getattr(args, k, 0) for k in VARIANT_FLAGS):
        fail(f"--cell {args.cell} and the cell-variant flags: seq2seq takes --cell rnn, lstm or gru "
             f"without variants")
    attention = "additive" if args.attention == "none" else args.attention
    if attention == "dot" and args.bidirectional:
        fail("--attention dot: needs encoder states of the decoder's size; add --no-bidirectional, "
             "or use --attention additive or general")
    return EncoderDecoder(len(src_vocab), len(tgt_vocab), cell=args.cell, hidden_size=args.hidden,
                          embedding_dim=args.embedding, num_layers=args.layers,
                          bidirectional_encoder=args.bidirectional,
                          context="last" if args.attention == "none" else "attention",
                          attention=attention, dropout=args.dropout, dtype=args.dtype, seed=args.seed,
                          bos=tgt_vocab.bos_id, eos=tgt_vocab.eos_id, pad=tgt_vocab.pad_id)


def train(args):
    """Train an encoder-decoder, then report the held-out exact match (greedy and beam)."""
    resumed = resume_state(args, TASK)
    pairs = _pairs(args)
    train_pairs, held = tr.split_pairs(pairs, args.val_split, seed=args.seed)
    if resumed:
        meta = resumed[1]
        src_vocab, tgt_vocab = Vocab.from_json(meta["src_vocab"]), Vocab.from_json(meta["tgt_vocab"])
    else:
        src_vocab, tgt_vocab = tr.build_vocabs(train_pairs, args.level, args.lowercase)
        max_len = tr.max_target_len(pairs, args.level, args.lowercase)
        meta = dict(src_vocab=src_vocab.to_json(), tgt_vocab=tgt_vocab.to_json(), max_len=2 * max_len + 10,
                    data=args.builtin or os.path.abspath(args.pairs))
    enc_train = tr.encode_pairs(train_pairs, src_vocab, tgt_vocab)
    enc_held = tr.encode_known_pairs(held, src_vocab, tgt_vocab)
    model = _model(args, src_vocab, tgt_vocab, resumed[0] if resumed else None)
    make = tr.batch_maker(enc_train, model.pad, model.bos, model.eos)
    train_data = Batches(make, len(enc_train), args.batch, seed=args.seed)
    val_data = None
    if enc_held:
        val_data = Batches(tr.batch_maker(enc_held, model.pad, model.bos, model.eos), len(enc_held),
                           256, shuffle=False)
    print(f"rnnkit train seq2seq: {len(train_pairs)} training pairs, {len(enc_held)} held out; "
          f"vocabularies {len(src_vocab)} -> {len(tgt_vocab)} {src_vocab.level}s")
    result = train_model(args, model, train_data, val_data, TASK, meta)
    if enc_held and not result.interrupted:
        _report(model, enc_held, src_vocab, tgt_vocab, args.beam, meta["max_len"])
    return 0


def _report(model, enc_held, src_vocab, tgt_vocab, beam, max_len):
    """Print the held-out exact match of greedy and beam search decoding, and a few misses."""
    greedy, wrong = tr.exact_match(model, enc_held, 1, max_len)
    print(f"held-out exact match: greedy {100 * greedy:.2f}% of {len(enc_held)} pairs", end="")
    if beam > 1:
        beamed, wrong = tr.exact_match(model, enc_held, beam, max_len)
        print(f", beam {beam}: {100 * beamed:.2f}%", end="")
    print()
    for i, out in wrong[:3]:
        src, tgt = enc_held[i]
        print(f"  {src_vocab.decode(src)!r} -> {tgt_vocab.decode(out) if out else ''!r} "
              f"(expected {tgt_vocab.decode(tgt)!r})")


def translate(args):
    """Print a trained run's output for a text; write the attention map when the model has one."""
    model, meta = load_run(args.run_dir, TASK, command="translate")
    if args.beam < 1:
        fail(f"--beam: expected an integer >= 1, got {args.beam}")
    has_attention = model.context == "attention"
    if args.attention_png is not None and not has_attention:
        fail(f"--attention-png: the model in {args.run_dir} has no attention (context "
             f"{model.context!r}); train with --attention additive|dot|general")
    src_vocab, tgt_vocab = Vocab.from_json(meta["src_vocab"]), Vocab.from_json(meta["tgt_vocab"])
    text, src, out = tr.translate(model, src_vocab, tgt_vocab, args.text, args.beam,
                                  args.max_len or meta["max_len"])
    print(text)
    if has_attention:
        png = args.attention_png or os.path.join(args.run_dir, "attention.png")
        _plot_attention(png, model, src_vocab, tgt_vocab, src, out)
    return 0


def _plot_attention(png, model, src_vocab, tgt_vocab, src, out):
    """Write the attention heatmap: output tokens (rows) over source tokens (columns)."""
    w = tr.attention_map(model, src, out)                                    # (n + 1, S)
    try:
        from ..plots import heatmap
    except ImportError as e:
        print(f"(no attention map: {e})")
        return
    heatmap(png, w, title="attention", xlabel="source", ylabel="output",
            xticklabels=tr.tokens(src_vocab, src), yticklabels=tr.tokens(tgt_vocab, out) + ["<eos>"],
            vmin=0.0, vmax=1.0)
    print(f"attention map: {png}")


def evaluate_seq2seq(args, model, meta):
    """Teacher-forced loss and token accuracy, and greedy exact match, of a seq2seq run on --data (TSV)."""
    from ..train import evaluate
    src_vocab, tgt_vocab = Vocab.from_json(meta["src_vocab"]), Vocab.from_json(meta["tgt_vocab"])
    pairs = tr.read_pairs(check_file("--data", args.data))
    encoded = tr.encode_known_pairs(pairs, src_vocab, tgt_vocab)
    if not encoded:
        fail(f"--data: every pair of {args.data} has tokens the model never saw in training")
    v = evaluate(model, Batches(tr.batch_maker(encoded, model.pad, model.bos, model.eos), len(encoded),
                                256, shuffle=False))
    exact, _ = tr.exact_match(model, encoded, 1, meta["max_len"])
    return {"loss": v["loss"], "token_accuracy": v["correct"] / v["count"], "exact_match": exact,
            "count": len(encoded), "skipped_unknown_tokens": len(pairs) - len(encoded)}


def register(sub):
    """Add `rnnkit train seq2seq` and `rnnkit translate`."""
    p = train_subparsers(sub).add_parser(
        "seq2seq", help="train an encoder-decoder on string pairs (TSV or built-in)",
        description="Train a sequence-to-sequence model (teacher forcing) on 'source<TAB>target' "
                    "lines or a built-in task; held-out pairs are scored by exact match.")
    g = p.add_argument_group("data")
    g.add_argument("--pairs", metavar="FILE", help="TSV file: one 'source<TAB>target' pair per line")
    g.add_argument("--builtin", choices=tuple(tr.BUILTINS), help="generated pairs instead of a file")
    g.add_argument("--size", type=int, default=20000, metavar="N", help="pairs generated for --builtin")
    g.add_argument("--level", choices=("char", "word"), default="char", help="tokens: characters or words")
    g.add_argument("--lowercase", action="store_true", help="lowercase both sides")
    g = p.add_argument_group("seq2seq")
    g.add_argument("--attention", choices=ATTENTION, default="additive",
                   help="attention score, or none (the encoder's last state only)")
    g.add_argument("--embedding", type=int, default=32, help="embedding size of both sides")
    g.add_argument("--beam", type=int, default=5, help="beam size of the final held-out decoding (1: greedy only)")
    add_training_args(p, hidden=128, bidirectional=True, batch=64, lr=1e-3, eval_every=500, epochs=10)
    p.set_defaults(func=train)

    q = sub.add_parser("translate", help="decode a text with a trained seq2seq run",
                       description="Print a seq2seq run's output for TEXT; write its attention map.")
    q.add_argument("run_dir", metavar="RUN", help="run folder written by `rnnkit train seq2seq`")
    q.add_argument("text", help="the source text")
    q.add_argument("--beam", type=int, default=5, help="beam size (1: greedy)")
    q.add_argument("--max-len", type=int, default=None, help="most output tokens (default: from training)")
    q.add_argument("--attention-png", metavar="FILE",
                   help="where to write the attention map (default: RUN/attention.png)")
    q.set_defaults(func=translate)
