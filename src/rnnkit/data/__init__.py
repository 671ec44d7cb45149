"""Data: tokenizers and vocabularies, padding and batching, synthetic tasks, built-in text.

    vocab.py       char_tokenize, word_tokenize, mark_negation, Vocab (encode/decode, to_json/from_json)
    batching.py    pad_sequences, length_mask, BatchIterator, stream_batches (resumable)
    synthetic.py   adding, copy, temporal order, sine mixtures, Mackey-Glass
    text_tasks.py  negation sentiment, seq2seq string pairs, a tagging rule
    corpus.py      stdlib_corpus (Python's own source), read_text, read_labelled

Everything is generated or read from this machine; nothing is downloaded.
"""
from .batching import BatchIterator, StreamBatches, length_mask, pad_sequences, stream_batches
from .corpus import Labelled, read_labelled, read_text, stdlib_corpus, stdlib_files
from .synthetic import (make_adding, make_copy, make_mackey_glass, make_sine_mixture,
                        make_temporal_order)
from .text_tasks import (TAGS, format_date, make_addition_pairs, make_date_pairs,
                         make_negation_sentiment, make_reversal_pairs, make_sorting_pairs,
                         make_tagging, sentiment_rule, sentiment_words, tag_of)
from .vocab import Vocab, char_tokenize, mark_negation, tokenize, word_tokenize

__all__ = [
    "BatchIterator", "StreamBatches", "length_mask", "pad_sequences", "stream_batches",
    "Labelled", "read_labelled", "read_text", "stdlib_corpus", "stdlib_files",
    "make_adding", "make_copy", "make_mackey_glass", "make_sine_mixture", "make_temporal_order",
    "TAGS", "format_date", "make_addition_pairs", "make_date_pairs", "make_negation_sentiment",
    "make_reversal_pairs", "make_sorting_pairs", "make_tagging", "sentiment_rule",
    "sentiment_words", "tag_of",
    "Vocab", "char_tokenize", "mark_negation", "tokenize", "word_tokenize",
]
