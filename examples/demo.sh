#!/usr/bin/env bash
# The README's main job: the whole pipeline on our NES cartridge (Outpost-Nes), CPU only,
# no ROM, no API key. Expert recordings -> replay-verify -> downsample-check ->
# annotations (imported from a table) -> build-dataset -> train (small) -> play (clean and perturbed,
# beside the expert and a random policy) -> causality-score -> report.
set -euo pipefail
OUT=${OUT:-demo-out}
GAME=Outpost-Nes
EXPERT_RUNS=${EXPERT_RUNS:-10}        # per-frame (60 Hz) expert runs for downsample-check
TRAIN_RUNS=${TRAIN_RUNS:-16}          # throttled 20 Hz steady-expert runs: the training data
NOISY_RUNS=${NOISY_RUNS:-16}          # 20 Hz runs with injected mistakes (not trained on) and recoveries
TRAIN_STEPS=${TRAIN_STEPS:-1400}      # optimizer steps of the small preset (batch 4 x 32 steps)
CYCLE_STEPS=${CYCLE_STEPS:-300}       # then a second learning-rate cycle from those weights (0: none)
EVAL_EPISODES=${EVAL_EPISODES:-20}    # per policy and evaluation; the README's headline uses 50
WORKERS=${WORKERS:-2}
PERTURB="--sticky 0.25 --noop-max 30"  # the standard robustness protocol of game agents (see README, play)
if [ -e "$OUT" ]; then echo "demo: $OUT exists; remove it or set OUT=another-folder" >&2; exit 2; fi
case $CYCLE_STEPS in ''|*[!0-9]*) echo "demo: CYCLE_STEPS must be a whole number of steps (0: no second cycle), not '$CYCLE_STEPS'" >&2; exit 2;; esac
mkdir -p "$OUT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "1/10 expert recordings: $EXPERT_RUNS per-frame runs at 60 Hz (bot:expert), $TRAIN_RUNS + $NOISY_RUNS throttled runs at 20 Hz under sticky actions and no-op starts (bot:expert-steady, bot:expert-noisy)"
contra-bc record --input bot:expert --game $GAME --hz 60 --episodes "$EXPERT_RUNS" --seed 0 \
  --workers "$WORKERS" --out "$OUT/expert60"
# The demonstrations meet the perturbations the agent is evaluated under: the place where the expert
# jumps stops predicting the jump, the screen still does, and the agent sees what it does when an
# action is not executed (the expert's choice is what it learns; the executed action is its history).
contra-bc record --input bot:expert-steady --game $GAME --hz 20 --episodes "$TRAIN_RUNS" --seed 1000 $PERTURB \
  --workers "$WORKERS" --out "$OUT/expert20"
contra-bc record --input bot:expert-noisy --game $GAME --hz 20 --episodes "$NOISY_RUNS" --seed 2000 $PERTURB \
  --workers "$WORKERS" --out "$OUT/noisy20"

step "2/10 replay-verify: every recording reproduces bit for bit"
contra-bc replay-verify "$OUT/expert60" "$OUT/expert20" "$OUT/noisy20" --check-video --workers "$WORKERS" \
  --report-dir "$OUT/replay-report" --json > "$OUT/verify.json"
echo "verified: $(grep -c '^{"event": "recording".*"status": "verified"' "$OUT/verify.json") recordings" >&2

step "3/10 downsample-check: max-pool the per-frame runs into 20 Hz windows (and the 20 Hz control)"
contra-bc downsample-check "$OUT/expert60" --workers "$WORKERS" --report-dir "$OUT/downsample-report" \
  --json > "$OUT/downsample.json"
contra-bc downsample-check "$OUT/expert20" --workers "$WORKERS" --report-dir "$OUT/downsample-report" \
  --json > "$OUT/control.json"
grep -ho '"headline": "[^"]*"' "$OUT/downsample.json" "$OUT/control.json" >&2

