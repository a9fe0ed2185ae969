"""The entailment cross-encoder (MiniLM + LoRA + heads) for `halluguard verify --backend entail`.

    python training/entail.py --config training/configs/entail_minilm_lora.yaml
    python training/entail.py --config training/configs/entail_minilm_lora.yaml --method full --learning_rate 4e-5

Input: the token-id export of the training pool (`train_file`, see halluguard.pool.build). Output
(output_dir): entail.safetensors + entail_config.json (load with halluguard.train.entail.load_entail or
`halluguard verify --backend entail --model_dir DIR`), metrics.jsonl, train_summary.json.
Any field of `halluguard.train.entail.EntailConfig` may be given in the YAML or on the command line
(the command line wins); unknown keys are an error. Logic: halluguard/train/entail.py.
"""

import sys

from halluguard.train import entail
from halluguard.train.common import script_main

if __name__ == "__main__":
    sys.exit(script_main(entail.main))
