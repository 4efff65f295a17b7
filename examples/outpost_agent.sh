#!/usr/bin/env bash
# A longer recipe than the demo for an agent that clears Outpost Level 1: the demo's recipe (history 16,
# sequences of 32, --focus 3, --press-slack 3, temperature 0.25) with three times the steady expert runs,
# four times the runs with injected mistakes and their recoveries, and nearly four times the training.
# CPU only (45 minutes on 2 cores, measured; 20 of 20 wins); on a GPU add --device cuda and raise --batch-size.
#   bash examples/outpost_agent.sh            # writes agent-out/
# Evaluation seeds (play's default, from 1,000,000) are apart from every seed that makes data here.
set -euo pipefail
OUT=${OUT:-agent-out}
GAME=Outpost-Nes
STEADY_RUNS=${STEADY_RUNS:-48}      # clean demonstrations, bot seeds 1000..
NOISY_RUNS=${NOISY_RUNS:-64}        # demonstrations with injected mistakes, bot seeds 2000..
TRAIN_STEPS=${TRAIN_STEPS:-3000}
EVAL_EPISODES=${EVAL_EPISODES:-20}
WORKERS=${WORKERS:-2}
if [ -e "$OUT" ]; then echo "outpost_agent: $OUT exists; remove it or set OUT=another-folder" >&2; exit 2; fi
mkdir -p "$OUT/recordings"
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "1/5 demonstrations: $STEADY_RUNS steady expert runs and $NOISY_RUNS runs with recoveries (20 Hz)"
contra-bc record --input bot:expert-steady --game $GAME --hz 20 --episodes "$STEADY_RUNS" --seed 1000 \
  --workers "$WORKERS" --out "$OUT/recordings/steady" > /dev/null
contra-bc record --input bot:expert-noisy --game $GAME --hz 20 --episodes "$NOISY_RUNS" --seed 2000 \
  --workers "$WORKERS" --out "$OUT/recordings/noisy" > /dev/null

step "2/5 replay-verify"
contra-bc replay-verify "$OUT/recordings/steady" "$OUT/recordings/noisy" --workers "$WORKERS" \
  --report-dir "$OUT/replay-report" --json > "$OUT/verify.json"

step "3/5 build-dataset"
contra-bc build-dataset "$OUT/recordings/steady" "$OUT/recordings/noisy" --out "$OUT/dataset" \
  --workers "$WORKERS" --json > "$OUT/dataset.json"

step "4/5 train small ($TRAIN_STEPS steps, history 16, sequences of 32)"
contra-bc train "$OUT/dataset" --out "$OUT/run" --preset small --max-steps "$TRAIN_STEPS" \
  --window 16 --sequence 32 --batch-size 4 --eval-every 500 --eval-batches 16 --no-augment \
  --focus "${FOCUS:-3}" --press-slack "${PRESS_SLACK:-3}" --press-weight "${PRESS_WEIGHT:-1}"

step "5/5 play: $EVAL_EPISODES evaluation episodes"
contra-bc play "$OUT/run" --game $GAME --episodes "$EVAL_EPISODES" --workers "$WORKERS" --fast --max-steps 2400 --temperature 0.25 \
  --out "$OUT/eval" --json | tail -n 1 > "$OUT/play.json"
python3 - "$OUT/play.json" <<'PY'
import json, sys
agent = json.load(open(sys.argv[1]))["policies"]["agent"]
lo, hi = agent["win_rate_ci95"]
print(f"agent: {agent['wins']} of {agent['episodes']} wins (95% CI {lo:.0%}-{hi:.0%}), "
      f"progress quartiles {agent['progress_quartiles']}", file=sys.stderr)
PY
