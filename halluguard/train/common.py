"""Helpers every training stage shares: model + LoRA set-up, data loading, seeds, resume, OOM reports,
metric files and plots, generation and completion log-probs.

    from halluguard.train.common import ModelArguments, load_policy, read_table, MetricsFileCallback
    model, tok = load_policy(margs, adapter="runs/sft", trainable=True)   # SFT adapter as "default"
    ds = read_table("docs.jsonl", required=["document", "summary"])

Heavy libraries (torch, transformers, peft, trl, datasets) are imported inside functions so that
`halluguard --help` and the config tests stay fast.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("halluguard.train")

# The instruction the stage-A model is trained with and every later stage prompts with. Triplets,
# stage B and the verdict must use the same prompt or the preference data would not match the policy.
DEFAULT_INSTRUCTION = (
    "Summarize the following document in a few sentences. Use only facts stated in the document."
)

QUANTIZATIONS = ("nf4", "int8", "none")


# ---------------------------------------------------------------------------------------------------
# Config shared by the stages
# ---------------------------------------------------------------------------------------------------
@dataclass
class ModelArguments:
    """Which base model to load and how, plus the LoRA adapter to train on it.

    Field names avoid those of TRL's SFTConfig/DPOConfig (e.g. `trust_remote_code` lives there) so
    both can be parsed by one TrlParser.
    """

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Base model: hub ID or local path (config + weights)."}
    )
    quantization: str = field(
        default="nf4",
        metadata={"help": "Weights of the frozen base: 'nf4' (4-bit QLoRA), 'int8' or 'none'.", "choices": QUANTIZATIONS},
    )
    model_dtype: str = field(
        default="auto",
        metadata={"help": "Compute/unquantized dtype: 'auto', 'bfloat16', 'float16' or 'float32'."},
    )
    device_map: str | None = field(
        default="auto",
        metadata={"help": "transformers device_map; under accelerate (DDP) each process is pinned to its own "
                          "GPU and under DeepSpeed/FSDP no map is used, whatever this says."},
    )
    allow_fallback: bool = field(
        default=False,
        metadata={"help": "If 4-bit/8-bit is not available here, load unquantized instead of failing."},
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "Modules that get LoRA; 'all-linear' = every linear layer but the LM head (QLoRA paper)."},
    )
    upcast_fp32: bool = field(
        default=False,
        metadata={"help": "With 4/8-bit: run PEFT's prepare_model_for_kbit_training, which casts every unquantized "
                          "weight (norms, input embeddings, LM head) to fp32. Slightly stabler; costs ~2-4 GiB on "
                          "a 7B with a large vocabulary. Off = TRL's own QLoRA behaviour (what the planner assumes)."},
    )
    auto_resume: bool = field(
        default=True,
        metadata={"help": "Resume from the last checkpoint in output_dir when one exists (a killed run "
                          "continues). --resume_from_checkpoint PATH picks one explicitly."},
    )
    instruction: str = field(
        default=DEFAULT_INSTRUCTION,
        metadata={"help": "The summarization instruction put before each document (same in every stage)."},
    )

    def __post_init__(self) -> None:
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {self.quantization!r}")


def lora_config(margs: ModelArguments):
    """The peft LoraConfig for a fresh adapter."""
    from peft import LoraConfig

    targets: Any = margs.lora_target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"  # peft wants the string, not a one-element list
    return LoraConfig(
        r=margs.lora_r, lora_alpha=margs.lora_alpha, lora_dropout=margs.lora_dropout,
        target_modules=targets, bias="none", task_type="CAUSAL_LM",
    )


# ---------------------------------------------------------------------------------------------------
# Seeds, prompts
# ---------------------------------------------------------------------------------------------------
def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    from transformers import set_seed as hf_set_seed

    random.seed(seed)
    hf_set_seed(seed)


def summary_messages(document: str, instruction: str = DEFAULT_INSTRUCTION) -> list[dict[str, str]]:
    """The chat prompt every stage uses: one user turn with the instruction and the document."""
    return [{"role": "user", "content": f"{instruction}\n\n{document}"}]


# ---------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------
_READERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def read_table(path: str | os.PathLike, required: Sequence[str] = (), name: str = "data"):
    """Load a JSONL/CSV/Parquet file as a `datasets.Dataset` and drop rows that cannot be used.

    A missing file or a missing column raises ValueError/FileNotFoundError naming it. Rows whose required
    fields are empty or not text are dropped with one warning that lists their row numbers (1-based),
    so good rows are never lost because of a bad one.
    """
    from datasets import load_dataset

    p = Path(path)
    if not p.exists():
        hint = ""
        if p.name in ("sft_train.jsonl", "heldout.jsonl"):  # the recipes' default data files
            hint = "; build it with `halluguard data sft --from cnn_dailymail` (or a local file), see docs/training.md"
        raise FileNotFoundError(f"{name} file not found: {p}{hint}")
    kind = _READERS.get(p.suffix.lower())
    if kind is None:
        raise ValueError(f"{name} file {p}: unsupported extension {p.suffix!r}; use .jsonl, .csv or .parquet")
    try:
        ds = load_dataset(kind, data_files=str(p), split="train")
    except Exception as e:
        raise ValueError(f"{name} file {p} could not be read as {kind}: {e}") from e
    missing = [c for c in required if c not in ds.column_names]
    if missing:
        raise ValueError(f"{name} file {p} has no column(s) {missing}; columns are {ds.column_names}")
    if required:
        bad: list[int] = []

        def ok(row: dict, idx: int) -> bool:
            good = all(_usable(row[c]) for c in required)
            if not good:
                bad.append(idx + 1)
            return good

        ds = ds.filter(ok, with_indices=True)
        if bad:
            logger.warning("%s file %s: dropped %d row(s) with empty or non-text %s: rows %s%s", name, p, len(bad),
                           list(required), bad[:10], " ..." if len(bad) > 10 else "")
        if len(ds) == 0:
            raise ValueError(f"{name} file {p}: no usable rows (every row lacks one of {list(required)})")
    return ds


def _usable(v: Any) -> bool:
    if isinstance(v, str):
        return bool(v.strip())
    if isinstance(v, list):  # conversational fields: a list of {"role", "content"} messages
        return bool(v) and all(isinstance(m, dict) and str(m.get("content", "")).strip() for m in v)
    return False


def split_train_eval(ds, eval_fraction: float, seed: int, group_column: str | None = None):
    """(train, eval) with eval a seeded fraction of the rows — of the *groups* when `group_column` is given
    (e.g. the document, so two summaries of one document never straddle the split). eval is None when the
    fraction is 0 or there are fewer than 4 rows/groups."""
    if eval_fraction <= 0:
        return ds, None
    if group_column is None:
        if len(ds) < 4:
            return ds, None
        parts = ds.train_test_split(test_size=eval_fraction, seed=seed)
        return parts["train"], parts["test"]
    import hashlib

    keys = [hashlib.sha1(" ".join(str(v).lower().split()).encode()).hexdigest() for v in ds[group_column]]
    uniq = sorted(set(keys))
    if len(uniq) < 4:
        return ds, None
    random.Random(seed).shuffle(uniq)
    held = set(uniq[:max(1, round(len(uniq) * eval_fraction))])
    return (ds.select([i for i, k in enumerate(keys) if k not in held]),
            ds.select([i for i, k in enumerate(keys) if k in held]))


def drop_overlong(ds, tok, max_length: int | None, name: str = "train"):
    """Drop prompt-completion / preference rows longer than `max_length` tokens, with one warning.

    TRL would truncate them (keep_start cuts the end, i.e. the summary the loss is on); a document that
    does not fit is better left out, visibly, than trained on with its summary cut off.
    """
    if not max_length:
        return ds
    keys = [k for k in ("completion", "chosen", "rejected") if k in ds.column_names]

    def n_tokens(row: dict) -> int:
        lens = []
        for k in keys:
            c = row[k]
            if isinstance(row["prompt"], list):
                text = c[0]["content"] if isinstance(c, list) else str(c)
                p_ids, c_ids = chat_token_ids(tok, row["prompt"], text)
                lens.append(len(p_ids) + len(c_ids))
            else:
                lens.append(len(tok(row["prompt"] + str(c), add_special_tokens=False)["input_ids"]) + 1)
        return max(lens)

    bad: list[int] = []

    def ok(row: dict, idx: int) -> bool:
        if n_tokens(row) > max_length:
            bad.append(idx + 1)
            return False
        return True

    out = ds.filter(ok, with_indices=True)
    if bad:
        logger.warning("%s: dropped %d row(s) longer than max_length=%d tokens (rows %s%s); raise max_length or "
                       "shorten them", name, len(bad), max_length, bad[:10], " ..." if len(bad) > 10 else "")
    if len(out) == 0:
        raise ValueError(f"{name}: every row is longer than max_length={max_length} tokens")
    return out


# ---------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------
def _distributed_device_map(requested: str | None) -> Any:
    """Under `accelerate launch` every process needs its own GPU (DDP) or no map at all (ZeRO-3/FSDP)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return requested
    if _sharded():
        return None
    import torch

    if not torch.cuda.is_available():  # multi-process on CPU (gloo): everything on the CPU
        return None
    return {"": int(os.environ.get("LOCAL_RANK", "0"))}


