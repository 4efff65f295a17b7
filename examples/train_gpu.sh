#!/usr/bin/env bash
# Train a paper-sized policy on GPUs with PyTorch's own launcher (DDP; rank 0 writes checkpoints).
set -euo pipefail
DATASET=${1:?usage: examples/train_gpu.sh DATASET [RUN] [GPUS]}
RUN=${2:-runs/p2p-150M}
GPUS=${3:-$(nvidia-smi -L | wc -l)}

# On a GPU machine install a CUDA build of torch first (pip install torch), then contra-bc.
# bf16 autocast with fp32 parameters is used on CUDA; --compile turns on torch.compile.
torchrun --standalone --nproc_per_node="$GPUS" -m contra_bc train "$DATASET" --out "$RUN" \
  --preset 150M --batch-size 4 --grad-accum 4 --window 200 --compile --max-steps 100000

# Interrupted? The same command with --resume continues exactly from RUN/last.
# torchrun --standalone --nproc_per_node="$GPUS" -m contra_bc train "$DATASET" --out "$RUN" --resume

# Evaluate against a random baseline, and check the policy looks at the screen.
contra-bc play "$RUN" --game Outpost-Nes --episodes 50 --workers 8 --out "$RUN-eval"
contra-bc causality-score --over "$RUN" "$DATASET" --plot "$RUN-causality.png"
