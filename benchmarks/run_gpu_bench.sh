#!/bin/bash
# Runs the stage-B and generation benchmarks on the lent H100 and leaves RESULT JSON lines + logs in $OUT.
# On the GPU machine, from the repo root, after the wheel install line of ../shared/gpu/fetch_wheels.sh:
#   bash benchmarks/run_gpu_bench.sh dpo8b dpo3b generate      (also: dpo7b = Qwen2.5-7B, gputest)
# dpo8b: Llama-3-8B architecture, (a) two models, (b) stock TRL, (c) halluguard profiles and levers;
# dpo3b: Qwen2.5-3B architecture; generate: batched vs one-at-a-time generation (Llama-3-8B, 4-bit).
# long8b: issue 12, documents of 8k-64k tokens on Llama-3.1-8B (128k context): stage B long/fit/stock and
# stage A (SFT) long/stock, plus which SDPA kernels run the attention (the first 8 configs, the goals'
# rows, take about 5 minutes on an H100; all 12 about 7).
# Override the config lists with CONFIGS_8B / CONFIGS_3B (syntax: python benchmarks/gpu_dpo.py --help).
set -uo pipefail
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/hg_out}
mkdir -p "$OUT"
CONFIGS_8B=${CONFIGS_8B:-stock:2048,fit:2048,fast:2048:1,fast:2048:auto,stock:2048:4,stock+share:2048,stock+share+embcpu+expandable+adam8bit:2048,stock:1024,fit:1024,fast:1024:auto,stock:4096,fit:4096,fast:4096:auto,stock+expandable:2048,stock:2048,two_model:1024}
CONFIGS_7B=${CONFIGS_7B:-stock:2048,fit:2048,fast:2048:auto,stock:4096,fit:4096}
CONFIGS_LONG=${CONFIGS_LONG:-long:16384:1:3,stock:16384:1:3,long:65536:1:2,long:32768:1:2,long:8192:1:3,stock:8192:1:3,sft_long:65536:1:2,sft_long:16384:1:2,sft_long:32768:1:2,sft_stock:16384:1:3,fit:8192:1:3,fit:16384:1:3}
CONFIGS_3B=${CONFIGS_3B:-stock:2048,fit:2048,fast:2048:auto,stock+share:2048,stock:1024,fit:1024,stock:2048}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
for part in "$@"; do
  case "$part" in
    dpo8b) python benchmarks/gpu_dpo.py run --arch llama3_8b --configs "$CONFIGS_8B" --out "$OUT/dpo_llama3_8b.jsonl" \
             2>&1 | grep -v "it/s\]\|^{'" | tee "$OUT/log_dpo_8b.txt" ;;
    dpo7b) python benchmarks/gpu_dpo.py run --arch qwen25_7b --configs "$CONFIGS_7B" --out "$OUT/dpo_qwen25_7b.jsonl" \
             2>&1 | grep -v "it/s\]\|^{'" | tee "$OUT/log_dpo_7b.txt" ;;
    long8b) python benchmarks/gpu_dpo.py run --arch llama31_8b --probe-attention --steps 3 --configs "$CONFIGS_LONG" \
             --out "$OUT/dpo_llama31_8b_long.jsonl" 2>&1 | grep -v "it/s\]\|^{'" | tee "$OUT/log_long_8b.txt" ;;
    gputest) python -m pytest -q -p no:cacheprovider tests/test_dpo_trainer.py -k gpu -s 2>&1 | grep -v "it/s\]" | tee "$OUT/log_gputest.txt" ;;
    dpo3b) python benchmarks/gpu_dpo.py run --arch qwen25_3b --configs "$CONFIGS_3B" --out "$OUT/dpo_qwen25_3b.jsonl" \
             2>&1 | grep -v "it/s\]\|^{'" | tee "$OUT/log_dpo_3b.txt" ;;
    generate) python benchmarks/gpu_generate.py --arch llama3_8b --batch 32 --new-tokens 32 --out "$OUT/generate.jsonl" \
             2>&1 | grep -v "it/s\]" | tee "$OUT/log_generate.txt" ;;
    *) echo "usage: $0 dpo8b|dpo7b|dpo3b|long8b|generate|gputest ..." >&2; exit 2 ;;
  esac
done
