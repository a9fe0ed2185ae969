"""GPU memory planner: peak memory of each training/inference stage from the model config alone.

    halluguard plan --model llama3-8b --gpu-gb 12 --seq 2048
    halluguard plan --model /path/to/config.json --gpu-gb 6 --seq 4096 --json

    from halluguard.planner import plan, suggest_for_oom
    report = plan("llama3-8b", gpu_gb=12, seq=2048)      # dict: stages, options, recommendation
    print(suggest_for_oom("llama3-8b", seq=2048, gpu_gb=6, stage="dpo"))

`--model` takes a shipped alias (`llama3-8b`, `qwen2.5-7b`, `smollm3-3b`, `qwen2.5-3b`, ..., or the hub id of
one, see `halluguard/resources/model_configs/`), a local config.json or model directory, or a hub id whose
config is already in the local Hugging Face cache (nothing is downloaded). No weights are read.

The estimate adds up weights (NF4 with double quantization, int8 or bf16; the embedding table and LM
head stay bf16), LoRA parameters, gradients and optimizer state, the checkpointed layer inputs, the
working set of one layer's recomputation and backward, TRL's fused log-prob head, and the allocator's
reserve. Its constants were fitted to peaks measured on an H100 (docs/memory.md lists the comparison);
estimates are "peak reserved" memory as `torch.cuda.max_memory_reserved()` reports it, without the
~0.5 GiB CUDA context that `nvidia-smi` also shows.

Only the standard library is imported at module top (the CLI's `--help` stays fast).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GIB = 1024**3
_RESOURCES = Path(__file__).resolve().parent / "resources" / "model_configs"

# Model aliases shipped as small config JSONs (architecture numbers only, no weights).
ALIASES = {
    "llama3-8b": "llama3-8b.json",
    "llama-3-8b": "llama3-8b.json",
    "meta-llama/meta-llama-3-8b": "llama3-8b.json",
    "meta-llama/meta-llama-3-8b-instruct": "llama3-8b.json",
    "meta-llama/llama-3.1-8b": "llama3-8b.json",
    "meta-llama/llama-3.1-8b-instruct": "llama3-8b.json",
    "qwen2.5-7b": "qwen2.5-7b.json",
    "qwen/qwen2.5-7b": "qwen2.5-7b.json",
    "qwen/qwen2.5-7b-instruct": "qwen2.5-7b.json",
    "qwen2.5-3b": "qwen2.5-3b.json",
    "qwen/qwen2.5-3b": "qwen2.5-3b.json",
    "qwen/qwen2.5-3b-instruct": "qwen2.5-3b.json",
    "mistral-7b": "mistral-7b.json",
    "mistralai/mistral-7b-v0.3": "mistral-7b.json",
    "mistralai/mistral-7b-instruct-v0.3": "mistral-7b.json",
    "llama3.2-3b": "llama3.2-3b.json",
    "meta-llama/llama-3.2-3b": "llama3.2-3b.json",
    "meta-llama/llama-3.2-3b-instruct": "llama3.2-3b.json",
    "qwen/qwen2.5-7b-instruct-awq": "qwen2.5-7b.json",  # same architecture; the planner counts its own 4-bit
    "smollm3-3b": "smollm3-3b.json",
    "huggingfacetb/smollm3-3b": "smollm3-3b.json",
    "huggingfacetb/smollm3-3b-base": "smollm3-3b.json",
    "qwen3-4b": "qwen3-4b.json",
    "qwen/qwen3-4b": "qwen3-4b.json",
    "qwen/qwen3-4b-base": "qwen3-4b.json",
    "phi3.5-mini": "phi3.5-mini.json",
    "microsoft/phi-3.5-mini-instruct": "phi3.5-mini.json",
}
# The 3B verifier / DPO scorer base (halluguard.loading.DEFAULT_VERIFIER_BASE; docs/models.md says why).
DEFAULT_SCORER = "smollm3-3b"
SMALLER_MODEL = DEFAULT_SCORER

# ---------------------------------------------------------------------------------------------------
# Calibration. Bytes are exact where the layout is known; the activation multipliers and the allocator
# reserve were fitted to the H100 measurements in docs/memory.md (8B-class and 3B-class, seq 1024-4096).
CAL: dict[str, float] = {
    # NF4 with double quantization: 4 bits + one 8-bit absmax per 64 weights + one fp32 per 256 absmax.
    "nf4_bytes": 0.5 + 1 / 64 + 4 / (64 * 256),
    "int8_bytes": 1.0 + 4 / 4096,  # LLM.int8: int8 weights + one fp32 scale per row (~4096 wide)
    # One checkpointed decoder layer input per token: H bf16 values (plus rotary tables, negligible).
    "ckpt_h": 1.0,
    # Working set of one layer during recomputation + backward, per token, in bf16 values: a*H + b*I.
    "work_h": 8.1,
    "work_i": 5.44,
    # Same for a forward without gradients (the reference pass, inference prefill).
    "nograd_h": 3.0,
    "nograd_i": 3.0,
    # Full (unchunked) logits path of a hand-written loop: bf16 logits + fp32 copy + log-softmax + grad.
    "full_logits_bytes": 11.4,
    # Fixed reserve beyond the above (GiB); the least-squares fit put it at zero (cuBLAS workspaces and
    # small tensors are inside the allocator reserve below).
    "fixed_gib": 0.0,
    # Reserved / allocated: block rounding and fragmentation of the caching allocator.
    "frag": 1.055,
    "frag_expandable": 1.05,
    # Activation offloading keeps a stash of a few layer inputs on the GPU while copies run: TRL's
    # default stash of 5 tensors measured as 6.5 layer inputs; a stash of n as n + stash_extra.
    "offload_stash_layers": 6.5,
    "offload_stash_extra": 1.5,
    # Shared-prompt rows with a dense mask: the bool [L, L] mask plus the bf16 copy SDPA makes of it.
    "mask_bytes": 3.0,
    # Tiled MLP: the working set keeps the H-sized tensors of the whole sequence and the I-sized ones of
    # one tile. benchmarks/layer_memory_cpu.py (CPU, bf16 Llama layers with bf16 LoRA, checkpointing,
    # 512-token tiles over 4k-8k tokens; results/layer_memory_cpu.json): tiling saves 12.1-12.7 of the
    # layer's ~27 H-sized values per token, so the H part grows from 8.1 to ~13.5 (the tiled backward's
    # gradient buffers, the tiles' outputs). On the GPU (device runs 6-7, Llama-3.1-8B, DPO and SFT
    # `long` at 8k-64k tokens) the reserved peak grows by ~5 H-sized values per token more than that:
    # the caching allocator keeps the full-sequence buffers of the tiled backward alongside the
    # offload stash. 13.5 planned 64k DPO / SFT 16 % / 15 % low; 18.5 puts every row within 11 %.
    "work_h_tiled": 18.5,
    # Segmented attention: per packed token, the [prompt, rejected] copies of q, k, v and the outputs it
    # concatenates: +2.9-3.8 H over a plain causal row (same CPU measurement).
    "segmented_h": 3.1,
}
TRL_TOKEN_CHUNK = 4096  # trl.kernels.chunked_logprob.TOKEN_CHUNK_SIZE
TRL_VOCAB_CHUNK = 32768  # trl.trainer.utils._CHUNKED_LOGPROB_CHUNK_SIZE


# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelShape:
    """Architecture numbers the estimate needs. Build with `ModelShape.from_config(dict_or_config)`."""

    name: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool = False

    @classmethod
    def from_config(cls, cfg: Any, name: str | None = None) -> ModelShape:
        if not isinstance(cfg, dict):
            cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(vars(cfg))
        if "text_config" in cfg and isinstance(cfg["text_config"], dict) and "hidden_size" not in cfg:
            cfg = {**cfg["text_config"], "tie_word_embeddings": cfg.get("tie_word_embeddings",
                                                                        cfg["text_config"].get("tie_word_embeddings"))}
        missing = [k for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
                   if cfg.get(k) is None]
        if missing:
            raise ValueError(f"model config lacks {', '.join(missing)}: not a decoder-only causal LM config")
        hidden = int(cfg["hidden_size"])
        heads = int(cfg["num_attention_heads"])
        head_dim = int(cfg.get("head_dim") or hidden // heads)
        return cls(
            name=name or str(cfg.get("_name_or_path") or cfg.get("model_type") or "model"),
            hidden=hidden,
            intermediate=int(cfg.get("intermediate_size") or 4 * hidden),
            layers=int(cfg["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=head_dim,
            vocab=int(cfg["vocab_size"]),
            tied=bool(cfg.get("tie_word_embeddings", False)),
        )

    # Linear layers of one decoder block: (in, out) for q, k, v, o, gate, up, down.
    def linear_shapes(self) -> list[tuple[int, int]]:
        h, i, q, kv = self.hidden, self.intermediate, self.heads * self.head_dim, self.kv_heads * self.head_dim
        return [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]

    @property
    def linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.linear_shapes())

    @property
    def embed_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def total_params(self) -> int:
        return self.linear_params + self.embed_params * (1 if self.tied else 2)

    def lora_params(self, r: int) -> int:
        return self.layers * sum(r * (a + b) for a, b in self.linear_shapes())

    def largest_linear(self) -> int:
        return max(a * b for a, b in self.linear_shapes())


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None


def short_aliases() -> list[str]:
    """The shipped aliases without an owner (`llama3-8b`, ...); each model's hub ids are accepted too."""
    return sorted(k for k in ALIASES if "/" not in k)


