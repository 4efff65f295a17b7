#!/usr/bin/env bash
# Correction rounds: the agent drives, a scripted corrector takes over where the agent's course
# dies, and only the corrector's steps are trained on (P2P's correction data, with a bot in the
# person's seat). Each round: play EPISODES episodes with the corrector on training seeds ->
# build-dataset --append -> fine-tune from the last checkpoint (--init) -> evaluate on held-out
# seeds. With COMPARE=1 a second arm gets the same number of expert steps as plain expert runs
# (bot:expert-steady from the start state), so the table answers: is a correction step worth
# more than an expert step? With CONTROL=1 a third arm gets the same fine-tuning steps on no new
# data (the round's training alone), so the table also answers: is it the data or the steps?
#
#   bash examples/correction_rounds.sh RUN DATASET       # RUN: a trained agent, DATASET: its data
#   ROUNDS=3 EPISODES=8 STEPS=300 bash examples/correction_rounds.sh demo-out/run demo-out/dataset
#
# Writes OUT/rounds.jsonl (one line per round and arm), OUT/rounds.md (table) and OUT/rounds.png.
# Seeds: corrections 3,000,000 + 1000 x round; comparison runs 4,000,000 + 1000 x round;
# evaluation EVAL_SEED + episode (play's default 1,000,000), apart from every seed that makes data.
set -euo pipefail
RUN0=${1:?usage: correction_rounds.sh RUN DATASET}
DATASET0=${2:?usage: correction_rounds.sh RUN DATASET}
OUT=${OUT:-rounds-out}
GAME=${GAME:-Outpost-Nes}
STATE=${STATE:-}                     # start state of every episode (default: the game's first, Level1)
MAX_STEPS=${MAX_STEPS:-1800}         # steps per played episode
ROUNDS=${ROUNDS:-3}
EPISODES=${EPISODES:-8}              # corrected episodes per round
STEPS=${STEPS:-300}                  # fine-tuning steps per round
EVAL_EPISODES=${EVAL_EPISODES:-20}
TEMPERATURE=${TEMPERATURE:-0.1}      # the demo's
EVAL_SEED=${EVAL_SEED:-1000000}      # evaluation episode i plays seed EVAL_SEED + i
CORRECTOR=${CORRECTOR:-bot:expert-steady}
EXPERT=${EXPERT:-bot:expert-steady}  # the comparison arm's demonstrator
COMPARE=${COMPARE:-1}
CONTROL=${CONTROL:-1}                # 1: also the arm with the same fine-tuning steps and no new data
WORKERS=${WORKERS:-2}
TRAIN_FLAGS=${TRAIN_FLAGS:---sequence 32 --batch-size 4 --no-augment --focus 3 --press-slack 3 --eval-every 100 --eval-batches 8}
PERTURB=${PERTURB-"--sticky 0.25 --noop-max 30"}  # corrections, expert runs and evaluations under it ("" for none)
if [ -e "$OUT" ]; then echo "correction_rounds: $OUT exists; remove it or set OUT=another-folder" >&2; exit 2; fi
PRESET=$(python3 -c 'import json,sys,pathlib; r=pathlib.Path(sys.argv[1]); c=r/(r/"last").read_text().strip() if (r/"last").exists() else r; print(json.load(open(c/"config.json"))["preset"])' "$RUN0")
mkdir -p "$OUT"
AT=(); [ -n "$STATE" ] && AT=(--state "$STATE")
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

evaluate() {  # RUN DIR
  contra-bc play "$1" --game "$GAME" "${AT[@]}" --episodes "$EVAL_EPISODES" --workers "$WORKERS" --fast --max-steps "$MAX_STEPS" \
    --temperature "$TEMPERATURE" --seed "$EVAL_SEED" $PERTURB --baseline none --out "$2/eval" --json | tail -n 1 > "$2/eval.json"
}

table() {  # ROUND ARM RUN_DIR DATA_STEPS: append a line to rounds.jsonl, redraw rounds.md and rounds.png
  python3 - "$OUT" "$@" <<'PY'
import json, sys
from pathlib import Path
from contra_bc.charts import line_charts
out, rnd, arm, rdir, data_steps = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), int(sys.argv[5])
agent = json.loads((rdir / "eval.json").read_text())["policies"]["agent"]
row = {"round": rnd, "arm": arm, "wins": agent["wins"], "episodes": agent["episodes"], "win_rate": agent["win_rate"],
       "win_rate_ci95": agent["win_rate_ci95"], "progress_mean": agent["progress_mean"],
       "extra_steps": data_steps}
corr = rdir / "corrections.json"
if corr.exists():
    c = json.loads(corr.read_text())["policies"]["agent"]
    row.update(corrector_steps=c["corrector_steps"], takeovers=c["takeovers"], corrected_wins=c["wins"])
with open(out / "rounds.jsonl", "a") as f:
    f.write(json.dumps(row) + "\n")
