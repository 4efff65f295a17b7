#!/usr/bin/env bash
# Level 2 as well: start from the Level 1 agent of examples/outpost_agent.sh, add as many Level 2
# demonstrations (48 steady expert runs, 64 with injected mistakes and their recoveries, under sticky
# actions and no-op starts) to its dataset, fine-tune on both levels (--init: new optimizer and
# schedule), evaluate on both, clean and perturbed, beside the expert.
#   bash examples/outpost_agent.sh && bash examples/outpost_level2.sh     # reads agent-out/, writes level2-out/
# Data seeds 1100+ and 2100+ (Level 1's are 1000+ and 2000+); evaluation seeds play's default, 1,000,000+.
set -euo pipefail
AGENT=${AGENT:-agent-out}             # what examples/outpost_agent.sh wrote: AGENT/run and AGENT/dataset
OUT=${OUT:-level2-out}
GAME=Outpost-Nes
STEADY_RUNS=${STEADY_RUNS:-48}
NOISY_RUNS=${NOISY_RUNS:-64}
TRAIN_STEPS=${TRAIN_STEPS:-2000}
EVAL_EPISODES=${EVAL_EPISODES:-50}   # perturbed, per policy and level
CLEAN_EPISODES=${CLEAN_EPISODES:-20}
WORKERS=${WORKERS:-2}
PERTURB="--sticky 0.25 --noop-max 30"
for need in "$AGENT/run" "$AGENT/dataset"; do
  if [ ! -d "$need" ]; then echo "outpost_level2: no $need; run examples/outpost_agent.sh first (or set AGENT)" >&2; exit 2; fi
done
if [ -e "$OUT" ]; then echo "outpost_level2: $OUT exists; remove it or set OUT=another-folder" >&2; exit 2; fi
mkdir -p "$OUT/recordings"
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "1/4 Level 2 demonstrations: $STEADY_RUNS steady expert runs and $NOISY_RUNS runs with recoveries (20 Hz)"
contra-bc record --input bot:expert-steady --game $GAME --state Level2 --hz 20 --episodes "$STEADY_RUNS" \
  --seed 1100 $PERTURB --workers "$WORKERS" --out "$OUT/recordings/steady" > /dev/null
contra-bc record --input bot:expert-noisy --game $GAME --state Level2 --hz 20 --episodes "$NOISY_RUNS" \
  --seed 2100 $PERTURB --workers "$WORKERS" --out "$OUT/recordings/noisy" > /dev/null

step "2/4 build-dataset: the Level 1 dataset (copied) + the Level 2 runs"
cp -r "$AGENT/dataset" "$OUT/dataset"
contra-bc build-dataset "$OUT/recordings/steady" "$OUT/recordings/noisy" --out "$OUT/dataset" --append \
  --workers "$WORKERS" --json > "$OUT/dataset.json"

step "3/4 fine-tune the Level 1 agent on both levels ($TRAIN_STEPS steps)"
contra-bc train "$OUT/dataset" --init "$AGENT/run" --out "$OUT/run" --preset small --max-steps "$TRAIN_STEPS" \
  --window 16 --sequence 32 --batch-size 4 --eval-every 500 --eval-batches 16 --no-augment --focus 3 --press-slack 3 \
  --change-weight 0.1

step "4/4 play on each level: $CLEAN_EPISODES clean episodes, $EVAL_EPISODES perturbed (agent, expert, random)"
for level in Level2 Level1; do
  mkdir -p "$OUT/$level"
  contra-bc play "$OUT/run" --game $GAME --state $level --episodes "$CLEAN_EPISODES" --workers "$WORKERS" \
    --max-steps 2400 --temperature 0.1 --expert bot:expert-steady --out "$OUT/$level/eval" --json \
    | tail -n 1 > "$OUT/$level/play.json"
  contra-bc play "$OUT/run" --game $GAME --state $level --episodes "$EVAL_EPISODES" --workers "$WORKERS" \
    --max-steps 2400 --temperature 0.1 $PERTURB --expert bot:expert-steady --out "$OUT/$level/eval-perturbed" \
    --json | tail -n 1 > "$OUT/$level/play-perturbed.json"
  contra-bc report "$OUT/$level" > /dev/null   # $OUT/$level/report.md: agent / expert / random, clean and perturbed
done