def load_shape(model: str) -> ModelShape:
    """A ModelShape from an alias, a config.json / model directory, or a hub id in the local cache."""
    if not model or not str(model).strip():
        raise ValueError("--model is empty: give an alias (llama3-8b, qwen2.5-7b, smollm3-3b), a config.json "
                         "path, a model directory, or a cached hub id")
    key = str(model).strip().lower()
    if key in ALIASES:
        cfg = _read_json(_RESOURCES / ALIASES[key])
        return ModelShape.from_config(cfg, name=cfg.get("_name_or_path", key))
    p = Path(os.path.expanduser(str(model)))
    if p.is_dir():
        if not (p / "config.json").exists():
            raise FileNotFoundError(f"{p} has no config.json")
        return ModelShape.from_config(_read_json(p / "config.json"), name=p.name)
    if p.is_file():
        return ModelShape.from_config(_read_json(p), name=p.parent.name if p.name == "config.json" else p.stem)
    if "/" in key and not p.exists() and not str(model).startswith((".", "/", "~")):
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(str(model), "config.json")
        except Exception:  # noqa: BLE001 - hub library missing or cache unreadable: treat as not cached
            cached = None
        if isinstance(cached, str) and os.path.exists(cached):
            return ModelShape.from_config(_read_json(Path(cached)), name=str(model))
        raise FileNotFoundError(f"{model}: not a shipped alias ({', '.join(short_aliases())}) "
                                "and its config.json is not in the local Hugging Face cache; pass a path to config.json")
    raise FileNotFoundError(f"{model}: no such file or directory, and not a known alias")


