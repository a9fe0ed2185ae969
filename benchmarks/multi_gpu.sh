#!/bin/bash
# Issue 13's whole two-GPU measurement in ONE device call: stage B (fit, fast) on the Llama-3-8B
# architecture on one GPU, under DDP and under ZeRO-3 (4-bit stored as bf16); the 3B scorer (SmolLM3-3B
# architecture) on one GPU and under DDP; 20 fixed-seed steps on one GPU and on two, compared. Rows go to
# $OUT/multi_gpu.jsonl, logs to $OUT/log_mgpu_*.txt. benchmarks/multi_gpu.py says what each row holds.
#
# Here (the CPU machine), once: wheels the GPU machine lacks, into .whl (trl, bitsandbytes, datasets)
# and .whl/ds (deepspeed, built here as a pure-python wheel, and its small dependencies):
#   bash ../shared/gpu/fetch_wheels.sh && bash benchmarks/multi_gpu.sh fetch
# On the two-GPU machine (carry [".whl"], timeout 600):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#     .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && bash benchmarks/multi_gpu.sh
# Parts (default all, in this order; the most wanted first, so a run cut short keeps them):
#   make ddp8b scorer agree zero8b summary        e.g. `bash benchmarks/multi_gpu.sh make zero8b summary`
# Dry run of this script's flow on the CPU (tiny model, fake nvidia-smi printing two GPUs, deepspeed
# importable; about 5 minutes on two cores; the accelerate DDP launch autocasts to bf16 on the CPU, so its
# agreement row fails there by design of that dry run):
#   PATH=/tmp/fake:$PATH DS_ACCELERATOR=cpu HG_BENCH_CPU=1 OMP_NUM_THREADS=1 ARCH_8B=tiny_llama ARCH_3B=tiny_llama \
#   CONFIGS_8B=stock:64,fast:64:1 CONFIGS_3B=stock:64 AGREE_ARGS="--agree-seq 64 --agree-mode stock --lr 1e-3" \
#   bash benchmarks/multi_gpu.sh
# HG_MGPU_BUDGET_S (default 570): no part runs past this many seconds (a part is stopped or skipped, and a
# `skipped` row says so), so that `summary` still runs inside the device tool's 600 s.
set -uo pipefail
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/hg_out}
ROWS="$OUT/multi_gpu.jsonl"
AGREE_DIR="$OUT/agree"
BUDGET=${HG_MGPU_BUDGET_S:-570}
CONFIGS_8B=${CONFIGS_8B:-fit:2048,fast:2048:4}
CONFIGS_3B=${CONFIGS_3B:-fit:2048,fast:2048:8}
ARCH_8B=${ARCH_8B:-llama3_8b}    # overridable for a dry run of this script on the CPU (tiny_llama, HG_BENCH_CPU=1)
ARCH_3B=${ARCH_3B:-smollm3_3b}
# 20 steps of the 3B scorer, fit profile, bf16; lr high enough that the loss falls far beyond the tolerance.
read -ra AGREE_ARGS <<< "${AGREE_ARGS:---agree-steps 20 --agree-seq 1024 --agree-mode fit --lr 5e-4 --seed 0}"
PY=(python3 benchmarks/multi_gpu.py)
DDP=(accelerate launch --config_file training/accelerate/ddp.yaml --num_processes 2 benchmarks/multi_gpu.py)
ZERO3=(accelerate launch --config_file training/accelerate/zero3.yaml --num_processes 2 benchmarks/multi_gpu.py)
# DeepSpeed's imports, each with the wheels that provide it (installed only where the image lacks it).
DS_DEPS=("hjson:hjson-*" "cpuinfo:py_cpuinfo-*" "ninja:ninja-*" "msgpack:msgpack-*" "einops:einops-*"
         "pydantic:pydantic-[0-9]* pydantic_core-* annotated_types-* typing_inspection-* typing_extensions-*")

fetch() {  # on the CPU machine: .whl/ds, about 5.6 MB
  mkdir -p .whl/ds
  DS_BUILD_OPS=0 python3 -m pip wheel -q --no-deps deepspeed==0.19.8 -w .whl/ds || return 1
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl/ds hjson py-cpuinfo ninja msgpack einops pydantic pydantic-core annotated-types typing-inspection \
    typing-extensions \
    || return 1
  du -sh .whl .whl/ds
}

