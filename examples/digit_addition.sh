#!/usr/bin/env bash
# Digit addition ("123+45" -> "168", numbers of 1-3 digits) with a character-level encoder-decoder:
# a bidirectional LSTM encoder, additive (Bahdanau) attention and an LSTM decoder, trained with
# teacher forcing on 50,000 generated pairs; 10% of the distinct problems are held out and decoded
# at the end (greedy and beam search); the command prints their exact match.
# Measured (seed 0, 14,040 steps, ~9.5 min on 2 busy cores): 99.45% greedy, 99.59% beam 5 of 5,091
# held-out problems. (With a constant lr of 3e-3 it plateaus near 98%: the noise of the late steps.)
#
# usage: examples/digit_addition.sh [SEED]    (run folder: runs/addition-seed<SEED>)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # small matrices
SEED="${1:-0}"
RUN="runs/addition-seed$SEED"
rm -rf "$RUN"

python -m rnnkit train seq2seq --builtin addition --size 50000 --val-split 0.1 \
    --cell lstm --hidden 128 --embedding 32 --bidirectional --attention additive \
    --lr 1e-3 --batch 64 --epochs 20 --eval-every 1000 --beam 5 \
    --seed "$SEED" --run "$RUN" --quiet
python -m rnnkit translate "$RUN" "123+45" --attention-png "$RUN/attention.png"