def load_base(margs: ModelArguments, trust_remote_code: bool = False):
    """(model, tokenizer) of the frozen base through H1's one loader (`halluguard.loading.load_model`)."""
    if not margs.model_name_or_path:
        raise ValueError("model_name_or_path is required (a hub ID or a local path)")
    from halluguard.loading import ModelSpec, load_model

    sharded = _sharded() and margs.quantization == "nf4"
    spec = ModelSpec(
        model=margs.model_name_or_path, quantization=margs.quantization, dtype=margs.model_dtype,
        # ZeRO-3/FSDP flatten and shard parameters of one dtype: 4-bit weights must be stored in
        # bf16-sized chunks, and the sharding engine (not a device map) places them.
        device_map=None if sharded else _distributed_device_map(margs.device_map),
        quant_storage="bfloat16" if sharded else None,
        trust_remote_code=trust_remote_code, allow_fallback=margs.allow_fallback,
    )
    return load_model(spec)


def _sharded() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and (
        os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
        or os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true")


def is_quantized(model) -> bool:
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
                or getattr(model, "hf_quantizer", None) is not None)


def prepare_tokenizer(tok) -> Any:
    """Pad token set (eos if none) and left padding for generation; training collators pad themselves."""
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def require_chat_template(tok, stage: str) -> None:
    if not getattr(tok, "chat_template", None):
        raise ValueError(f"{stage}: the tokenizer has no chat template; use an instruct model or set "
                         "tokenizer.chat_template before training")