rows = [json.loads(l) for l in (out / "rounds.jsonl").read_text().splitlines()]
lines = ["| round | arm | wins (95% CI) | mean progress | data steps added | takeovers |", "|---|---|---|---|---|---|"]
for r in rows:
    lo, hi = r["win_rate_ci95"]
    lines.append(f"| {r['round']} | {r['arm']} | {r['wins']} of {r['episodes']} ({lo:.0%}-{hi:.0%}) | "
                 f"{r['progress_mean']:.0f} | {r['extra_steps']} | {r.get('takeovers', '-')} |")
(out / "rounds.md").write_text("\n".join(lines) + "\n")
arms = sorted({r["arm"] for r in rows})
series = lambda key: {a: [(r["round"], r[key]) for r in rows if r["arm"] in (a, "start")] for a in arms if a != "start"}
line_charts([{"series": series("win_rate"), "title": "win rate on held-out seeds", "xlabel": "round", "ylabel": "win rate", "integer_x": True},
             {"series": series("progress_mean"), "title": "mean progress", "xlabel": "round", "ylabel": "progress", "integer_x": True},
             {"series": {"correction": [(r["round"], r.get("corrector_steps", 0)) for r in rows if r["arm"] in ("start", "correction")]},
              "title": "corrector steps used per round", "xlabel": "round", "ylabel": "steps", "integer_x": True}],
            out / "rounds.png", title="correction rounds")
print("\n".join(lines), file=sys.stderr)
PY
}

step "round 0: evaluate the starting agent"
mkdir -p "$OUT/round-0"
evaluate "$RUN0" "$OUT/round-0"
table 0 start "$OUT/round-0" 0
cp -r "$DATASET0" "$OUT/dataset-correction"
[ "$COMPARE" = 1 ] && cp -r "$DATASET0" "$OUT/dataset-expert"
prev=$RUN0; prev_expert=$RUN0; prev_control=$RUN0
for r in $(seq 1 "$ROUNDS"); do
  R=$OUT/round-$r
  mkdir -p "$R"
  step "round $r/$ROUNDS: $EPISODES episodes, $CORRECTOR takes over where the agent would die"
  contra-bc play "$prev" --game "$GAME" "${AT[@]}" --episodes "$EPISODES" --workers "$WORKERS" --max-steps "$MAX_STEPS" \
    --temperature "$TEMPERATURE" $PERTURB --corrector "$CORRECTOR" --seed $((3000000 + 1000 * r)) --baseline none \
    --out "$R/corrections" --json | tail -n 1 > "$R/corrections.json"
  used=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["policies"]["agent"]["corrector_steps"])' "$R/corrections.json")
  contra-bc build-dataset "$R/corrections" --out "$OUT/dataset-correction" --append --workers "$WORKERS" > /dev/null
  contra-bc train "$OUT/dataset-correction" --init "$prev" --out "$R/run" --preset "$PRESET" --max-steps "$STEPS" \
    $TRAIN_FLAGS > /dev/null
  evaluate "$R/run" "$R"
  table "$r" correction "$R" "$used"
  prev=$R/run
  if [ "$COMPARE" = 1 ]; then
    step "round $r/$ROUNDS, comparison: $used steps of $EXPERT runs from the start, fine-tuned the same way"
    E=$OUT/round-$r-expert
    mkdir -p "$E/runs"
    left=$used; i=0
    while [ "$left" -gt 0 ]; do  # whole expert runs, the last cut to the same step count
      contra-bc record --input "$EXPERT" --game "$GAME" "${AT[@]}" --hz 20 --seed $((4000000 + 1000 * r + i)) $PERTURB \
        --max-steps "$left" --out "$E/runs/run-$i" > /dev/null
      n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["steps"])' "$E/runs/run-$i/meta.json")
      left=$((left - n)); i=$((i + 1))
    done
    contra-bc build-dataset "$E/runs" --out "$OUT/dataset-expert" --append --workers "$WORKERS" > /dev/null
    contra-bc train "$OUT/dataset-expert" --init "$prev_expert" --out "$E/run" --preset "$PRESET" \
      --max-steps "$STEPS" $TRAIN_FLAGS > /dev/null
    evaluate "$E/run" "$E"
    table "$r" expert "$E" "$used"
    prev_expert=$E/run
  fi
  if [ "$CONTROL" = 1 ]; then
    step "round $r/$ROUNDS, control: the same $STEPS fine-tuning steps on the starting data, nothing added"
    C=$OUT/round-$r-steps
    mkdir -p "$C"
    contra-bc train "$DATASET0" --init "$prev_control" --out "$C/run" --preset "$PRESET" --max-steps "$STEPS" \
      $TRAIN_FLAGS > /dev/null
    evaluate "$C/run" "$C"
    table "$r" steps "$C" 0
    prev_control=$C/run
  fi
done
step "done: $OUT/rounds.md, $OUT/rounds.png"
cat "$OUT/rounds.md"
