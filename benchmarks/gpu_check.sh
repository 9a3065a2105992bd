#!/usr/bin/env bash
# One prepared command for a lent GPU machine (issue 11, item 5):
#   1. training throughput of the GPU recipe's case (ResNet18, 224 px, bf16,
#      channels_last) with and without torch.compile, against a plain PyTorch loop
#      on the same GPU (benchmarks/train_throughput.py);
#   2. a short real training of the demo on the GPU: metrics.json with test
#      top-1, and model.onnx checked with onnxruntime against PyTorch;
#   3. inference of that model (benchmarks/inference.py): eager PyTorch, fp32
#      and fp16 onnxruntime (model.fp16.onnx, accuracy-guarded) on the GPU at
#      40 and 224 px, batch 1 and 64, with test top-1 (issue 23, item 5).
# Without a CUDA GPU it runs a small CPU fall-back of every step (fp32, 40 px, no
# compile, a few steps; fp16 through onnxruntime's CPU provider), so the script
# itself can be tested anywhere.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]      # default OUT_DIR: outputs/gpu_check
# Environment: PYTHON (default .venv/bin/python, else python3), DATA_ROOT (a
# dataset; default: the synthetic demo set, generated into OUT_DIR if missing),
# EPOCHS (demo epochs on the GPU, default 3).
set -euo pipefail

cd "$(dirname "$0")/.."
OUT_DIR=${1:-outputs/gpu_check}
mkdir -p "$OUT_DIR"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

run() {
    echo "+ $*" >&2
    "$@"
}

if "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    "$PYTHON" -c 'import torch; print("GPU:", torch.cuda.get_device_name(0))'
    workers=$(( $(nproc) < 8 ? $(nproc) : 8 ))
    bench_args=(--accelerator gpu --precision bf16-mixed --sizes 224
        --batch-size 128 --workers "$workers" --channels-last true
        --compile both --steps 40 --warmup 10 --repeats 1 --per-class 20)
    train_args=(trainer=gpu trainer.accelerator=gpu "trainer.max_epochs=${EPOCHS:-3}"
        "data.num_workers=$workers")
    infer_args=(--device cuda --precisions fp16 --sizes 40 224)
else
    echo "no CUDA GPU: CPU fall-back (fp32, 40 px, no compile, a few steps)"
    bench_args=(--accelerator cpu --precision 32-true --sizes 40 --batch-size 32
        --workers 2 --compile off --steps 3 --warmup 1 --repeats 1 --per-class 4)
    train_args=(trainer.max_epochs=1 +trainer.limit_train_batches=4
        +trainer.limit_val_batches=2 +trainer.limit_test_batches=2)
    infer_args=(--device cpu --precisions fp16 --sizes 40 --repeats 2
        --batch-repeats 1)
fi

# 1. Throughput against the plain loop.
run "$PYTHON" benchmarks/train_throughput.py "${bench_args[@]}" \
    | tee "$OUT_DIR/throughput.txt"

# 2. A short real training of the demo, then its artifacts.
data_root=${DATA_ROOT:-$OUT_DIR/synthetic-jersey}
if [[ ! -f "$data_root/.complete" && -z "${DATA_ROOT:-}" ]]; then
    run "$PYTHON" -c "import sys; from classifier_training.synthetic.cli import main; sys.exit(main())" \
        --out "$data_root" \
        --per-class 60 --seed 0 --image-size 48
fi
run_dir="$OUT_DIR/demo_run"
rm -rf "$run_dir"
start=$(date +%s)
run "$PYTHON" -m classifier_training.train --config-name train_demo \
    "data.data_root=$data_root" "hydra.run.dir=$run_dir" "${train_args[@]}" \
    | tee "$OUT_DIR/demo_train.txt"
echo "demo training wall time: $(( $(date +%s) - start )) s"

"$PYTHON" - "$run_dir" <<'EOF'
"""Check the demo run's artifacts: metrics, and model.onnx against its checkpoint."""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

run = Path(sys.argv[1])
metrics = json.loads((run / "metrics.json").read_text())
test = metrics.get("test", metrics["val"])
print(f"test top-1 {100 * test['acc_top1']:.2f} %, wall time {metrics['wall_time_s']} s")
session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
shape = session.get_inputs()[0].shape
images = np.random.default_rng(0).standard_normal((2, 3, shape[2], shape[3]))
(logits,) = session.run(None, {session.get_inputs()[0].name: images.astype(np.float32)})
assert logits.shape[0] == 2 and np.isfinite(logits).all(), logits.shape
print(f"model.onnx ok: logits {logits.shape}")
EOF
# 3. Inference: fp16 against fp32 onnxruntime and eager PyTorch.
if [[ "${infer_args[1]}" == cuda ]] && ! "$PYTHON" -c \
    'import sys, onnxruntime as o; sys.exit("CUDAExecutionProvider" not in o.get_available_providers())'; then
    echo "onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu):" \
        "fp16 inference not measured"
else
    run "$PYTHON" benchmarks/inference.py --run "$run_dir" --data-root "$data_root" \
        "${infer_args[@]}" | tee "$OUT_DIR/inference_fp16.txt"
fi
echo "gpu_check: done; outputs in $OUT_DIR"