def load_policy(margs: ModelArguments, adapter: str | None = None, trainable: bool = True,
                trust_remote_code: bool = False, gradient_checkpointing: bool = False):
    """(model, tokenizer, peft_config) ready for a TRL trainer.

    - `adapter=None`: the bare base; `peft_config` is a fresh LoRA that the trainer attaches.
    - `adapter=PATH`: the adapter loaded as the trainable "default" adapter of a PeftModel and
      `peft_config=None`. TRL 1.16's DPOTrainer then adds a frozen copy named "ref" and computes the
      reference log-probs with it, so the reference is the adapter's starting policy, not the bare base.
    """
    model, tok = load_base(margs, trust_remote_code)
    prepare_tokenizer(tok)
    if margs.upcast_fp32 and is_quantized(model) and trainable and not _sharded():  # FSDP/ZeRO-3: one dtype
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    # Otherwise nothing to prepare: PEFT freezes the base when it wraps it, and TRL enables input gradients
    # for gradient checkpointing and keeps the LoRA weights of a quantized model in bf16.
    if adapter is None:
        return model, tok, lora_config(margs)
    from peft import PeftModel

    if not Path(adapter, "adapter_config.json").exists():
        raise FileNotFoundError(f"no LoRA adapter at {adapter} (adapter_config.json missing)")
    model = PeftModel.from_pretrained(model, adapter, adapter_name="default", is_trainable=trainable)
    return model, tok, None


def lora_state(model) -> dict[str, Any]:
    """A CPU copy of the trainable LoRA weights of the active adapter (to check they changed)."""
    return {n: p.detach().float().cpu().clone() for n, p in model.named_parameters()
            if "lora_" in n and ".ref." not in n}


# ---------------------------------------------------------------------------------------------------
# Resume and out-of-memory
# ---------------------------------------------------------------------------------------------------
def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest checkpoint-N in output_dir whose trainer_state.json (written last) parses.

    A run killed while saving leaves a checkpoint without it; that one is skipped with a warning
    instead of crashing the resume.
    """
    cks = []
    for p in Path(output_dir).glob("checkpoint-*"):
        tail = p.name.split("-", 1)[1]
        if p.is_dir() and tail.isdigit():
            cks.append((int(tail), p))
    for _, p in sorted(cks, reverse=True):
        try:
            json.loads((p / "trainer_state.json").read_text(encoding="utf-8"))
            return str(p)
        except (OSError, ValueError):
            logger.warning("skipping incomplete checkpoint %s (no readable trainer_state.json: killed while saving?)", p)
    return None


def resolve_checkpoint(output_dir: str, resume_from_checkpoint: str | None, auto_resume: bool) -> str | None:
    """The checkpoint to resume from: an explicit path, 'last', or (auto_resume) the newest complete one."""
    if resume_from_checkpoint and resume_from_checkpoint not in ("last", "auto", "true", "True"):
        if not Path(resume_from_checkpoint).is_dir():
            raise FileNotFoundError(f"resume_from_checkpoint: no checkpoint directory {resume_from_checkpoint}")
        return resume_from_checkpoint
    if (resume_from_checkpoint or auto_resume) and Path(output_dir).is_dir():
        last = last_complete_checkpoint(output_dir)
        if last:
            logger.info("resuming from %s", last)
        return last
    return None


class TrainingOOMError(RuntimeError):
    """Training or generation ran out of memory; the message carries the planner's advice."""