# ---------------------------------------------------------------------------------------------------
@dataclass
class StageBSettings:
    """How a DPO (or SFT) step is run. The defaults are stock TRL 1.16 with a 4-bit base."""

    quantization: str = "nf4"  # nf4 | int8 | none (bf16)
    lora_r: int = 16
    two_models: bool = False  # a separate reference model (the seed's way)
    cached_reference: bool = False  # reference log-probs precomputed
    chunked_logprobs: bool = True  # TRL 1.16's fused head; False = full [seq, vocab] fp32 logits
    upcast_fp32: bool = False  # prepare_model_for_kbit_training: embeddings + head in fp32
    gradient_checkpointing: bool = True
    activation_offloading: bool = False
    embeddings_on_cpu: bool = False
    sequences_per_forward: int | None = None
    share_prompt: bool = False  # one packed sequence [prompt, chosen, rejected] per pair
    logp_chunk_size: int | None = None  # vocabulary tile of the fused log-prob head (None: TRL's 32768)
    optimizer: str = "adamw"  # adamw | adamw_8bit
    expandable_segments: bool = False
    mlp_tile_tokens: int | None = None  # decoder MLPs run this many tokens at a time (tiled MLP)
    segmented_attention: bool = False  # shared-prompt rows attended without an [L, L] mask
    offload_stash_size: int | None = None  # activations kept on the GPU while offloading (None: TRL's 5)
    gpus: int = 1  # data-parallel GPUs; the estimate is per GPU (see with_gpus)
    strategy: str = "ddp"  # ddp | zero3 (used when gpus > 1)

    @classmethod
    def profile(cls, name: str, **overrides) -> StageBSettings:
        if name == "seed":
            base = cls(two_models=True, chunked_logprobs=False, upcast_fp32=True)
        elif name in ("stock", "fit", "fast", "long"):
            from_profile = _profile_settings(name)
            base = cls(**from_profile)
        else:
            raise ValueError(f"unknown profile {name!r}: use seed, stock, fit, long or fast")
        return dataclasses.replace(base, **overrides)

    @classmethod
    def from_dpo_config(cls, config: Any, lora_r: int = 16, quantization: str = "nf4") -> StageBSettings:
        optim = getattr(config, "optim", "adamw")
        optim = str(getattr(optim, "value", optim)).lower()
        return cls(
            quantization=quantization, lora_r=lora_r,
            cached_reference=bool(getattr(config, "precompute_ref_log_probs", False)),
            gradient_checkpointing=bool(getattr(config, "gradient_checkpointing", True)),
            activation_offloading=bool(getattr(config, "activation_offloading", False)),
            embeddings_on_cpu=bool(getattr(config, "embeddings_on_cpu", False)),
            sequences_per_forward=getattr(config, "sequences_per_forward", None),
            share_prompt=bool(getattr(config, "share_prompt", False)),
            logp_chunk_size=getattr(config, "logp_chunk_size", None),
            optimizer="adamw_8bit" if "8bit" in optim else "adamw",
            expandable_segments=bool(getattr(config, "expandable_segments", False)),
            mlp_tile_tokens=getattr(config, "mlp_tile_tokens", None),
            segmented_attention=bool(getattr(config, "segmented_attention", False)),
            offload_stash_size=getattr(config, "offload_stash_size", None),
        )


def _profile_settings(name: str) -> dict:
    # Mirrors halluguard.train.dpo.PROFILE_SETTINGS without importing torch/trl.
    if name == "stock":
        return {}
    fit = {"activation_offloading": True, "embeddings_on_cpu": True, "sequences_per_forward": 1, "share_prompt": True,
           "expandable_segments": True, "optimizer": "adamw_8bit", "logp_chunk_size": 8192}
    if name == "fit":
        return fit
    if name == "long":  # also halluguard.train.sft.SFT_PROFILE_SETTINGS["long"] (sharing is DPO-only)
        return {**fit, "segmented_attention": True, "mlp_tile_tokens": 2048, "offload_stash_size": 2}
    return {"cached_reference": True, "embeddings_on_cpu": True, "share_prompt": True, "expandable_segments": True}


@dataclass
class Estimate:
    """Peak reserved GiB of one configuration and where it goes (GiB per component)."""

    label: str
    peak_gib: float
    parts: dict[str, float] = field(default_factory=dict)
    pairs: int = 1

    def fits(self, gpu_gb: float) -> bool:
        return self.peak_gib <= gpu_gb

    def to_dict(self) -> dict:
        return {"label": self.label, "peak_gib": round(self.peak_gib, 2), "pairs": self.pairs,
                "parts": {k: round(v, 3) for k, v in self.parts.items()}}


