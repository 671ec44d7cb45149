#!/usr/bin/env bash
# SST-2 (sentence level, the given train/dev/test splits): a bidirectional recurrent classifier trained
# from scratch (no pretrained vectors), chosen on the dev set, scored on the test set and on the test
# sentences that contain a negation word. SST2_FLAGS replaces the model and training flags.
# usage: examples/sst2.sh [SEED]      (the data are ../shared/data/sst2 in a development checkout)
set -euo pipefail
SEED=${1:-0}
DATA=${DATA:-"$(dirname "$0")/../../shared/data/sst2"}
RUN="runs/sst2-seed$SEED"
rm -rf "$RUN"
python -m rnnkit train classify --data "$DATA/stsa.binary.train" --val-data "$DATA/stsa.binary.dev" \
    --format sst ${SST2_FLAGS:---cell gru --hidden 64 --embedding 64 --vocab-size 6000 --readout max \
    --dropout 0.5 --input-dropout 0.3 --recurrent-dropout 0.2 --optimizer adamw --lr 2e-3 --epochs 10 \
    --lr-schedule cosine --batch 32} --early-stopping 3 --seed "$SEED" --run "$RUN" --quiet
# the test sentences with a negation word (whole tokens, as the data are tokenised)
NEG="$RUN/test.negation"
python - "$DATA/stsa.binary.test" "$NEG" <<'PY'
import sys
words = {"not", "n't", "no", "never", "nothing", "nobody", "none", "neither", "nor", "nowhere",
         "cannot", "without"}
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
kept = [l for l in lines if words & set(l.split(" ", 1)[1].split())]
open(sys.argv[2], "w", encoding="utf-8").write("\n".join(kept) + "\n")
print(f"{len(kept)} of {len(lines)} test sentences contain a negation word")
PY
echo "test:";              python -m rnnkit evaluate "$RUN" --data "$DATA/stsa.binary.test" --format sst
echo "test, negation:";    python -m rnnkit evaluate "$RUN" --data "$NEG" --format sst