def is_oom(e: BaseException) -> bool:
    import torch

    if isinstance(e, torch.OutOfMemoryError):
        return True
    return isinstance(e, RuntimeError) and ("out of memory" in str(e).lower() or "can't allocate memory" in str(e))


GENERIC_LEVERS = [
    "lower max_length (sequence length) or per_device_train_batch_size (raise gradient_accumulation_steps to keep the batch)",
    "gradient_checkpointing: true",
    "precompute_ref_log_probs: true (stage B / scorer: no reference forward during training)",
    "activation_offloading: true",
    "optim: paged_adamw_8bit",
    "quantization: nf4 if you used int8 or none",
    "a smaller model",
]


def _gpu_gb() -> float | None:
    """Total memory of the first CUDA GPU in GiB, None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory / 1024 ** 3


def oom_advice(stage: str, model: Any, seq: int | None, batch: int | None) -> list[str]:
    """What to change: H7's planner (`halluguard.planner.suggest_for_oom`) when it is installed and a GPU
    size is known, then the generic levers. `model`: a transformers config, alias, path or hub id."""
    out: list[str] = []
    gpu = _gpu_gb()
    try:
        from halluguard.planner import suggest_for_oom
    except ImportError:
        suggest_for_oom = None
        out.append("(memory planner not installed)")
    if suggest_for_oom is not None and gpu is not None and model is not None:
        try:
            out.append("planner: " + suggest_for_oom(model, seq=seq or 2048, gpu_gb=gpu, batch=batch or 1,
                                                     stage="sft" if "SFT" in stage else "dpo"))
        except Exception as e:  # noqa: BLE001 - advice must never hide the OOM itself
            out.append(f"(planner could not estimate this model: {e})")
    elif suggest_for_oom is not None:
        out.append("run `halluguard plan --model MODEL --gpu-gb GB --seq N` for an estimate of each option")
    return out + GENERIC_LEVERS


def oom_message(stage: str, e: BaseException, model: Any, seq: int | None, batch: int | None) -> str:
    first = str(e).splitlines()[0] if str(e) else ""
    lines = [f"{stage}: out of memory ({type(e).__name__}: {first})", "what to change:"]
    return "\n".join(lines + [f"  - {s}" for s in oom_advice(stage, model, seq, batch)])


def train_guarded(trainer, resume: str | None, stage: str, model_id: str | None = None):
    """`trainer.train(resume)`; an OOM becomes TrainingOOMError with the planner's advice."""
    try:
        return trainer.train(resume_from_checkpoint=resume)
    except BaseException as e:
        if not is_oom(e):
            raise
        a = trainer.args
        base = getattr(trainer.model, "get_base_model", lambda: trainer.model)()
        model = getattr(base, "config", None) or model_id
        raise TrainingOOMError(oom_message(stage, e, model, getattr(a, "max_length", None),
                                           a.per_device_train_batch_size)) from e


# ---------------------------------------------------------------------------------------------------
# Metric files and plots
# ---------------------------------------------------------------------------------------------------
PLOT_KEYS = ("loss", "eval_loss", "rewards/accuracies", "rewards/margins", "eval_rewards/accuracies",
             "eval_rewards/margins", "learning_rate")


def _trainer_callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


