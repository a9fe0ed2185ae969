"""Stage A: QLoRA SFT of the summarizer on (document, summary) rows, loss on the summary only.

    from halluguard.train import sft
    sft.main(["--config", "training/configs/sft_qwen7b_qlora.yaml", "--max_steps", "10"])

Rows become TRL conversational prompt-completion examples: prompt = the user turn of
`summary_messages(document)`, completion = the assistant turn with the reference summary. With
`completion_only_loss: true` TRL masks the prompt tokens, so the loss is on the summary only.

Long documents: `memory_profile: long` (HalluguardSFTConfig) turns on gradient checkpointing,
activation offloading, the input embeddings in CPU memory, MLPs tiled along the sequence
(`mlp_tile_tokens`, see halluguard.train.tiling), 8-bit Adam and expandable segments. TRL 1.16 already
computes the loss in token x vocabulary tiles on the summary tokens only (its fused LM head), so no
[seq, vocab] logits exist either way. The loss and gradients are stock TRL's (tests/test_training.py).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trl import SFTConfig, SFTTrainer

from halluguard.train.common import (
    ModelArguments,
    drop_overlong,
    load_policy,
    lora_state,
    make_metrics_callback,
    read_table,
    require_chat_template,
    resolve_checkpoint,
    set_seed,
    split_train_eval,
    summary_messages,
    train_guarded,
    write_metric_files,
)
from halluguard.train.dpo import (
    apply_long_levers,
    apply_profile,
    offload_input_embeddings,
    set_expandable_segments,
    set_offload_stash,
)

logger = logging.getLogger("halluguard.train.sft")


@dataclass
class SFTArguments(ModelArguments):
    """Stage A: data and model; the optimizer, schedule and output live in TRL's SFTConfig."""

    train_file: str | None = field(default=None, metadata={"help": "JSONL/CSV/Parquet with documents and reference summaries."})
    eval_file: str | None = field(default=None, metadata={"help": "Optional held-out file in the same format."})
    eval_fraction: float = field(
        default=0.0, metadata={"help": "Without eval_file: hold out this fraction of train_file documents (seeded; "
                                       "all summaries of a document stay on one side)."}
    )
    document_column: str = field(default="document", metadata={"help": "Column with the source document."})
    summary_column: str = field(default="summary", metadata={"help": "Column with the reference summary."})


SFT_PROFILES = ("stock", "long")
SFT_PROFILE_SETTINGS: dict[str, dict[str, Any]] = {
    "stock": {},
    "long": {
        "gradient_checkpointing": True,
        "activation_offloading": True,
        "embeddings_on_cpu": True,
        "mlp_tile_tokens": 2048,
        "offload_stash_size": 2,
        "expandable_segments": True,
        "optim": "adamw_8bit",
    },
}


@dataclass
class HalluguardSFTConfig(SFTConfig):
    """TRL's SFTConfig plus the long-document levers of stage A (the same ones stage B's `long` uses)."""

    memory_profile: str = field(
        default="stock",
        metadata={"help": "'stock' (TRL defaults) or 'long' (checkpointing + activation offloading + embeddings on "
                          "CPU + tiled MLP + 8-bit Adam: 16k-64k-token documents). Explicit fields override it.",
                  "choices": list(SFT_PROFILES)},
    )
    embeddings_on_cpu: bool | None = field(
        default=None, metadata={"help": "Keep the (frozen) input embedding table in CPU memory."})
    mlp_tile_tokens: int | None = field(
        default=None, metadata={"help": "Run every decoder MLP this many tokens at a time (DeepSpeed's TiledMLP). "
                                        "Same loss and gradients. None: off."})
    offload_stash_size: int | None = field(
        default=None, metadata={"help": "With activation_offloading: offloaded activations kept on the GPU while "
                                        "their copies run (TRL's max_fwd_stash_size, default 5)."})
    expandable_segments: bool | None = field(
        default=None, metadata={"help": "CUDA allocator with expandable segments (less fragmentation)."})

    def __post_init__(self):
        apply_profile(self, SFTConfig, SFT_PROFILE_SETTINGS)
        if self.mlp_tile_tokens is not None and self.mlp_tile_tokens < 1:
            raise ValueError(f"mlp_tile_tokens must be >= 1 or None, got {self.mlp_tile_tokens}")
        super().__post_init__()


