#!/usr/bin/env bash
# The whole training pipeline on a tiny random model, offline, on a CPU (a few minutes). Run from the
# repository root:  bash examples/tiny_pipeline/run.sh      Everything is written under outputs/tiny_pipeline/.
set -euo pipefail
export HF_HUB_OFFLINE=1                     # nothing here needs the hub; fail fast if something tries
D=examples/tiny_pipeline
halluguard data sft --config $D/data.yaml               # data/sft_train.jsonl + data/heldout.jsonl
python $D/make_model.py                                 # model/ (random weights, real tokenizer)
python training/sft.py      --config $D/sft.yaml        # stage A  -> sft/ (LoRA adapter)
python training/triplets.py --config $D/triplets.yaml   # pairs    -> triplets/train.jsonl, val.jsonl
python training/dpo.py      --config $D/dpo.yaml        # stage B  -> dpo/ (LoRA adapter)
python training/scorer.py   --config $D/scorer.yaml     # scorer   -> scorer/ (+ halluguard_scorer.json)
python training/verdict.py  --config $D/verdict.yaml    # verdict  -> verdict/verdict.md
halluguard verify --backend dpo-reward --model outputs/tiny_pipeline/model --adapter outputs/tiny_pipeline/scorer \
  --quantization none --input examples/sample_pairs.jsonl --output outputs/tiny_pipeline/flagged.jsonl
echo "done: see outputs/tiny_pipeline/verdict/verdict.md"
