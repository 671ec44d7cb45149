#!/usr/bin/env bash
# SST-2 (sentence level, the given train/dev/test splits): bidirectional GRU classifiers trained from
# scratch (nothing pretrained, nothing downloaded), each chosen on the dev set, scored on the test set
# and on the test sentences that contain a negation word; then the ensemble of all of them (the mean
# of their class probabilities). The first embedding column starts at each word's naive-Bayes
# log-count ratio on the training sentences (--embedding-init nb), and the words in a negation's
# scope are marked ("not ¬good ,": --negation-scope); SST2_FLAGS replaces the model and training
# flags. One run takes about a minute on one core.
# usage: examples/sst2.sh [SEED ...]      (default seeds 0 1 2 3 4; the data are ../shared/data/sst2
#                                          in a development checkout, or DATA=folder)
set -euo pipefail
SEEDS=${*:-0 1 2 3 4}
DATA=${DATA:-"$(dirname "$0")/../../shared/data/sst2"}
FLAGS=${SST2_FLAGS:---cell gru --hidden 64 --embedding 64 --vocab-size 6000 --embedding-init nb --negation-scope \
    --readout max --dropout 0.5 --input-dropout 0.3 --recurrent-dropout 0.2 --optimizer adamw \
    --lr 5e-4 --lr-schedule cosine --epochs 10 --batch 32 --eval-every 50 --early-stopping 6}
mkdir -p runs
# the test sentences with a negation word (whole tokens, as the data are tokenised)
NEG=runs/sst2.test.negation
python - "$DATA/stsa.binary.test" "$NEG" <<'PY'
import sys
from rnnkit.data.vocab import NEGATIONS as words      # the words that open a --negation-scope
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
kept = [l for l in lines if words & set(l.split(" ", 1)[1].split())]
open(sys.argv[2], "w", encoding="utf-8").write("\n".join(kept) + "\n")
print(f"{len(kept)} of {len(lines)} test sentences contain a negation word")
PY
accuracy() {   # RUN FILE [--ensemble RUN ...]
    local run=$1 file=$2; shift 2
    python -m rnnkit evaluate "$run" --data "$file" --format sst --json "$@" |
        python -c "import json, sys; print(f\"{100 * json.load(sys.stdin)['accuracy']:.1f}%\")"
}
RUNS=()
for SEED in $SEEDS; do
    RUN="runs/sst2-seed$SEED"
    rm -rf "$RUN"
    # shellcheck disable=SC2086
    python -m rnnkit train classify --data "$DATA/stsa.binary.train" --val-data "$DATA/stsa.binary.dev" \
        --format sst $FLAGS --seed "$SEED" --run "$RUN" --quiet > "$RUN.log"
    echo "seed $SEED: test $(accuracy "$RUN" "$DATA/stsa.binary.test"), negation $(accuracy "$RUN" "$NEG")"
    RUNS+=("$RUN")
done
if [ ${#RUNS[@]} -gt 1 ]; then
    MORE=()
    for r in "${RUNS[@]:1}"; do MORE+=(--ensemble "$r"); done
    echo "ensemble of ${#RUNS[@]}: test $(accuracy "${RUNS[0]}" "$DATA/stsa.binary.test" "${MORE[@]}")," \
         "negation $(accuracy "${RUNS[0]}" "$NEG" "${MORE[@]}")"
fi