class HalluguardSFTTrainer(SFTTrainer):
    """TRL 1.16 SFTTrainer with the levers of HalluguardSFTConfig (a plain SFTConfig means stock)."""

    def __init__(self, model, *args, **kwargs):
        config = kwargs.get("args", args[0] if args else None)
        self.embeddings_offloaded = False
        if isinstance(config, HalluguardSFTConfig) and not isinstance(model, str):
            if config.expandable_segments:
                set_expandable_segments(True)
            apply_long_levers(model, config.mlp_tile_tokens, segmented_attention=False)
            if config.embeddings_on_cpu:
                if kwargs.get("peft_config") is not None or hasattr(model, "peft_config"):
                    self.embeddings_offloaded = offload_input_embeddings(model, freeze=True)
                else:
                    logger.warning("embeddings_on_cpu ignored: full fine-tuning trains the embedding table")
        super().__init__(model, *args, **kwargs)
        if isinstance(config, HalluguardSFTConfig):
            set_offload_stash(self, config.offload_stash_size)


def to_prompt_completion(ds, args: SFTArguments):
    """Map (document, summary) rows to TRL's conversational prompt-completion format."""
    def row(r: dict[str, Any]) -> dict[str, Any]:
        return {"prompt": summary_messages(r[args.document_column], args.instruction),
                "completion": [{"role": "assistant", "content": r[args.summary_column].strip()}]}

    return ds.map(row, remove_columns=ds.column_names)


def make_parser():
    from trl import TrlParser

    return TrlParser((SFTArguments, HalluguardSFTConfig))


def run(args: SFTArguments, cfg, callbacks: list | None = None) -> dict[str, Any]:
    """Train stage A; returns {"output_dir", "global_step", "train_loss", "lora_changed", ...}.
    `callbacks`: extra transformers TrainerCallbacks."""
    from transformers.trainer_utils import IntervalStrategy

    if not args.train_file:
        raise ValueError("train_file is required")
    set_seed(cfg.seed)
    cols = [args.document_column, args.summary_column]
    data = read_table(args.train_file, cols, "train")
    train, evald = split_train_eval(data, args.eval_fraction, cfg.seed, group_column=args.document_column)
    if args.eval_file:
        evald = read_table(args.eval_file, cols, "eval")
    if evald is None and cfg.eval_strategy != IntervalStrategy.NO:
        logger.warning("no eval data: eval_strategy set to 'no'")
        cfg.eval_strategy = IntervalStrategy.NO
    train = to_prompt_completion(train, args)
    evald = to_prompt_completion(evald, args) if evald is not None else None

    model, tok, peft_cfg = load_policy(args, adapter=None, trust_remote_code=cfg.trust_remote_code,
                                       gradient_checkpointing=bool(cfg.gradient_checkpointing))
    require_chat_template(tok, "stage A (SFT)")
    train = drop_overlong(train, tok, cfg.max_length, "train")
    evald = drop_overlong(evald, tok, cfg.max_length, "eval") if evald is not None else None
    trainer = HalluguardSFTTrainer(model=model, args=cfg, train_dataset=train, eval_dataset=evald, processing_class=tok,
                         peft_config=peft_cfg, callbacks=[make_metrics_callback(cfg.output_dir), *(callbacks or [])])
    before = lora_state(trainer.model)
    resume = resolve_checkpoint(cfg.output_dir, cfg.resume_from_checkpoint, args.auto_resume)
    result = train_guarded(trainer, resume, "stage A (SFT)", args.model_name_or_path)
    after = lora_state(trainer.model)
    trainer.save_model(cfg.output_dir)  # collective under DeepSpeed/FSDP: every rank calls it
    info = {"stage": "sft", "output_dir": cfg.output_dir, "global_step": trainer.state.global_step,
            "train_loss": result.training_loss, "resumed_from": resume,
            "lora_changed": any(not before[k].equal(after[k]) for k in before),
            "base_model": args.model_name_or_path, "args": asdict(args)}
    if trainer.is_world_process_zero():
        tok.save_pretrained(cfg.output_dir)
        write_metric_files(cfg.output_dir)
        Path(cfg.output_dir, "run_info.json").write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
    return info


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, cfg = make_parser().parse_args_and_config(argv)
    return run(args, cfg)
