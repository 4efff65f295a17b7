#!/usr/bin/env bash
# The README's main job on the embedded default: record scripted episodes and prove they replay exactly.
set -euo pipefail
OUT=${OUT:-demo-out}
GAME=${GAME:-Airstriker-Genesis-v0}
rm -rf "$OUT"
contra-bc games
contra-bc record --input bot:airstriker --game "$GAME" --episodes 2 --max-steps 400 --out "$OUT/recordings"
contra-bc replay-verify "$OUT/recordings" --check-video --report-dir "$OUT/replay-report"