def _weight_bytes(shape: ModelShape, quantization: str, upcast_fp32: bool, embeddings_on_cpu: bool) -> dict:
    per = {"nf4": CAL["nf4_bytes"], "int8": CAL["int8_bytes"], "none": 2.0, "bf16": 2.0}.get(quantization)
    if per is None:
        raise ValueError(f"quantization must be nf4, int8 or none, got {quantization!r}")
    emb_b = 4.0 if upcast_fp32 else 2.0
    parts = {"linear_weights": shape.linear_params * per}
    if shape.tied:
        parts["embed_and_head"] = shape.embed_params * emb_b
    else:
        parts["embed"] = 0.0 if embeddings_on_cpu else shape.embed_params * emb_b
        parts["lm_head"] = shape.embed_params * emb_b
    return parts


def _layer_work(shape: ModelShape, tokens: int, grad: bool, mlp_tile: int | None = None) -> float:
    a, b = (CAL["work_h"], CAL["work_i"]) if grad else (CAL["nograd_h"], CAL["nograd_i"])
    dequant = shape.largest_linear() * 2  # bf16 copy of the dequantized weight
    if mlp_tile and tokens > mlp_tile:  # tiled MLP: intermediates of one tile only
        a = CAL["work_h_tiled"] if grad else a
        return (tokens * a * shape.hidden + mlp_tile * b * shape.intermediate) * 2 + dequant
    return tokens * (a * shape.hidden + b * shape.intermediate) * 2 + dequant


def _head_bytes(shape: ModelShape, completion_tokens: int, grad: bool, vocab_chunk: int | None = None) -> float:
    tile = min(completion_tokens, TRL_TOKEN_CHUNK) * min(shape.vocab, vocab_chunk or TRL_VOCAB_CHUNK) * 2
    hidden = completion_tokens * shape.hidden * (2 + (4 if grad else 0))  # saved input, fp32 grad accumulator
    return tile * (2 if grad else 1) + hidden


# ---------------------------------------------------------------------------------------------------
# More than one GPU (data parallel). `pairs` stays per GPU; every estimate is the peak of ONE GPU.
STRATEGIES = ("ddp", "zero3")


def with_gpus(settings: StageBSettings, gpus: int, strategy: str = "ddp") -> StageBSettings:
    """`settings` run on `gpus` GPUs under `strategy` (ddp: training/accelerate/ddp.yaml, zero3: zero3.yaml)."""
    if gpus < 1:
        raise ValueError(f"--gpus must be >= 1, got {gpus}")
    if strategy not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if gpus > 1 and strategy == "zero3" and settings.quantization == "int8":
        raise ValueError("ZeRO-3 cannot shard 8-bit (LLM.int8) weights: use nf4 (stored as bf16) or none")
    return dataclasses.replace(settings, gpus=gpus, strategy=strategy)


def _per_gpu_parts(shape: ModelShape, s: StageBSettings, parts: dict, lora: int, lora_b: int) -> None:
    """Turn a one-GPU estimate (`parts`, bytes, changed in place) into one GPU's share on `s.gpus` GPUs.

    DDP: each GPU holds the whole one-GPU step, plus DDP's all-reduce buckets, a copy of every trainable
    gradient (the Trainer leaves gradient_as_bucket_view off). ZeRO-3 (zero3_ds.json): every parameter
    is split over the GPUs; the 4-bit values (stored as bf16) and the bf16 embeddings/head shrink to 1/N,
    while the NF4 scales (bitsandbytes' quant state, not a parameter) stay whole; LoRA weights, their
    gradients and the optimizer's fp32 master copy + states (DeepSpeed's mixed precision) are split too.
    Added back: the layers gathered at a time (the current one and one prefetched) or the gathered LM
    head, whichever is larger, and the reduce bucket (hidden^2 bf16 elements, "auto" in zero3_ds.json).
    NCCL's own buffers are outside PyTorch's allocator, so `max_memory_reserved` (what this estimates)
    does not see them; nvidia-smi shows a few hundred MiB more per GPU."""
    n = s.gpus
    if n <= 1:
        return
    if s.strategy == "ddp":
        parts["ddp_grad_buckets"] = lora * lora_b
        return
    layer_params = shape.linear_params // shape.layers
    if s.quantization == "nf4":
        packed = 0.5  # bytes per weight of the 4-bit values; the rest of nf4_bytes is the quant state
        parts["linear_weights"] = shape.linear_params * (packed / n + CAL["nf4_bytes"] - packed)
    else:
        packed = 2.0
        parts["linear_weights"] = shape.linear_params * packed / n
    head = 0.0
    for key in ("embed", "lm_head", "embed_and_head"):
        if parts.get(key):
            head = max(head, parts[key])
            parts[key] /= n
    opt_b = 2 if s.optimizer == "adamw_8bit" else 8
    parts["lora_params_grads"] = lora * lora_b * 2 / n
    parts["optimizer"] = lora * (4 + opt_b) / n
    parts["zero3_gathered"] = max(2 * layer_params * packed, head)
    parts["zero3_reduce_bucket"] = shape.hidden**2 * 2


