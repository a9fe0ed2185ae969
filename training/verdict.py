"""SFT vs DPO on held-out documents: hallucination rate (verifier), ROUGE, similarity, preference
accuracy, confidence, consistency; McNemar + paired bootstrap; the verdict (supported / partial /
not supported, rule in docs/training.md).

    python training/verdict.py --config training/configs/verdict_qwen7b_lite.yaml

Both adapters are switched on one 4-bit base. Summaries both models wrote earlier are scored without
loading a model (how examples/sft_vs_dpo/ was made):

    python training/verdict.py --eval_file examples/sft_vs_dpo/summaries.jsonl --summary_column reference \
        --sft_summary_column sft_summary --dpo_summary_column dpo_summary --output_dir examples/sft_vs_dpo

Output (output_dir): verdict.json, verdict.md, per_document.jsonl and the figure verdict.png / .svg.
Logic: halluguard/train/verdict.py.
"""

import sys

from halluguard.train import verdict
from halluguard.train.common import script_main

if __name__ == "__main__":
    sys.exit(script_main(verdict.main))
