#!/usr/bin/env bash
# Annotate recordings with Gemini: timestamped, task-oriented instructions per recording.
# The key is read from the environment only and never written anywhere.
set -euo pipefail
RECORDINGS=${1:?usage: examples/annotate_gemini.sh RECORDINGS_DIR}
: "${GEMINI_API_KEY:?export GEMINI_API_KEY (or GOOGLE_API_KEY) first}"

# Interactive-sized jobs: clips of 60 s at 5 fps, four recordings at a time, resumable.
contra-bc annotate "$RECORDINGS" --concurrency 4 --json > annotate-summary.json

# Large collections: the Batch API (about half the price, slower to come back).
# contra-bc annotate "$RECORDINGS" --batch

# Without a key: import a hand-written | Start | End | Text | table for one recording.
# contra-bc annotate "$RECORDINGS/episode-0000" --from-table examples/outpost-level1-annotations.md

# Annotations feed the dataset: each step gets the instruction active at that step.
contra-bc build-dataset "$RECORDINGS" --out datasets/annotated --require-annotations
