#!/usr/bin/env bash
# A longer recipe than the demo for an agent that clears Outpost Level 1 and reacts to what it sees:
# the demo's recipe (demonstrations under sticky actions and no-op starts, history 16, sequences of 32,
# --focus 3, --press-slack 3, --change-horizon 16 at weight 0.1, temperature 0.1) with three times the
# steady expert runs, four times the runs with injected mistakes and their recoveries, and nearly four
# times the training. Evaluated like the demo, with 50 perturbed episodes per policy.
# CPU only (about an hour on 2 cores); on a GPU add --device cuda and raise --batch-size.
#   bash examples/outpost_agent.sh            # writes agent-out/ (agent-out/report.md sums it up)
# Evaluation seeds (play's default, from 1,000,000) are apart from every seed that makes data here.
set -euo pipefail
OUT=${OUT:-agent-out}
GAME=Outpost-Nes
STEADY_RUNS=${STEADY_RUNS:-48}      # demonstrations, bot seeds 1000..
NOISY_RUNS=${NOISY_RUNS:-64}        # demonstrations with injected mistakes, bot seeds 2000..
TRAIN_STEPS=${TRAIN_STEPS:-3000}
EVAL_EPISODES=${EVAL_EPISODES:-50}  # perturbed, per policy
CLEAN_EPISODES=${CLEAN_EPISODES:-20}
WORKERS=${WORKERS:-2}
PERTURB="--sticky 0.25 --noop-max 30"
if [ -e "$OUT" ]; then echo "outpost_agent: $OUT exists; remove it or set OUT=another-folder" >&2; exit 2; fi
mkdir -p "$OUT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "1/6 demonstrations under sticky actions and no-op starts: $STEADY_RUNS steady expert runs and $NOISY_RUNS runs with recoveries (20 Hz)"
contra-bc record --input bot:expert-steady --game $GAME --hz 20 --episodes "$STEADY_RUNS" --seed 1000 $PERTURB \
  --workers "$WORKERS" --out "$OUT/expert20" > /dev/null
contra-bc record --input bot:expert-noisy --game $GAME --hz 20 --episodes "$NOISY_RUNS" --seed 2000 $PERTURB \
  --workers "$WORKERS" --out "$OUT/noisy20" > /dev/null

step "2/6 replay-verify"
contra-bc replay-verify "$OUT/expert20" "$OUT/noisy20" --workers "$WORKERS" \
  --report-dir "$OUT/replay-report" --json > "$OUT/verify.json"

step "3/6 build-dataset"
contra-bc build-dataset "$OUT/expert20" "$OUT/noisy20" --out "$OUT/dataset" \
  --workers "$WORKERS" --json > "$OUT/dataset.json"

step "4/6 train small ($TRAIN_STEPS steps, history 16, sequences of 32)"
contra-bc train "$OUT/dataset" --out "$OUT/run" --preset small --max-steps "$TRAIN_STEPS" \
  --window 16 --sequence 32 --batch-size 4 --eval-every 500 --eval-batches 16 --no-augment \
  --focus 3 --press-slack 3 --change-horizon 16 --change-weight 0.1

step "5/6 play: $CLEAN_EPISODES clean episodes, $EVAL_EPISODES under sticky actions and no-op starts (agent, expert, random)"
contra-bc play "$OUT/run" --game $GAME --episodes "$CLEAN_EPISODES" --workers "$WORKERS" --max-steps 2400 \
  --temperature 0.1 --expert bot:expert-steady --out "$OUT/eval" --json | tail -n 1 > "$OUT/play.json"
contra-bc play "$OUT/run" --game $GAME --episodes "$EVAL_EPISODES" --workers "$WORKERS" --max-steps 2400 \
  --temperature 0.1 $PERTURB --expert bot:expert-steady --out "$OUT/eval-perturbed" --json \
  | tail -n 1 > "$OUT/play-perturbed.json"

step "6/6 report"
contra-bc report "$OUT"