def make_metrics_callback(output_dir: str):
    """A TrainerCallback that appends every log to output_dir/metrics.jsonl and, at the end, writes
    metrics.csv and the training curves. On resume, rows logged after the checkpoint by the killed run are dropped
    so that the file holds each step once."""
    base = _trainer_callback_base()

    class MetricsFileCallback(base):
        def __init__(self) -> None:
            self.path = Path(output_dir) / "metrics.jsonl"

        def on_train_begin(self, args, state, control, **kw):
            if not state.is_world_process_zero or not self.path.exists():
                return
            keep = [r for r in read_jsonl(self.path) if r.get("step", 0) <= state.global_step]
            write_jsonl(self.path, keep)

        def on_log(self, args, state, control, logs=None, **kw):
            if not state.is_world_process_zero or not logs:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            row = {"step": state.global_step, "epoch": state.epoch, **{k: v for k, v in logs.items()
                                                                       if isinstance(v, (int, float))}}
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

        def on_train_end(self, args, state, control, **kw):
            if state.is_world_process_zero and self.path.exists():
                write_metric_files(output_dir)

    return MetricsFileCallback()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}: row {i} is not JSON: {e}") from e
    return rows


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)


def write_csv(path: str | os.PathLike, rows: Sequence[dict]) -> None:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


def write_metric_files(output_dir: str) -> list[Path]:
    """metrics.csv and the training curves (metrics.png, metrics.svg) from output_dir/metrics.jsonl."""
    from halluguard import plots

    rows = read_jsonl(Path(output_dir) / "metrics.jsonl")
    out = [Path(output_dir) / "metrics.csv"]
    write_csv(out[0], rows)
    panels = []
    for key in PLOT_KEYS:
        pts = [(r["step"], r[key]) for r in rows if key in r and _finite(r[key])]
        if pts:
            panels.append((key, {key: pts}))
    if panels:
        out += plots.save_figure(plots.line_panels(panels, xlabel="step"), Path(output_dir) / "metrics")
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


# ---------------------------------------------------------------------------------------------------
# Generation and completion log-probs (triplets, verdict, scorer calibration)
# ---------------------------------------------------------------------------------------------------
def _render_prompt(tok, messages: list[dict[str, str]]) -> str:
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def prompt_fits(model, tok, prompts: Sequence[list[dict[str, str]]], max_new_tokens: int) -> list[bool]:
    """Whether each chat prompt leaves room for `max_new_tokens` in the model's context."""
    limit = getattr(model.config, "max_position_embeddings", 10 ** 9) - max_new_tokens
    return [len(tok(_render_prompt(tok, p), add_special_tokens=False)["input_ids"]) <= limit for p in prompts]


def generate(model, tok, prompts: Sequence[list[dict[str, str]]], *, num_return_sequences: int = 1,
             do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int = 128,
             batch_size: int = 4, max_prompt_tokens: int | None = None,
             progress: Callable[[int, int], None] | None = None) -> list[list[str]]:
    """Texts generated for each chat prompt (`num_return_sequences` per prompt), batched with left padding.

    A prompt longer than `max_prompt_tokens` (default: the model's context minus max_new_tokens) raises
    ValueError naming its index: it is never cut silently.
    """
    import torch

    limit = max_prompt_tokens or (getattr(model.config, "max_position_embeddings", 10 ** 9) - max_new_tokens)
    texts = [_render_prompt(tok, p) for p in prompts]
    tok.padding_side = "left"
    out: list[list[str]] = []
    model.eval()
    device = next(model.parameters()).device
    for start in range(0, len(texts), batch_size):
        chunk = texts[start:start + batch_size]
        enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        lens = enc["attention_mask"].sum(1).tolist()
        for k, n in enumerate(lens):
            if n > limit:
                raise ValueError(f"prompt {start + k} has {n} tokens, over the limit of {limit}; "
                                 "chunk or shorten the document first")
        enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        gen_kw: dict[str, Any] = {"max_new_tokens": max_new_tokens, "num_return_sequences": num_return_sequences,
                                      "do_sample": do_sample, "pad_token_id": tok.pad_token_id}
        if do_sample:
            gen_kw.update(temperature=temperature, top_p=top_p)
        with torch.no_grad():
            seqs = model.generate(**enc, **gen_kw)
        new = seqs[:, enc["input_ids"].shape[1]:]
        decoded = tok.batch_decode(new, skip_special_tokens=True)
        for k in range(len(chunk)):
            out.append([d.strip() for d in decoded[k * num_return_sequences:(k + 1) * num_return_sequences]])
        if progress:
            progress(min(start + batch_size, len(texts)), len(texts))
    return out