def estimate_train_step(shape: ModelShape, seq: int, pairs: int = 1, settings: StageBSettings | None = None,
                        completion_frac: float = 0.25, preference: bool = True, label: str = "") -> Estimate:
    """Peak of one training step. preference=True: DPO (2 sequences per pair); False: SFT (1 per example)."""
    s = settings or StageBSettings()
    if seq < 2 or pairs < 1:
        raise ValueError(f"seq must be >= 2 and batch >= 1 (got seq={seq}, batch={pairs})")
    emb_cpu = s.embeddings_on_cpu and not shape.tied
    parts = {k: v for k, v in _weight_bytes(shape, s.quantization, s.upcast_fp32, emb_cpu).items()}
    if preference and s.two_models and not s.cached_reference:
        ref = _weight_bytes(shape, s.quantization, False, False)
        parts["reference_model"] = sum(ref.values())
    lora = shape.lora_params(s.lora_r)
    # TRL keeps LoRA in bf16 on quantized bases; PEFT alone (the seed's loop) upcasts it to fp32.
    lora_b = 2 if (s.quantization != "none" and not s.upcast_fp32) else 4
    parts["lora_params_grads"] = lora * lora_b * 2
    parts["optimizer"] = lora * (2 if s.optimizer == "adamw_8bit" else 2 * lora_b)

    completion = max(1, int(seq * completion_frac))
    if preference and s.share_prompt:
        # One packed row per pair: prompt once, then chosen and rejected completions.
        row = seq + completion
        fwd_rows = min(pairs, max(1, s.sequences_per_forward // 2) if s.sequences_per_forward else pairs)
        tokens, fwd_tokens = pairs * row, fwd_rows * row
        fwd_completion = fwd_rows * 2 * completion
        # bool [rows, 1, L, L] + SDPA's bf16 copy; none with segmented attention
        parts["attention_mask"] = 0.0 if s.segmented_attention else fwd_rows * row * row * CAL["mask_bytes"]
    else:
        n_seq = pairs * (2 if preference else 1)
        per_fwd_seqs = min(n_seq, s.sequences_per_forward or n_seq)
        tokens, fwd_tokens = n_seq * seq, per_fwd_seqs * seq
        fwd_completion = per_fwd_seqs * completion
    h = shape.hidden
    if s.gradient_checkpointing:
        ckpt = shape.layers * tokens * h * 2 * CAL["ckpt_h"]
        if s.activation_offloading:
            stash = (CAL["offload_stash_layers"] if s.offload_stash_size is None
                     else s.offload_stash_size + CAL["offload_stash_extra"])
            ckpt = stash * fwd_tokens * h * 2
        work = _layer_work(shape, fwd_tokens, grad=True, mlp_tile=s.mlp_tile_tokens)
        if preference and s.share_prompt and s.segmented_attention:
            work += fwd_tokens * CAL["segmented_h"] * h * 2
    else:
        ckpt = 0.0
        work = shape.layers * _layer_work(shape, fwd_tokens, grad=True) * 0.5 + _layer_work(shape, fwd_tokens, True)
        if s.activation_offloading:
            work = _layer_work(shape, fwd_tokens, grad=True) * (1 + CAL["offload_stash_layers"] / 2)
    parts["checkpoints"] = ckpt
    if s.chunked_logprobs:
        parts["logprob_head"] = _head_bytes(shape, fwd_completion, grad=True, vocab_chunk=s.logp_chunk_size)
    else:
        parts["logprob_head"] = fwd_tokens * shape.vocab * CAL["full_logits_bytes"]
    ref_work = (_layer_work(shape, fwd_tokens, grad=False, mlp_tile=s.mlp_tile_tokens)
                if (preference and not s.cached_reference) else 0.0)
    parts["layer_working_set"] = max(work, ref_work)
    _per_gpu_parts(shape, s, parts, lora, lora_b)
    parts["fixed"] = CAL["fixed_gib"] * GIB
    total = sum(parts.values()) * (CAL["frag_expandable"] if s.expandable_segments else CAL["frag"])
    out = {k: v / GIB for k, v in parts.items()}
    out["allocator_reserve"] = total / GIB - sum(out.values())
    return Estimate(label=label, peak_gib=total / GIB, parts=out, pairs=pairs)


def estimate_inference(shape: ModelShape, seq: int, batch: int = 1, quantization: str = "nf4",
                       new_tokens: int = 256, label: str = "") -> Estimate:
    """Peak of batched generation: weights + KV cache (prompt + new tokens) + prefill working set."""
    parts = dict(_weight_bytes(shape, quantization, False, False))
    kv = batch * (seq + new_tokens) * shape.layers * 2 * shape.kv_heads * shape.head_dim * 2
    parts["kv_cache"] = kv
    parts["prefill_working_set"] = _layer_work(shape, batch * seq, grad=False)
    parts["logits"] = batch * shape.vocab * 4 * 2
    parts["fixed"] = CAL["fixed_gib"] * GIB
    total = sum(parts.values()) * CAL["frag"]
    out = {k: v / GIB for k, v in parts.items()}
    out["allocator_reserve"] = total / GIB - sum(out.values())
    return Estimate(label=label, peak_gib=total / GIB, parts=out, pairs=batch)


def max_pairs_per_step(shape: ModelShape, seq: int, gpu_gb: float, settings: StageBSettings | None = None,
                       limit: int = 64, headroom_gb: float = 0.5) -> int:
    """Largest micro-batch (pairs) whose estimate stays `headroom_gb` under `gpu_gb` (at least 1)."""
    best = 1
    for k in range(1, limit + 1):
        if estimate_train_step(shape, seq, k, settings).peak_gib <= gpu_gb - headroom_gb:
            best = k
        else:
            break
    return best


def max_seq_that_fits(shape: ModelShape, gpu_gb: float, pairs: int, settings: StageBSettings,
                      preference: bool = True, lo: int = 128, hi: int = 131072) -> int | None:
    if estimate_train_step(shape, lo, pairs, settings, preference=preference).peak_gib > gpu_gb:
        return None
    while hi - lo > 64:
        mid = (lo + hi) // 2
        if estimate_train_step(shape, mid, pairs, settings, preference=preference).peak_gib <= gpu_gb:
            lo = mid
        else:
            hi = mid
    return lo


# ---------------------------------------------------------------------------------------------------
def _stage_b_options(shape: ModelShape, seq: int, batch: int, gpu_gb: float, base_name: str,
                     gpus: int = 1, strategy: str = "ddp") -> list[dict]:
    """Each lever applied alone to `base_name`'s settings, with its computed peak (per GPU)."""
    base = StageBSettings.profile(base_name, gpus=gpus, strategy=strategy)
    base_est = estimate_train_step(shape, seq, batch, base)
    rows = []

    def add(option: str, est: Estimate, note: str = ""):
        rows.append({"option": option, "peak_gib": round(est.peak_gib, 2),
                     "saves_gib": round(base_est.peak_gib - est.peak_gib, 2), "fits": est.fits(gpu_gb),
                     "note": note})

    for new_seq in sorted({seq // 2, seq // 4} - {0}, reverse=True):
        if new_seq >= 128:
            add(f"seq {new_seq}", estimate_train_step(shape, new_seq, batch, base))
    if batch > 1:
        add("batch 1 (gradient accumulation keeps the effective batch)", estimate_train_step(shape, seq, 1, base))
    levers = [
        ("chunked log-probs on completion tokens", {"chunked_logprobs": True, "upcast_fp32": False}),
        ("cached reference log-probs", {"cached_reference": True}),
        ("one model, adapter disabled as reference", {"two_models": False}),
        ("8-bit base instead of 4-bit", {"quantization": "int8"}),
        ("embeddings on CPU", {"embeddings_on_cpu": True}),
        ("activation offloading", {"activation_offloading": True}),
        ("one sequence per forward", {"sequences_per_forward": 1}),
        ("shared prompt (prompt computed once per pair)", {"share_prompt": True}),
        ("8-bit optimizer", {"optimizer": "adamw_8bit"}),
        ("expandable segments", {"expandable_segments": True}),
        ("tiled MLP (mlp_tile_tokens=2048)", {"mlp_tile_tokens": 2048}),
        ("shared prompt with segmented attention (no [L, L] mask)", {"share_prompt": True, "segmented_attention": True}),
        ("memory_profile: long (all long-document levers)", dataclasses.asdict(StageBSettings.profile(
            "long", lora_r=base.lora_r, quantization=base.quantization))),
    ]
    for option, change in levers:
        changed = dataclasses.replace(base, **change)
        if changed == base:
            continue
        note = "tied embeddings: stays on GPU" if change.get("embeddings_on_cpu") and shape.tied else ""
        add(option, estimate_train_step(shape, seq, batch, changed), note)
    try:
        small = load_shape(SMALLER_MODEL)
        if small.total_params < shape.total_params * 0.8:
            add(f"smaller model ({small.name})", estimate_train_step(small, seq, batch, base))
    except (FileNotFoundError, ValueError):
        pass
    longest = max_seq_that_fits(shape, gpu_gb, batch, base)
    rows.append({"option": "longest seq that fits", "peak_gib": None, "saves_gib": None,
                 "fits": longest is not None, "note": f"seq {longest}" if longest else "none"})
    return rows


def plan(model: str | ModelShape, gpu_gb: float = 12.0, seq: int = 2048, batch: int = 1, lora_r: int = 16,
         scorer_model: str = DEFAULT_SCORER, baseline: str = "stock", gpus: int = 1, strategy: str = "ddp") -> dict:
    """Estimate every stage's peak for `model` and what to change to fit `gpu_gb`. Returns a dict
    (the CLI prints it as a table or JSON). With `gpus` > 1 every training estimate is per GPU under
    `strategy` (ddp | zero3) and `batch` is per GPU."""
    if gpu_gb <= 0:
        raise ValueError(f"--gpu-gb must be > 0, got {gpu_gb}")
    if seq < 128:
        raise ValueError(f"--seq must be >= 128, got {seq}")
    if batch < 1:
        raise ValueError(f"--batch must be >= 1, got {batch}")
    if lora_r < 1:
        raise ValueError(f"--lora-r must be >= 1, got {lora_r}")
    shape = model if isinstance(model, ModelShape) else load_shape(model)
    with_gpus(StageBSettings(), gpus, strategy)  # checks --gpus / --strategy
    r = {"lora_r": lora_r, "gpus": gpus, "strategy": strategy}
    stages = []

    def row(stage, est: Estimate, how=""):
        stages.append({"stage": stage, "how": how, "peak_gib": round(est.peak_gib, 2), "fits": est.fits(gpu_gb),
                       "pairs": est.pairs, "parts": {k: round(v, 3) for k, v in est.parts.items()}})

    row("A: QLoRA SFT", estimate_train_step(shape, seq, batch, StageBSettings(**r), preference=False),
        "4-bit base, LoRA all-linear, checkpointing, fused head")
    row("A: SFT, halluguard long", estimate_train_step(shape, seq, batch, StageBSettings.profile("long", **r),
                                                       preference=False),
        "memory_profile: long (HalluguardSFTConfig): offloading, embeddings on CPU, tiled MLP, 8-bit Adam")
    row("B: DPO, two 4-bit models (seed)", estimate_train_step(shape, seq, batch, StageBSettings.profile("seed", **r)),
        "policy + separate reference, full logits, fp32 embeddings/head")
    row("B: DPO, stock TRL 1.16", estimate_train_step(shape, seq, batch, StageBSettings.profile("stock", **r)),
        "adapter disabled as reference, fused head")
    row("B: DPO, halluguard fit", estimate_train_step(shape, seq, batch, StageBSettings.profile("fit", **r)),
        "offloaded activations, embeddings on CPU, shared prompt, 8-bit Adam")
    row("B: DPO, halluguard long", estimate_train_step(shape, seq, batch, StageBSettings.profile("long", **r)),
        "fit + tiled MLP + segmented attention (no [L, L] mask): documents of 8k-64k tokens")
    fast = StageBSettings.profile("fast", **r)
    k = max_pairs_per_step(shape, seq, gpu_gb, fast)
    row("B: DPO, halluguard fast", estimate_train_step(shape, seq, max(k, batch) if k >= batch else k, fast),
        f"cached reference, shared prompt, embeddings on CPU, {k} pair(s)/step sized to {gpu_gb:g} GiB")
    try:
        scorer = load_shape(scorer_model)
        row(f"scorer: DPO of {scorer.name} (fit)",
            estimate_train_step(scorer, seq, batch, StageBSettings.profile("fit", **r)), "halluguard fit profile")
    except (FileNotFoundError, ValueError) as e:
        stages.append({"stage": "scorer", "how": str(e), "peak_gib": None, "fits": False})
    row("inference: 4-bit generation", estimate_inference(shape, seq, batch), f"batch {batch}, prompt {seq} + 256 new")
    options = _stage_b_options(shape, seq, batch, gpu_gb, baseline, gpus, strategy)
    fitting = [s for s in stages if s["stage"].startswith("B:") and s["fits"]]
    if fitting:
        # fast when it fits; else the smallest peak, but long only where fit does not fit with 10 % to spare
        # (long's extra MLP recompute buys nothing below ~8k tokens; the planner's error is up to ~10 %).
        fit_fits = any(s["stage"] == "B: DPO, halluguard fit" and s["peak_gib"] <= 0.9 * gpu_gb for s in fitting)
        fitting = [s for s in fitting if not (fit_fits and s["stage"] == "B: DPO, halluguard long")]
        best = min(fitting, key=lambda s: (s["stage"] != "B: DPO, halluguard fast", s["peak_gib"]))
        rec = f"{best['stage']} ({best['peak_gib']} GiB of {gpu_gb:g})"
        if best["stage"] == "B: DPO, halluguard long":
            rec += "; set memory_profile: long (see training/configs/dpo_llama8b_long.yaml)"
    else:
        rec = suggest_for_oom(shape, seq=seq, gpu_gb=gpu_gb, batch=batch, stage="dpo")
    return {
        "model": shape.name, "params_b": round(shape.total_params / 1e9, 2), "vocab": shape.vocab,
        "tied_embeddings": shape.tied, "gpu_gb": gpu_gb, "seq": seq, "batch": batch, "lora_r": lora_r,
        "gpus": gpus, "strategy": strategy if gpus > 1 else "single",
        "stages": stages, "options_baseline": baseline, "options": options, "recommendation": rec,
        "note": "peak reserved GiB (torch.cuda.max_memory_reserved); add ~0.5 GiB CUDA context for nvidia-smi",
    }


def suggest_for_oom(model: str | ModelShape | Any, seq: int, gpu_gb: float, batch: int = 1, stage: str = "dpo",
                    settings: StageBSettings | None = None) -> str:
    """A one-paragraph, human-readable way out of an out-of-memory error, for training code to print.

    `model`: alias/path/hub id, a ModelShape, or a transformers config. `stage`: "dpo" or "sft".
    `settings`: what was running (default: stock TRL)."""
    if isinstance(model, ModelShape):
        shape = model
    elif isinstance(model, str):
        shape = load_shape(model)
    else:
        shape = ModelShape.from_config(model)
    pref = stage != "sft"
    cur = settings or StageBSettings()
    now = estimate_train_step(shape, seq, batch, cur, preference=pref)
    tries: list[tuple[str, StageBSettings, int, int]] = []
    long = dataclasses.replace(StageBSettings.profile("long"), lora_r=cur.lora_r, quantization=cur.quantization)
    if pref:
        fit = dataclasses.replace(StageBSettings.profile("fit"), lora_r=cur.lora_r, quantization=cur.quantization)
        tries.append(("memory_profile='fit'", fit, seq, batch))
        tries.append(("memory_profile='long' (tiled MLP + segmented attention on top of fit)", long, seq, batch))
    tries += [
        ("activation_offloading=True", dataclasses.replace(cur, activation_offloading=True), seq, batch),
        ("embeddings_on_cpu=True", dataclasses.replace(cur, embeddings_on_cpu=True), seq, batch),
    ]
    if not pref:
        tries.append(("memory_profile='long' (HalluguardSFTConfig: offloading, embeddings on CPU, tiled MLP, "
                      "8-bit Adam)", long, seq, batch))
    if batch > 1:
        tries.append((f"per_device_train_batch_size=1 with gradient_accumulation_steps={batch}", cur, seq, 1))
    lines = [(f"Estimated peak {now.peak_gib:.1f} GiB for {shape.name} at seq {seq}, batch {batch} "
             f"({'DPO' if pref else 'SFT'}) on a GPU with {gpu_gb:g} GiB.")]
    if now.peak_gib <= gpu_gb:
        lines.append("That should fit: check that no other process holds GPU memory and that max_length really "
                     "caps the sequences; to leave more room:")
    for text, st, sq, b in tries:
        est = estimate_train_step(shape, sq, b, st, preference=pref)
        if est.peak_gib <= gpu_gb:
            lines.append(f"Try {text}: about {est.peak_gib:.1f} GiB.")
            return " ".join(lines)
    fit = long
    longest = max_seq_that_fits(shape, gpu_gb, 1, fit, preference=pref)
    if longest:
        lines.append(f"With the long profile and batch 1, the longest sequence that fits is about {longest} tokens "
                     f"(max_length={longest}).")
    else:
        lines.append("Even the long profile at 128 tokens does not fit.")
    try:
        small = load_shape(SMALLER_MODEL)
        if small.total_params < shape.total_params:
            est = estimate_train_step(small, seq, 1, fit, preference=pref)
            lines.append(f"A smaller model ({small.name}) needs about {est.peak_gib:.1f} GiB at seq {seq}.")
    except (FileNotFoundError, ValueError):
        pass
    return " ".join(lines)


# ---------------------------------------------------------------------------------------------------
def _format(report: dict) -> str:
    out = [(f"{report['model']}: {report['params_b']}B params, vocab {report['vocab']}"
           f"{' (tied embeddings)' if report['tied_embeddings'] else ''}; seq {report['seq']}, batch "
           f"{report['batch']}, LoRA r={report['lora_r']}, GPU {report['gpu_gb']:g} GiB"
           + (f"; per GPU of {report['gpus']} under {report['strategy']}" if report.get("gpus", 1) > 1 else "")),
           ""]
    out.append(f"{'stage':<42} {'peak GiB':>9}  fits  how")
    for s in report["stages"]:
        peak = "-" if s["peak_gib"] is None else f"{s['peak_gib']:.2f}"
        out.append(f"{s['stage']:<42} {peak:>9}  {'yes ' if s['fits'] else 'no  '}  {s['how']}")
    out.append("")
    out.append(f"What to change (each lever alone, from the {report['options_baseline']} stage-B setup):")
    out.append(f"{'option':<58} {'peak GiB':>9} {'saves':>7}  fits")
    for o in report["options"]:
        peak = "-" if o["peak_gib"] is None else f"{o['peak_gib']:.2f}"
        saves = "-" if o["saves_gib"] is None else f"{o['saves_gib']:+.2f}"
        note = f"  {o['note']}" if o["note"] else ""
        out.append(f"{o['option']:<58} {peak:>9} {saves:>7}  {'yes' if o['fits'] else 'no '}{note}")
    out.append("")
    out.append(f"Recommendation: {report['recommendation']}")
    out.append(f"({report['note']})")
    return "\n".join(out)


def _cmd_plan(args) -> int:
    report = plan(args.model, gpu_gb=args.gpu_gb, seq=args.seq, batch=args.batch, lora_r=args.lora_r,
                  scorer_model=args.scorer, baseline=args.baseline, gpus=args.gpus, strategy=args.strategy)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_format(report))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "plan", help="estimate GPU memory of SFT, DPO, the 3B scorer and inference from a model config",
        description="Estimate peak GPU memory (no weights needed) and what to change to fit a GPU.")
    p.add_argument("--model", required=True,
                   help=f"alias ({', '.join(short_aliases())}) or the hub id of one, config.json, "
                        "model directory, or a hub id whose config is in the local cache")
    p.add_argument("--gpu-gb", type=float, default=12.0, help="GPU memory to fit in, GiB (default 12)")
    p.add_argument("--seq", type=int, default=2048, help="sequence length, prompt + completion (default 2048)")
    p.add_argument("--batch", type=int, default=1, help="pairs (DPO) or examples (SFT) per step (default 1)")
    p.add_argument("--lora-r", type=int, default=16, help="LoRA rank on all linear layers (default 16)")
    p.add_argument("--scorer", default=DEFAULT_SCORER, help=f"model of the DPO scorer (default {DEFAULT_SCORER})")
    p.add_argument("--baseline", default="stock", choices=["seed", "stock", "fit", "fast"],
                   help="stage-B setup the options are computed from (default stock)")
    p.add_argument("--gpus", type=int, default=1,
                   help="data-parallel GPUs; estimates become per GPU and --batch is per GPU (default 1)")
    p.add_argument("--strategy", default="ddp", choices=list(STRATEGIES),
                   help="with --gpus > 1: ddp (a 4-bit copy per GPU) or zero3 (weights sharded); default ddp")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=_cmd_plan)