install_deepspeed() {  # on the GPU machine: into /tmp/site (already on PYTHONPATH), never over the image
  python3 -c "import deepspeed" 2>/dev/null && return 0
  local wheels=(.whl/ds/deepspeed-*.whl) entry module
  for entry in "${DS_DEPS[@]}"; do
    module=${entry%%:*}
    python3 -c "import $module" 2>/dev/null && continue
    for pat in ${entry#*:}; do wheels+=(.whl/ds/$pat.whl); done
  done
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "${wheels[@]}" \
    && python3 -c "import deepspeed; print('deepspeed', deepspeed.__version__)"
}

skip_row() {
  echo "{\"kind\": \"skipped\", \"part\": \"$1\", \"why\": \"$2\"}" | tee -a "$ROWS"
}

part() {  # part NAME COMMAND...: run unless past the budget, stopped at it; keep the log without progress lines
  local name=$1; shift
  local left=$(( BUDGET - SECONDS ))
  if (( left < 20 )); then skip_row "$name" "would start at ${SECONDS}s, HG_MGPU_BUDGET_S=$BUDGET"; return; fi
  echo "== $name (t=${SECONDS}s)"
  local run=(timeout "$left")
  declare -F "$1" > /dev/null && run=()  # a shell function (make_models): timeout cannot run it
  "${run[@]}" "$@" 2>&1 | grep -v "it/s\]\|s/it\]\|^{'" >> "$OUT/log_mgpu_$name.txt"
  (( PIPESTATUS[0] == 124 )) && skip_row "$name" "stopped at HG_MGPU_BUDGET_S=$BUDGET (rows written before stay)"
  grep "^RESULT\|^agree\|^loaded\|Error" "$OUT/log_mgpu_$name.txt" | cut -c1-400 | tail -20
}

zero3_configs() {  # one launch per config under ZeRO-3
  local c
  for c in ${CONFIGS_8B//,/ }; do
    part "zero8b_${c//:/_}" "${ZERO3[@]}" run --arch "$ARCH_8B" --configs "$c" --out "$ROWS"
  done
}

make_models() {  # both random-init architectures at once, one per GPU
  CUDA_VISIBLE_DEVICES=0 "${PY[@]}" make --arch "$ARCH_8B" & local p8=$!
  [[ "$ARCH_3B" == "$ARCH_8B" ]] && { wait $p8; return; }
  CUDA_VISIBLE_DEVICES=1 "${PY[@]}" make --arch "$ARCH_3B" & local p3=$!
  wait $p8 && wait $p3
}

if [[ "${1:-}" == fetch ]]; then fetch; exit $?; fi
mkdir -p "$OUT" "$AGREE_DIR"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
if (( $(nvidia-smi -L | wc -l) < 2 )); then echo "needs two GPUs (nvidia-h200-x2 / nvidia-h100-x2)" >&2; exit 2; fi
parts=("$@"); (( ${#parts[@]} )) || parts=(make ddp8b scorer agree zero8b summary)
for p in "${parts[@]}"; do
  case "$p" in
    make) part make make_models ;;
    ddp8b) part single8b env CUDA_VISIBLE_DEVICES=0 "${PY[@]}" run --arch "$ARCH_8B" --configs "$CONFIGS_8B" --out "$ROWS"
           part ddp8b "${DDP[@]}" run --arch "$ARCH_8B" --configs "$CONFIGS_8B" --out "$ROWS" ;;
    scorer) part single3b env CUDA_VISIBLE_DEVICES=0 "${PY[@]}" run --arch "$ARCH_3B" --configs "$CONFIGS_3B" \
              --out "$ROWS" --agree 1x2,2x1 --save "$AGREE_DIR" "${AGREE_ARGS[@]}"
            part ddp3b "${DDP[@]}" run --arch "$ARCH_3B" --configs "$CONFIGS_3B" --out "$ROWS" \
              --agree 1x1 --save "$AGREE_DIR" "${AGREE_ARGS[@]}" ;;
    agree) part compare "${PY[@]}" compare --save "$AGREE_DIR" --out "$ROWS" ;;
    zero8b) if install_deepspeed >> "$OUT/log_mgpu_install.txt" 2>&1; then zero3_configs
            else skip_row zero8b "deepspeed did not install (log_mgpu_install.txt)"; fi ;;
    summary) "${PY[@]}" summarize --out "$ROWS" | cut -c1-300 ;;
    *) echo "usage: $0 [fetch | make ddp8b scorer agree zero8b summary ...]" >&2; exit 2 ;;
  esac
done
echo "done in ${SECONDS}s; rows: $ROWS"
