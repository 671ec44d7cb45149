#!/usr/bin/env bash
# Tiny Shakespeare, first 90% train / last 10% validation: a char-level GRU within a time budget.
# usage: examples/shakespeare.sh [MINUTES] [SEED]   (the text is ../shared/data in a development checkout)
# The learning rate decays along a cosine over STEPS (default 400 per minute, about what one core
# trains in a minute); --minutes stops training at the budget even if the steps are not all done.
# The best validation loss (nats/char) is printed at the end of training.
set -euo pipefail
MINUTES=${1:-3}
SEED=${2:-0}
STEPS=${STEPS:-$((MINUTES * 400))}
TEXT=${TEXT:-"$(dirname "$0")/../../shared/data/tinyshakespeare.txt"}
RUN="runs/shakespeare-${MINUTES}min-seed$SEED"
rm -rf "$RUN"
python -m rnnkit train lm --text "$TEXT" --val-split 0.1 --minutes "$MINUTES" --steps "$STEPS" \
    --cell gru --hidden 384 --layers 1 --dropout 0.15 --batch 32 --seq-len 64 --lr 4e-3 --lr-schedule cosine \
    --eval-every 250 \
    --seed "$SEED" --run "$RUN" --quiet
python -m rnnkit sample "$RUN" --prompt "ROMEO:" --temperature 0.8 --length 300