def chat_token_ids(tok, prompt: list[dict[str, str]], completion: str) -> tuple[list[int], list[int]]:
    """(prompt_ids, completion_ids) split like TRL 1.16's DPOTrainer: render prompt (with generation
    prompt) and prompt + assistant turn; the completion starts where the two id lists diverge."""
    p = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    f = tok.apply_chat_template(list(prompt) + [{"role": "assistant", "content": completion}], tokenize=False)
    pi = tok(p, add_special_tokens=False)["input_ids"]
    fi = tok(f, add_special_tokens=False)["input_ids"]
    n = 0
    for a, b in zip(pi, fi):
        if a != b:
            break
        n += 1
    return pi[:n], fi[n:]


def sequence_logps(model, pairs: Sequence[tuple[list[int], list[int]]], batch_size: int = 4) -> list[float]:
    """Sum of log p(completion ids | prompt ids) for each (prompt_ids, completion_ids), under the model's
    current adapter state (wrap in `model.disable_adapter()` for the base)."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    scores: list[float] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        ids = [list(p) + list(c) for p, c in chunk]
        n = max(len(x) for x in ids)
        input_ids = torch.tensor([x + [0] * (n - len(x)) for x in ids], device=device)
        attn = torch.tensor([[1] * len(x) + [0] * (n - len(x)) for x in ids], device=device)
        cmask = torch.tensor([[0] * len(p) + [1] * len(c) + [0] * (n - len(p) - len(c)) for p, c in chunk],
                             device=device)
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=attn).logits.float()
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        scores += (logp * cmask[:, 1:]).sum(-1).tolist()
    if was_training:
        model.train()
    return scores


def completion_logprobs(model, tok, prompts: Sequence[list[dict[str, str]]], completions: Sequence[str],
                        batch_size: int = 4) -> list[float]:
    """Sum of log p(completion | chat prompt) per pair under the active adapter(s), tokenized as in DPO."""
    if len(prompts) != len(completions):
        raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions")
    return sequence_logps(model, [chat_token_ids(tok, p, c) for p, c in zip(prompts, completions)], batch_size)


# ---------------------------------------------------------------------------------------------------
# DPO trainer (H7 owns the real builder; this wraps it and falls back to stock TRL until it lands)
# ---------------------------------------------------------------------------------------------------
def _from_stage_b(name: str):
    """An attribute of H7's `halluguard.train.dpo`, or None when that module (or the name) is not there.
    An ImportError raised *inside* the module is a real bug and propagates."""
    import importlib

    try:
        mod = importlib.import_module("halluguard.train.dpo")
    except ModuleNotFoundError as e:
        if e.name != "halluguard.train.dpo":
            raise
        return None
    return getattr(mod, name, None)


def dpo_config_class():
    """H7's HalluguardDPOConfig (a DPOConfig with memory-profile fields) when present, else TRL's DPOConfig."""
    cls = _from_stage_b("HalluguardDPOConfig")
    if cls is None:
        from trl import DPOConfig

        return DPOConfig
    return cls


def make_dpo_trainer(model, tokenizer, train_dataset, eval_dataset, config, peft_config=None):
    """`halluguard.train.dpo.build_dpo_trainer(...)` (H7) when present, else a stock TRL DPOTrainer."""
    build_dpo_trainer = _from_stage_b("build_dpo_trainer")
    if build_dpo_trainer is not None:
        return build_dpo_trainer(model, tokenizer, train_dataset, eval_dataset, config, peft_config=peft_config)
    from trl import DPOTrainer

    return DPOTrainer(model=model, args=config, train_dataset=train_dataset, eval_dataset=eval_dataset,
                      processing_class=tokenizer, peft_config=peft_config)


# ---------------------------------------------------------------------------------------------------
# Script entry
# ---------------------------------------------------------------------------------------------------
def script_main(fn: Callable[[list[str] | None], Any], argv: list[str] | None = None) -> int:
    """Run a stage's `main(argv)` for a script: print its summary as JSON; a user error is one line
    (exit 2), an out-of-memory error prints the planner's advice (exit 3)."""
    import sys

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        out = fn(argv if argv is not None else sys.argv[1:])
    except TrainingOOMError as e:
        print(str(e), file=sys.stderr)
        return 3
    except MemoryError as e:
        print(str(e), file=sys.stderr)
        return 3
    except (ValueError, FileNotFoundError) as e:
        if os.environ.get("HALLUGUARD_DEBUG"):
            raise
        print(f"error: {e}  (HALLUGUARD_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
    if isinstance(out, dict):
        out = {k: v for k, v in out.items() if k != "args"}
    if int(os.environ.get("RANK", "0")) == 0:  # one summary, not one per process
        print(json.dumps(out, indent=2, default=str))
    return 0
