#!/usr/bin/env bash
# Record yourself playing NES Contra at 20 Hz, with the ROM you own, and prove the runs replay exactly.
set -euo pipefail
ROM_DIR=${1:?usage: examples/record_contra.sh DIR_WITH_YOUR_CONTRA_ROM [SESSION_DIR]}
SESSION=${2:-sessions/contra-$(date +%Y%m%d-%H%M%S)}

# 1. Import the ROM into stable-retro once (SHA-1 without the iNES header: 979494e7869ac7ab4815fdbd1dc99f893f713fbf).
python -m stable_retro.import "$ROM_DIR"
contra-bc games | grep -i contra

# 2. Play: one emulator step per 50 ms tick; the keys down at each tick are the step's action.
#    Arrows = d-pad, X = A (jump), Z = B (fire), Enter = START; P pause, N keep, Backspace redo, Esc stop.
#    No display? Prefix with `xvfb-run -a` (for scripted tests) or use a desktop session.
contra-bc record --game Contra-Nes --state Level1 --out "$SESSION" --episode-until life

# 3. Prove every episode replays bit for bit (exit 1 on any divergence: fit for CI).
contra-bc replay-verify "$SESSION" --check-video

# 4. Later sessions continue the same folder; nothing recorded is ever overwritten.
echo "continue with: contra-bc record --game Contra-Nes --out $SESSION --resume"
