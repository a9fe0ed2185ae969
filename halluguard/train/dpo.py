"""Stage B: DPO of a (4-bit) policy in ONE model, on TRL 1.16's DPOTrainer, with memory profiles.

    from halluguard.train.dpo import HalluguardDPOConfig, build_dpo_trainer
    config = HalluguardDPOConfig(output_dir="runs/dpo", memory_profile="fit", max_length=2048)
    trainer = build_dpo_trainer(model, tokenizer, train_ds, eval_ds, config, peft_config=LoraConfig(...))
    trainer.train()

The maths is TRL's (its `_compute_loss` runs unchanged); what changes is where tensors live and how
big each forward is:

- `embeddings_on_cpu`: the input embedding table (1 GiB on a 128k vocabulary in bf16) stays in CPU
  memory; only the looked-up rows move to the GPU. Frozen under LoRA, so no gradient is lost. Not
  possible when the table is tied to the LM head (Qwen2.5-3B): then it stays on the GPU.
- `sequences_per_forward`: TRL runs chosen and rejected as one batch of 2·B sequences; this runs them
  in forwards of N sequences, each trimmed to its own length, and concatenates the per-token
  outputs. The loss and gradients are the same; the per-layer working set shrinks by 2B/N.
- `share_prompt`: a pair's chosen and rejected share the prompt (for summarization, the long
  document); each pair runs as ONE sequence [prompt, chosen, rejected] whose attention mask hides the
  chosen tokens from the rejected ones and whose rejected positions restart after the prompt. The
  prompt's activations are computed once; every log-prob is the one the two-sequence forward gives.
- `activation_offloading`, `gradient_checkpointing`, `precompute_ref_log_probs` (cached reference),
  `optim="adamw_8bit"`: TRL / transformers options, set by the profiles.
- `logp_chunk_size`: vocabulary tile of TRL's fused log-prob kernel (log-probs are computed only on
  completion tokens and never as full [seq, vocab] logits; that part is already stock TRL 1.16).
- `expandable_segments`: the CUDA caching allocator grows segments instead of keeping many
  fixed-size ones, which cuts the reserved-but-unused memory.
- `mlp_tile_tokens` (long documents): every decoder MLP runs this many tokens at a time and recomputes
  each tile in the backward (DeepSpeed's TiledMLP, see `halluguard.train.tiling`), so a layer's
  recompute holds one tile's [tokens, intermediate] tensors instead of the whole sequence's.
- `segmented_attention` (long documents, with `share_prompt`): the packed row is attended as two causal
  SDPA calls, [prompt, chosen] and [prompt, rejected], instead of one call with a dense [L, L] mask: memory
  linear in the length and SDPA's flash kernel, as for stock TRL's rows.
- `memory_cap_gb`: the micro-batch (pairs per forward/backward) is sized by the planner to the cap,
  keeping the effective batch (`per_device_train_batch_size` x `gradient_accumulation_steps`).

Profiles (`memory_profile`): "stock" (TRL defaults), "fit" (smallest peak at 1k-4k tokens), "long" (fit
plus the tiled MLP and segmented attention, for 8k-64k-token documents), "fast" (throughput under a cap).
A field you set to a value other than the DPOConfig default wins over the profile.

Reference policy: with a fresh LoRA (pass `peft_config`) the reference is the base model with the
adapter disabled. When you start from a stage-A SFT adapter, pass the PeftModel loaded with
`is_trainable=True` and no `peft_config`: TRL 1.16 then adds a frozen copy of that adapter named
"ref" and the reference is the SFT policy (a few MB more, no second model).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from trl import DPOConfig, DPOTrainer

from halluguard.train.tiling import SEGMENTED_ATTENTION, segments_marker, tile_mlps, use_segmented_attention

logger = logging.getLogger(__name__)

PROFILES = ("stock", "fit", "long", "fast")

# Values each profile sets. Measured on the H100 (see docs/memory.md and BENCHMARKS.md).
PROFILE_SETTINGS: dict[str, dict[str, Any]] = {
    "stock": {},
    "fit": {
        "gradient_checkpointing": True,
        "activation_offloading": True,
        "embeddings_on_cpu": True,
        "share_prompt": True,
        "sequences_per_forward": 1,
        "expandable_segments": True,
        "optim": "adamw_8bit",
        "logp_chunk_size": 8192,
    },
    "long": {
        "gradient_checkpointing": True,
        "activation_offloading": True,
        "embeddings_on_cpu": True,
        "share_prompt": True,
        "segmented_attention": True,
        "mlp_tile_tokens": 2048,
        "offload_stash_size": 2,
        "sequences_per_forward": 1,
        "expandable_segments": True,
        "optim": "adamw_8bit",
        "logp_chunk_size": 8192,
    },
    "fast": {
        "gradient_checkpointing": True,
        "precompute_ref_log_probs": True,
        "embeddings_on_cpu": True,
        "share_prompt": True,
        "expandable_segments": True,
        "memory_cap_gb": 12.0,
    },
}


@dataclass
class HalluguardDPOConfig(DPOConfig):
    """TRL's DPOConfig plus halluguard's memory levers (see the module docstring)."""

    memory_profile: str = field(
        default="stock",
        metadata={"help": "Memory profile: 'stock' (TRL defaults), 'fit' (smallest peak memory at 1k-4k tokens), "
                          "'long' (fit + tiled MLP + segmented attention, for 8k-64k-token documents) or 'fast' "
                          "(throughput under `memory_cap_gb`). Explicit non-default fields override it.",
                  "choices": list(PROFILES)},
    )
    embeddings_on_cpu: bool | None = field(
        default=None,
        metadata={"help": "Keep the input embedding table in CPU memory; only looked-up rows go to the GPU. "
                          "Ignored (with a warning) when the table is tied to the LM head."},
    )
    sequences_per_forward: int | None = field(
        default=None,
        metadata={"help": "Run the [chosen; rejected] batch in forwards of this many sequences (None: all at "
                          "once, like TRL). Same loss and gradients, smaller activation peak."},
    )
    share_prompt: bool | None = field(
        default=None,
        metadata={"help": "Run each pair as ONE sequence [prompt, chosen, rejected] with an attention mask that "
                          "hides chosen from rejected and rejected's positions restarting after the prompt: the "
                          "prompt is computed once instead of twice. Same loss and gradients; falls back to the "
                          "plain path when a batch does not qualify (different prompts, left padding, flash "
                          "attention)."},
    )
    expandable_segments: bool | None = field(
        default=None,
        metadata={"help": "Switch the CUDA caching allocator to expandable segments (less fragmentation)."},
    )
    logp_chunk_size: int | None = field(
        default=None,
        metadata={"help": "Vocabulary tile of TRL's fused log-prob kernel (TRL default 32768)."},
    )
    mlp_tile_tokens: int | None = field(
        default=None,
        metadata={"help": "Run every decoder MLP this many tokens at a time, recomputing each tile in the backward "
                          "(DeepSpeed's TiledMLP). Same loss and gradients; the MLP's activations shrink to one tile's. "
                          "None: off."},
    )
    segmented_attention: bool | None = field(
        default=None,
        metadata={"help": "With share_prompt: attend each packed row as two causal SDPA calls ([prompt, chosen], "
                          "[prompt, rejected]) instead of one call with a dense [L, L] mask: linear memory and SDPA's "
                          "flash kernel. Same loss and gradients. Switches the model to the "
                          "'halluguard_segmented_sdpa' attention (plain SDPA for every other call)."},
    )
    offload_stash_size: int | None = field(
        default=None,
        metadata={"help": "With activation_offloading: how many offloaded activations stay on the GPU while their "
                          "copies run (TRL's max_fwd_stash_size, default 5). At long lengths each is a whole layer "
                          "input (640 MB at 80k tokens on an 8B) and a copy takes far less than a layer's compute, "
                          "so 2 loses no overlap."},
    )
    memory_cap_gb: float | None = field(
        default=None,
        metadata={"help": "Size the micro-batch (pairs per forward) to this GPU memory cap with the planner; "
                          "gradient accumulation keeps the effective batch."},
    )

    def __post_init__(self):
        apply_profile(self, DPOConfig, PROFILE_SETTINGS)
        if self.sequences_per_forward is not None and self.sequences_per_forward < 1:
            raise ValueError(f"sequences_per_forward must be >= 1 or None, got {self.sequences_per_forward}")
        if self.offload_stash_size is not None and self.offload_stash_size < 1:
            raise ValueError(f"offload_stash_size must be >= 1 or None, got {self.offload_stash_size}")
        if self.mlp_tile_tokens is not None and self.mlp_tile_tokens < 1:
            raise ValueError(f"mlp_tile_tokens must be >= 1 or None, got {self.mlp_tile_tokens}")
        if self.logp_chunk_size is not None and self.logp_chunk_size < 1:
            raise ValueError(f"logp_chunk_size must be >= 1 or None, got {self.logp_chunk_size}")
        if self.memory_cap_gb is not None and self.memory_cap_gb <= 0:
            raise ValueError(f"memory_cap_gb must be > 0, got {self.memory_cap_gb}")
        super().__post_init__()


def apply_profile(config, trl_cls, profiles: dict[str, dict[str, Any]]) -> None:
    """Set the values of `profiles[config.memory_profile]` on `config`: a TRL field only where it still has
    `trl_cls`'s default, a halluguard field (default None) only where it is still None. What the user set
    wins. Shared by stage A's and stage B's configs; an unknown profile is a ValueError."""
    if config.memory_profile not in profiles:
        raise ValueError(f"memory_profile must be one of {tuple(profiles)}, got {config.memory_profile!r}")
    defaults = {f.name: f.default for f in dataclasses.fields(trl_cls)}
    for name, value in profiles[config.memory_profile].items():
        current = getattr(config, name)
        if name in defaults:
            if current == defaults[name]:
                setattr(config, name, value)
        elif current is None:
            setattr(config, name, value)


# --------------------------------------------------------------------------- embeddings on the CPU


class CPUOffloadedEmbedding(nn.Module):
    """Wraps an input embedding kept on the CPU. `forward(ids)` looks rows up on the CPU and returns
    them on `ids`' device. The wrapped module is hidden from `.to()`/`.cuda()` and from `parameters()`
    so that nothing moves the table back to the GPU behind our back."""

    def __init__(self, embedding: nn.Module):
        super().__init__()
        self.__dict__["_inner"] = embedding.to("cpu")  # not registered as a submodule on purpose
        weight = embedding.weight
        self.num_embeddings, self.embedding_dim = weight.shape
        self.padding_idx = getattr(embedding, "padding_idx", None)

    @property
    def inner(self) -> nn.Module:
        return self.__dict__["_inner"]

    @property
    def weight(self) -> torch.Tensor:
        return self.inner.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # The class's forward, not the instance's: hooks a dispatcher may have attached to the original
        # module would move the lookup back to the GPU.
        out = type(self.inner).forward(self.inner, input_ids.to("cpu"))
        return out.to(input_ids.device)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, on cpu"


def _base_of(model: nn.Module) -> nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def embeddings_are_tied(model: nn.Module) -> bool:
    base = _base_of(model)
    inp, out = base.get_input_embeddings(), base.get_output_embeddings()
    if inp is None or out is None or not hasattr(out, "weight"):
        return False
    w_in = inp.weight if not isinstance(inp, CPUOffloadedEmbedding) else inp.inner.weight
    return w_in is out.weight or w_in.data_ptr() == out.weight.data_ptr()


def offload_input_embeddings(model: nn.Module, freeze: bool = False) -> bool:
    """Move `model`'s input embedding table to CPU memory (in place). Returns False, and leaves the
    model alone, when the table is tied to the LM head or already offloaded. `freeze=True` first
    turns off its gradient (LoRA freezes it anyway); a trainable table raises ValueError."""
    base = _base_of(model)
    emb = base.get_input_embeddings()
    if emb is None or isinstance(emb, CPUOffloadedEmbedding):
        return False
    if embeddings_are_tied(base):
        logger.warning("embeddings_on_cpu ignored: the input embedding is tied to the LM head, which needs it "
                       "on the GPU")
        return False
    if freeze:
        emb.weight.requires_grad_(False)
    if emb.weight.requires_grad:
        raise ValueError("embeddings_on_cpu needs a frozen input embedding (LoRA leaves it frozen); this model "
                         "trains it")
    base.set_input_embeddings(CPUOffloadedEmbedding(emb))
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return True


def restore_input_embeddings(model: nn.Module, device: str | torch.device | None = None) -> bool:
    """Undo `offload_input_embeddings` (e.g. before `merge_and_unload` or generation on the GPU)."""
    base = _base_of(model)
    emb = base.get_input_embeddings()
    if not isinstance(emb, CPUOffloadedEmbedding):
        return False
    if device is None:
        out = base.get_output_embeddings()
        device = out.weight.device if out is not None else "cpu"
    base.set_input_embeddings(emb.inner.to(device))
    return True


# --------------------------------------------------------------------------- split forwards

_PER_TOKEN_FIELDS = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1", "label_mask")


def _split_fused_forward(forward, sequences_per_forward: int):
    """Wrap a forward patched by TRL's `add_fused_lm_head` so that a fused call on a batch of more than
    `sequences_per_forward` rows runs as several smaller forwards, each trimmed to its longest row
    (right padding, as TRL's collator makes it). Non-fused calls (generation) pass through."""

    def wrapped(*args, fused_lm_head=False, **kwargs):
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if (not fused_lm_head or input_ids is None or kwargs.get("shift_labels") is not None
                or input_ids.shape[0] <= sequences_per_forward or kwargs.get("output_router_logits")):
            return forward(*args, fused_lm_head=fused_lm_head, **kwargs)
        if args:  # normalise to keywords so every tensor is sliced the same way
            kwargs["input_ids"] = args[0]
            args = ()
        n_rows, width = input_ids.shape
        attn = kwargs.get("attention_mask")
        outs, widths = [], []
        for start in range(0, n_rows, sequences_per_forward):
            stop = min(start + sequences_per_forward, n_rows)
            w = width
            if attn is not None and attn.dim() == 2:
                # Columns that are padding in every row of this slice are wasted compute; their labels are
                # -100, so dropping them changes no output.
                cols = attn[start:stop].any(dim=0).nonzero()
                if len(cols):
                    w = max(int(cols[-1]) + 1, 2)
            sub = {}
            for k, v in kwargs.items():
                if torch.is_tensor(v) and v.dim() >= 1 and v.shape[0] == n_rows:
                    v = v[start:stop]
                    if v.dim() >= 2 and v.shape[1] == width and k in ("input_ids", "attention_mask", "labels",
                                                                       "position_ids", "token_type_ids"):
                        v = v[:, :w]
                sub[k] = v
            outs.append(forward(fused_lm_head=True, **sub))
            widths.append(w)
        merged = {}
        first = outs[0]
        for name in _PER_TOKEN_FIELDS:
            parts = [getattr(o, name, None) for o in outs]
            if any(p is None for p in parts):
                merged[name] = None
                continue
            full = width - 1
            padded = []
            for p in parts:
                if p.shape[1] < full:
                    p = torch.cat([p, p.new_zeros(p.shape[0], full - p.shape[1])], dim=1)
                padded.append(p)
            merged[name] = torch.cat(padded, dim=0)
        mask = merged["label_mask"]
        lp = merged["log_probs"]
        merged["loss"] = -lp.sum() / mask.sum().clamp(min=1)
        merged["aux_loss"] = None
        return type(first)(**merged)

    wrapped.__wrapped_split__ = forward
    return wrapped


# --------------------------------------------------------------------------- shared prompts

_SHARE_KWARGS = {"input_ids", "attention_mask", "labels", "use_cache"}


def _head_scales(config) -> tuple[float | None, float]:
    """(final_logit_softcapping, logit_scale) the way TRL's fused head reads them."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    softcap = getattr(text, "final_logit_softcapping", None)
    scale = getattr(text, "logit_scale", None)
    if scale is None:
        scale = getattr(text, "output_multiplier", None)
    if scale is None:
        scale = getattr(text, "lm_head_multiplier", None)
    if scale is None and getattr(text, "logits_scaling", None) is not None:
        scale = text.logits_scaling if text.model_type == "hyperclovax" else 1 / text.logits_scaling
    return softcap, 1.0 if scale is None else scale


def pair_layout(input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                labels: torch.Tensor) -> list[tuple[int, int, int]] | None:
    """For a TRL batch [chosen_0..chosen_B-1, rejected_0..rejected_B-1] (right padded, labels -100
    outside the completion), return (prompt_len, chosen_len, rejected_len) per pair, or None when the
    pairs cannot share their prompt (different prompts, left padding, gaps in the completion)."""
    n, width = input_ids.shape
    if n % 2 or n == 0:
        return None
    b = n // 2
    ar = torch.arange(width, device=input_ids.device)
    lens = attention_mask.sum(1) if attention_mask is not None else torch.full((n,), width, device=ar.device)
    comp = labels != -100
    first = comp.int().argmax(1)
    ok = comp.any(1) & (first >= 1) & (comp.sum(1) == lens - first)
    if attention_mask is not None:
        ok &= (attention_mask.bool() == (ar[None] < lens[:, None])).all(1)
    ok = ok[:b] & ok[b:] & (first[:b] == first[b:])
    ok &= ((input_ids[:b] == input_ids[b:]) | (ar[None] >= first[:b, None])).all(1)
    if not bool(ok.all()):
        return None
    first_l, lens_l = first.tolist(), lens.tolist()
    return [(first_l[i], lens_l[i], lens_l[i + b]) for i in range(b)]


def _shared_mask(layout: list[tuple[int, int, int]], width: int, device, float_dtype=None) -> torch.Tensor:
    """[G, 1, W, W] mask for packed pairs: causal, rejected queries blind to the chosen segment, padding
    keys hidden (padding queries see only themselves, so no row is fully masked)."""
    ar = torch.arange(width, device=device)
    causal = ar[None, :] <= ar[:, None]
    masks = []
    for p, lc, lr in layout:
        total = lc + lr - p
        m = causal.clone()
        m[lc:total, p:lc] = False
        m[:, total:] = False
        m[total:, :] = False
        m[ar[total:], ar[total:]] = True
        masks.append(m)
    mask = torch.stack(masks)[:, None]
    if float_dtype is not None:  # eager attention adds the mask
        mask = torch.zeros(mask.shape, dtype=float_dtype, device=device).masked_fill(~mask, torch.finfo(float_dtype).min)
    return mask


def _shared_prompt_forward(forward, model, pairs_per_forward: int | None, outputs: tuple[str, ...],
                           fallback):
    """Wrap the fused forward of `model` (patched by TRL's add_fused_lm_head) so that DPO batches run
    with each pair packed as one sequence. Anything that does not qualify goes to `fallback`."""
    from trl.kernels import ChunkedLogProbFunction
    from trl.trainer.utils import FusedCausalLMOutput

    try:
        from trl.trainer.utils import maybe_gather_lm_head_ctx
    except ImportError:  # older TRL: no ZeRO-3 gather helper
        maybe_gather_lm_head_ctx = None

    def wrapped(*args, fused_lm_head=False, **kwargs):
        input_ids, labels = kwargs.get("input_ids"), kwargs.get("labels")
        impl = getattr(model.config, "_attn_implementation", "sdpa")
        layout = None
        if (fused_lm_head and not args and input_ids is not None and labels is not None
                and not {k for k, v in kwargs.items() if v is not None} - _SHARE_KWARGS
                and impl in ("sdpa", "eager", SEGMENTED_ATTENTION)):
            layout = pair_layout(input_ids, kwargs.get("attention_mask"), labels)
        if layout is None:
            if fused_lm_head:
                wrapped.calls["plain"] += 1
            return fallback(*args, fused_lm_head=fused_lm_head, **kwargs)
        wrapped.calls["shared"] += 1
        dev = input_ids.device
        n, width = input_ids.shape
        b = n // 2
        backbone = model.base_model
        head = model.get_output_embeddings()
        softcap, logit_scale = _head_scales(model.config)
        import trl.trainer.utils as trl_utils

        chunk = trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE
        group = pairs_per_forward or b
        sel_h, out_rows, out_pos, targets = [], [], [], []
        pad_id = 0  # any id: padding positions are masked out and never scored
        for g0 in range(0, b, group):
            lay = layout[g0:g0 + group]
            packed_w = max(lc + lr - p for p, lc, lr in lay)
            ids = input_ids.new_full((len(lay), packed_w), pad_id)
            pos = torch.zeros((len(lay), packed_w), dtype=torch.long, device=dev)
            rows_h, pos_h = [], []
            for j, (p, lc, lr) in enumerate(lay):
                i = g0 + j
                total = lc + lr - p
                ids[j, :lc] = input_ids[i, :lc]
                ids[j, lc:total] = input_ids[i + b, p:lr]
                pos[j, :lc] = torch.arange(lc, device=dev)
                pos[j, lc:total] = torch.arange(p, lr, device=dev)
                # chosen row i: positions t = p-1 .. lc-2 predict tokens p .. lc-1 (packed index t)
                t_c = torch.arange(p - 1, lc - 1, device=dev)
                # rejected row i+b: t = p-1 .. lr-2; t = p-1 is the last prompt token, later ones sit at lc + t - p
                t_r = torch.arange(p - 1, lr - 1, device=dev)
                h_r = torch.where(t_r < p, t_r, lc + t_r - p)
                rows_h += [torch.full_like(t_c, j), torch.full_like(t_r, j)]
                pos_h += [t_c, h_r]
                out_rows += [torch.full_like(t_c, i), torch.full_like(t_r, i + b)]
                out_pos += [t_c, t_r]
                targets += [input_ids[i, p:lc], input_ids[i + b, p:lr]]
            if impl == SEGMENTED_ATTENTION:  # no [L, L] mask: the attention function gets the layout itself
                mask = segments_marker(lay)
            else:
                float_dtype = None if impl == "sdpa" else (model.dtype if model.dtype.is_floating_point
                                                           else torch.float32)
                mask = _shared_mask(lay, packed_w, dev, float_dtype)
            hidden = backbone(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).last_hidden_state
            sel_h.append(hidden[torch.cat(rows_h), torch.cat(pos_h)])
        h = torch.cat(sel_h).to(head.weight.device)
        tgt = torch.cat(targets).to(head.weight.device)
        ctx = maybe_gather_lm_head_ctx(head.weight, head.bias) if maybe_gather_lm_head_ctx else contextlib.nullcontext()
        with ctx:
            per_token = ChunkedLogProbFunction.apply(h, head.weight, head.bias, tgt, 1.0, chunk, softcap,
                                                     logit_scale, outputs)
        rows, cols = torch.cat(out_rows).to(h.device), torch.cat(out_pos).to(h.device)
        full = []
        for x in per_token:
            if x is None:
                full.append(None)
                continue
            z = x.new_zeros((n, width - 1))
            full.append(z.index_put((rows, cols), x))
        log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1 = full
        label_mask = labels[:, 1:].to(h.device) != -100
        loss = -log_probs.sum() / label_mask.sum().clamp(min=1)
        return FusedCausalLMOutput(loss=loss, log_probs=log_probs, entropy=entropy, log_sum_sq_probs=log_sum_sq_probs,
                                   mean_logits=mean_logits, is_top1=is_top1, label_mask=label_mask, aux_loss=None)

    wrapped.__wrapped_split__ = forward
    wrapped.calls = {"shared": 0, "plain": 0}  # fused calls that shared the prompt / fell back
    return wrapped


# --------------------------------------------------------------------------- trainer


def set_expandable_segments(enabled: bool = True) -> bool:
    """Ask PyTorch's CUDA allocator for expandable segments at run time. Returns False without CUDA."""
    if not torch.cuda.is_available():
        return False
    try:
        torch.cuda.memory._set_allocator_settings(f"expandable_segments:{'True' if enabled else 'False'}")
        return True
    except (RuntimeError, AttributeError) as e:  # older builds: only the env var works
        logger.warning("could not switch expandable segments at run time (%s); set "
                       "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True before starting Python", e)
        return False


def apply_long_levers(model, mlp_tile_tokens: int | None, segmented_attention: bool) -> None:
    """The long-document levers, in place on `model` (a PeftModel or a bare model): tiled MLPs and the
    segmented attention. Shared by stage A and stage B."""
    if mlp_tile_tokens:
        tile_mlps(model, int(mlp_tile_tokens))
    if segmented_attention:
        use_segmented_attention(_base_of(model))


def set_offload_stash(trainer, size: int | None) -> None:
    """Rebuild TRL's activation-offloading context with `size` activations kept on the GPU (None: TRL's)."""
    if not size or not trainer.args.activation_offloading:
        return
    from trl.models.activation_offloading import get_act_offloading_ctx_manager

    trainer.maybe_activation_offload_context = get_act_offloading_ctx_manager(
        model=trainer.model, max_fwd_stash_size=int(size))


class HalluguardDPOTrainer(DPOTrainer):
    """TRL 1.16 DPOTrainer with halluguard's memory levers. The loss code is TRL's; see the module
    docstring. `ref_precompute_seconds` holds the time the cached reference took (0 if none);
    `shared_prompt_calls()` how many fused forwards shared the prompt and how many fell back."""

    def __init__(self, model, *args, **kwargs):
        config = kwargs.get("args", args[1] if len(args) > 1 else None)
        own = isinstance(config, HalluguardDPOConfig)
        self._split_n = config.sequences_per_forward if own else None
        self._share = bool(config.share_prompt) if own else False
        self.ref_precompute_seconds = 0.0
        self.embeddings_offloaded = False
        if own:
            if config.expandable_segments:
                set_expandable_segments(True)
            if config.logp_chunk_size:
                import trl.trainer.utils as trl_utils

                # Module constant read at call time by TRL's fused LM head.
                trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = int(config.logp_chunk_size)
            if not isinstance(model, str):
                apply_long_levers(model, config.mlp_tile_tokens,
                                  bool(config.segmented_attention and config.share_prompt))
            if config.embeddings_on_cpu and not isinstance(model, str):
                if kwargs.get("peft_config") is not None or hasattr(model, "peft_config"):
                    # Under LoRA the table is frozen; PEFT would freeze it a moment later anyway.
                    self.embeddings_offloaded = offload_input_embeddings(model, freeze=True)
                else:
                    logger.warning("embeddings_on_cpu ignored: full fine-tuning trains the embedding table")
        super().__init__(model, *args, **kwargs)
        if own:
            set_offload_stash(self, config.offload_stash_size)
        self._install_forward_wrappers()

    def _install_forward_wrappers(self) -> None:
        # TRL patches the fused LM head onto the base model's `forward` inside its __init__; wrap that.
        if not (self._split_n or self._share):
            return
        outputs = ("log_probs", "entropy", "mean_logits", "is_top1")
        if getattr(self, "use_weighting", False):
            outputs += ("log_sum_sq_probs",)
        for m in (self.model, self.ref_model):
            if m is None:
                continue
            base = _base_of(self.accelerator.unwrap_model(m))
            if "forward" not in base.__dict__ or hasattr(base.forward, "__wrapped_split__"):
                continue
            fused = base.forward
            plain = _split_fused_forward(fused, self._split_n) if self._split_n else fused
            if self._share:
                pairs = max(1, self._split_n // 2) if self._split_n else None
                base.forward = _shared_prompt_forward(fused, base, pairs, outputs, fallback=plain)
            else:
                base.forward = plain

    def shared_prompt_calls(self) -> dict[str, int]:
        base = _base_of(self.accelerator.unwrap_model(self.model))
        return dict(getattr(base.forward, "calls", {"shared": 0, "plain": 0}))

    def _precompute_ref_logps(self, dataset, name, batch_size):
        # Called from TRL's __init__ after the fused head is added: wrap the reference forwards too.
        self._install_forward_wrappers()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        dataset = self._with_shared_cache_dir(dataset, name)
        out = super()._precompute_ref_logps(dataset, name, batch_size)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.ref_precompute_seconds += time.perf_counter() - t0
        return out


    def _with_shared_cache_dir(self, dataset, name):
        """TRL 1.16 writes the cached reference log-probs beside the dataset's cache files (main process)
        and every process reads them back. An in-memory dataset (`Dataset.from_list`, or its tokenized map)
        has no cache files, so each process looks in its own temporary folder and all but the main one
        fail with FileNotFoundError (found running `fast` under DDP on two processes). Such a dataset gets
        a file under output_dir, which the processes of one machine share."""
        import os

        from datasets import Dataset

        if self.accelerator.num_processes <= 1 or getattr(dataset, "cache_files", None):
            return dataset
        path = os.path.join(self.args.output_dir, f"halluguard_ref_input_{name}.arrow")
        if self.accelerator.is_main_process:
            os.makedirs(self.args.output_dir, exist_ok=True)
            dataset.map(lambda batch: batch, batched=True, cache_file_name=path, load_from_cache_file=False)
        self.accelerator.wait_for_everyone()
        return Dataset.from_file(path)


def size_micro_batch(model, config: HalluguardDPOConfig, lora_r: int = 16) -> int:
    """Pairs per micro-batch that fit `config.memory_cap_gb` (or the GPU, if smaller), per the planner."""
    from halluguard import planner

    base = _base_of(model)
    quant = "nf4" if getattr(base, "is_loaded_in_4bit", False) else (
        "int8" if getattr(base, "is_loaded_in_8bit", False) else "none")
    cap = config.memory_cap_gb
    if torch.cuda.is_available():  # never plan for more than the card has (minus the CUDA context)
        cap = min(cap, torch.cuda.get_device_properties(0).total_memory / 2**30 - 0.5)
    return planner.max_pairs_per_step(
        planner.ModelShape.from_config(base.config), seq=config.max_length or 1024, gpu_gb=cap,
        settings=planner.StageBSettings.from_dpo_config(config, lora_r=lora_r, quantization=quant),
    )


def _largest_divisor_at_most(n: int, k: int) -> int:
    for d in range(min(n, k), 0, -1):
        if n % d == 0:
            return d
    return 1


def build_dpo_trainer(model, tokenizer, train_dataset, eval_dataset=None, config: DPOConfig | None = None,
                      peft_config=None, **trainer_kwargs) -> HalluguardDPOTrainer:
    """Build the stage-B trainer.

    `model`: a loaded causal LM (4-bit, 8-bit or bf16) with `peft_config` for a fresh LoRA, or a
    PeftModel holding the stage-A adapter (loaded trainable) and `peft_config=None`, in which case the
    reference is that SFT policy. `config`: a HalluguardDPOConfig (a plain DPOConfig works too and
    means the stock profile). Datasets are in TRL's preference format (prompt / chosen / rejected).
    """
    if config is None:
        raise ValueError("config is required: pass HalluguardDPOConfig(output_dir=..., memory_profile=...)")
    if train_dataset is None or (hasattr(train_dataset, "__len__") and len(train_dataset) == 0):
        raise ValueError("train_dataset is empty: stage B needs preference pairs (prompt/chosen/rejected)")
    if isinstance(config, HalluguardDPOConfig) and config.memory_cap_gb and not isinstance(model, str):
        if peft_config is not None:
            r = getattr(peft_config, "r", 16)
        else:  # a PeftModel carrying the SFT adapter
            r = getattr(next(iter(getattr(model, "peft_config", {}).values()), None), "r", 16)
        k = size_micro_batch(model, config, lora_r=r)
        effective = config.per_device_train_batch_size * config.gradient_accumulation_steps
        # The largest micro-batch that divides the effective batch, so the optimizer sees the same batch.
        pairs = _largest_divisor_at_most(effective, k)
        if pairs != config.per_device_train_batch_size:
            logger.info("memory_cap_gb=%s: micro-batch %d pairs x %d accumulation steps (effective %d)",
                        config.memory_cap_gb, pairs, effective // pairs, effective)
        config.per_device_train_batch_size = pairs
        config.gradient_accumulation_steps = effective // pairs
    return HalluguardDPOTrainer(model=model, args=config, train_dataset=train_dataset,
                                eval_dataset=eval_dataset, processing_class=tokenizer,
                                peft_config=peft_config, **trainer_kwargs)