step "4/10 annotations: import the hand-written Level 1 table (Gemini needs a key: see examples/annotate_gemini.sh)"
contra-bc annotate "$OUT/expert20" "$OUT/noisy20" --from-table examples/outpost-level1-annotations.md --json > /dev/null

step "5/10 build-dataset"
contra-bc build-dataset "$OUT/expert20" "$OUT/noisy20" --out "$OUT/dataset" --workers "$WORKERS" --json > "$OUT/dataset.json"

step "6/10 train the small preset ($TRAIN_STEPS steps on CPU, then a second cycle of $CYCLE_STEPS)"
# No augmentation here: play uses the same emulator and the same preprocess_frame, so there is no
# train-inference gap for it to cover, and on 2 CPU cores the time is better spent on steps.
# History 16 steps, trained on sequences of 32 (what play's sliding KV cache sees); instructions
# dropped from half the sequences (play runs without one); sequences holding a jump start shown
# 3 times per epoch (--focus 3); no "not yet" lesson on the 3 steps before a jump start
# (--press-slack 3); at every step, how many steps until the jump button next goes down or up
# (--change-horizon 16, weight 0.1). The encoder takes the frame at a quarter of its size with every pixel
# folded into channels (--image-pool 4 --image-input unshuffle): 1,400 steps in the time 800 took at the preset's
# half size, which learns the jumps from more training seeds. See docs/experiments.md.
# Then a second learning-rate cycle: CYCLE_STEPS more steps from the first run's weights (--init: a new
# optimizer, warmup and cosine schedule at the preset's peak rate, the same data and flags). Over three
# training seeds the cycle took the perturbed wins on the selection seeds from 27, 1 and 35 of 40 to 37, 38
# and 37 (docs/experiments.md); the same 300 steps in one schedule (1,700 steps) gave 32 and 31 for seeds 0 and 1.
# OUT/run is the model played and scored; OUT/run-first the first cycle.
# (The cycle keeps the first run's window, encoder input and change head and weight: --init carries them.)
RECIPE=(--preset small --sequence 32 --batch-size 4 --focus 3 --press-slack 3 --no-augment)
FIRST=$OUT/run; [ "$CYCLE_STEPS" -gt 0 ] && FIRST=$OUT/run-first
contra-bc train "$OUT/dataset" --out "$FIRST" --max-steps "$TRAIN_STEPS" "${RECIPE[@]}" --window 16 \
  --change-horizon 16 --change-weight 0.1 --image-pool 4 --image-input unshuffle --eval-every 200 --eval-batches 16
if [ "$CYCLE_STEPS" -gt 0 ]; then
  contra-bc train "$OUT/dataset" --init "$FIRST" --out "$OUT/run" --max-steps "$CYCLE_STEPS" "${RECIPE[@]}" \
    --eval-every 100 --eval-batches 8
fi

# Evaluation seeds: play's default, 1,000,000 + episode, apart from the bot seeds above and from the
# seeds the recipe and the temperature were chosen on (2,000,000+; docs/experiments.md).
step "7/10 play, clean starts: $EVAL_EPISODES episodes each of the agent, the expert and a random policy"
contra-bc play "$OUT/run" --game $GAME --episodes "$EVAL_EPISODES" --workers "$WORKERS" --max-steps 1800 \
  --temperature 0.1 --expert bot:expert-steady --out "$OUT/eval" --json | tail -n 1 > "$OUT/play.json"

step "8/10 play under sticky actions (0.25) and no-op starts (0-30): the agent, the expert and a random policy"
contra-bc play "$OUT/run" --game $GAME --episodes "$EVAL_EPISODES" --workers "$WORKERS" --max-steps 1800 \
  --temperature 0.1 $PERTURB --expert bot:expert-steady --out "$OUT/eval-perturbed" --json \
  | tail -n 1 > "$OUT/play-perturbed.json"

step "9/10 causality-score"
contra-bc causality-score "$OUT/run" "$OUT/dataset" --json > "$OUT/causality.json"

step "10/10 report"
contra-bc report "$OUT"
