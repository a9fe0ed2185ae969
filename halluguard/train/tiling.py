"""Long-document levers shared by stage A (SFT) and stage B (DPO): a sequence-tiled MLP and mask-free
attention for shared-prompt DPO rows. Both keep the maths (loss and gradients) of the untiled model.

    from halluguard.train.tiling import tile_mlps, untile_mlps, use_segmented_attention
    tile_mlps(model, tile_tokens=4096)     # every decoder MLP runs 4096 tokens at a time
    use_segmented_attention(model)         # shared-prompt rows attend without an [L, L] mask

Why: with gradient checkpointing and offloaded checkpoints, what is left at 16k-64k tokens is one
layer's recompute + backward, and in it the MLP's [tokens, intermediate] tensors (gate, up, their
product, the activation and their gradients: ~5.4 x 14,336 bf16 values per token on Llama-3-8B, 1 GiB
per 4k tokens) and, for shared-prompt DPO rows, the dense [L, L] attention mask (bool plus the bf16
copy SDPA makes of it: 4.7 GiB at 40k tokens, and no flash kernel).

`TiledMLPFunction` follows DeepSpeed's `TiledMLP` (deepspeed.runtime.sequence_parallel.ulysses_sp,
Arctic Long Sequence Training, arXiv 2506.13996; Liger-Kernel ships a copy as `LigerTiledMLPFunction`):
the forward runs the MLP tile by tile without keeping intermediates, the backward recomputes each tile
with gradients and back-propagates it at once. It is written here rather than imported because
DeepSpeed's import pulls in its whole runtime and Liger's imports Triton at module level, which the CPU
machines (and CI) lack; this copy adds what a QLoRA run needs: the autocast state and the RNG state of
the forward are restored in the backward, so LoRA dropout draws the same masks.

One more saving over DeepSpeed's: with gradient checkpointing, each MLP would run its forward three times
(the forward, the layer's recompute, the tiled backward's own recompute). In a layer whose MLP output
only enters the residual sum (Llama, Qwen2/3, Mistral, SmolLM3: `residual + mlp(norm(h))`), nothing in the
recompute reads that output's values: the recompute exists to save the tensors the backward needs, and
TiledMLPFunction's only one is its input. There the recompute skips the tiles and returns zeros of the
output's shape (CALLS["tiled_mlp_recompute_skipped"]), which leaves the MLP at two forwards, as untiled
(stage A's `long` at 16k tokens: 0.76x stock TRL's speed with the third forward, 0.90x without it; device
runs 7 and 8).
"""

from __future__ import annotations

import logging
from collections import Counter

import torch
from torch import nn

logger = logging.getLogger(__name__)

SEGMENTED_ATTENTION = "halluguard_segmented_sdpa"
# How often each lever ran since the last clear() (benchmarks and tests check the levers really ran).
CALLS: Counter = Counter()


# --------------------------------------------------------------------------- tiled MLP


def _rng_state(device: torch.device):
    return torch.get_rng_state(), (torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


def _keep(t):
    return t


class TiledMLPFunction(torch.autograd.Function):
    """`fn(x)` for a per-token `fn` (a decoder MLP), computed `tile` tokens at a time. Parameter
    gradients are accumulated inside the backward (like DeepSpeed's TiledMLP); only `x` is saved."""

    @staticmethod
    def forward(ctx, fn, tile: int, x: torch.Tensor, compute: bool = True) -> torch.Tensor:
        """`compute=False` (a checkpoint's recompute whose caller ignores the values): zeros of the
        output's shape (a per-token map of the hidden size); the backward is the same either way."""
        ctx.fn, ctx.tile = fn, tile
        dev = x.device.type
        ctx.autocast = (dev, torch.is_autocast_enabled(dev), torch.get_autocast_dtype(dev))
        ctx.rng = _rng_state(x.device)
        ctx.save_for_backward(x)
        if not compute:
            return torch.zeros_like(x)
        flat = x.reshape(-1, x.shape[-1])
        out = None
        for s in range(0, flat.shape[0], tile):
            y = fn(flat[s:s + tile])
            if out is None:
                out = y.new_empty(flat.shape[0], y.shape[-1])
            out[s:s + tile] = y
        return out.view(*x.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (x,) = ctx.saved_tensors
        flat = x.detach().reshape(-1, x.shape[-1])
        g = grad_out.reshape(-1, grad_out.shape[-1])
        gx = torch.empty_like(flat) if ctx.needs_input_grad[2] else None
        dev, enabled, dtype = ctx.autocast
        cpu_rng, cuda_rng = ctx.rng
        devices = [x.device] if cuda_rng is not None else []
        with torch.random.fork_rng(devices=devices, device_type=dev if devices else "cuda"):
            torch.set_rng_state(cpu_rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state(cuda_rng, x.device)
            # Identity saved-tensor hooks: TRL's activation offloading keeps its hooks active through the
            # backward too, and would otherwise copy every tile's intermediates to the CPU and back (device
            # run 5: with that, the long profile needed more memory than fit and ran at 0.75x of its speed).
            with torch.enable_grad(), torch.autocast(dev, enabled=enabled, dtype=dtype), \
                    torch.autograd.graph.saved_tensors_hooks(_keep, _keep):
                for s in range(0, flat.shape[0], ctx.tile):
                    xs = flat[s:s + ctx.tile].detach().requires_grad_(gx is not None)
                    y = ctx.fn(xs)
                    if y.requires_grad:
                        torch.autograd.backward(y, g[s:s + ctx.tile])
                    if gx is not None:
                        gx[s:s + ctx.tile] = xs.grad if xs.grad is not None else 0
        return None, None, (gx.view_as(x) if gx is not None else None), None


# Decoder layers whose MLP output goes straight into the residual sum and nowhere else (checked against
# transformers 5's modeling code). Others (Gemma's and OLMo2's post-feed-forward norm saves that output,
# Phi-3 drops it out) always compute the recompute's tiles.
RESIDUAL_MLP_LAYERS = frozenset({"LlamaDecoderLayer", "Qwen2DecoderLayer", "Qwen3DecoderLayer",
                                 "MistralDecoderLayer", "SmolLM3DecoderLayer"})


def _in_recompute() -> bool:
    # A forward with gradients inside a running backward: a gradient-checkpointing recompute (reentrant or
    # not). torch.utils.checkpoint keys its own recompute state by this same graph-task id.
    return torch.is_grad_enabled() and torch._C._current_graph_task_id() != -1


class _TiledForward:
    """Replaces an MLP module's `forward`: inputs longer than `tile` tokens go through TiledMLPFunction.
    `skip_recompute`: the MLP's layer only adds its output to the residual (RESIDUAL_MLP_LAYERS)."""

    def __init__(self, forward, tile: int, skip_recompute: bool = False):
        self.forward, self.tile, self.skip_recompute = forward, tile, skip_recompute

    def __call__(self, x, *args, **kwargs):
        if args or kwargs or x.shape[:-1].numel() <= self.tile:
            return self.forward(x, *args, **kwargs)
        compute = not (self.skip_recompute and _in_recompute())
        CALLS["tiled_mlp" if compute else "tiled_mlp_recompute_skipped"] += 1
        return TiledMLPFunction.apply(self.forward, self.tile, x, compute)


def _decoder_mlps(model: nn.Module):
    # (layer, MLP) of decoder layers with a dense gated MLP (Llama, Qwen2/3, Mistral, SmolLM3, Gemma...):
    # a per-token map x -> x. MoE blocks return router outputs as well and are left alone.
    for module in model.modules():
        mlp = getattr(module, "mlp", None)
        if isinstance(mlp, nn.Module) and hasattr(mlp, "down_proj") and hasattr(module, "self_attn"):
            yield module, mlp


def tile_mlps(model: nn.Module, tile_tokens: int) -> int:
    """Make every decoder MLP of `model` run `tile_tokens` tokens at a time (in place; returns how many
    MLPs were tiled). Call before or after PEFT wraps the model: the LoRA layers are looked up at call time."""
    if tile_tokens < 1:
        raise ValueError(f"mlp_tile_tokens must be >= 1, got {tile_tokens}")
    n = 0
    for layer, mlp in _decoder_mlps(model):
        current = mlp.__dict__.get("forward")
        if isinstance(current, _TiledForward):
            current.tile = tile_tokens
        else:
            mlp.forward = _TiledForward(mlp.forward, tile_tokens,
                                        skip_recompute=type(layer).__name__ in RESIDUAL_MLP_LAYERS)
        n += 1
    if n == 0:
        logger.warning("mlp_tile_tokens ignored: no dense decoder MLP (a module with down_proj) found in %s",
                       type(model).__name__)
    return n


def untile_mlps(model: nn.Module) -> int:
    """Undo `tile_mlps`."""
    n = 0
    for _, mlp in _decoder_mlps(model):
        if isinstance(mlp.__dict__.get("forward"), _TiledForward):
            del mlp.forward
            n += 1
    return n


# --------------------------------------------------------------------------- segmented attention


def segments_marker(layout: list[tuple[int, int, int]]) -> torch.Tensor:
    """The `attention_mask` a packed shared-prompt forward passes instead of a dense mask: an int64
    [rows, 1, 1, 3] CPU tensor of (prompt_len, chosen_end, total) per row (see dpo.pair_layout).
    transformers hands a 4-D mask to the attention function unchanged, through gradient checkpointing
    too, so the layout reaches every layer's recompute."""
    rows = [(p, lc, lc + lr - p) for p, lc, lr in layout]
    return torch.tensor(rows, dtype=torch.int64).view(len(rows), 1, 1, 3)


def _is_marker(mask) -> bool:
    return (isinstance(mask, torch.Tensor) and mask.dtype == torch.int64 and mask.dim() == 4
            and tuple(mask.shape[-2:]) == (1, 3))


def segmented_sdpa_forward(module, query, key, value, attention_mask, **kwargs):
    """transformers attention function. With a `segments_marker` mask, each packed row [prompt, chosen,
    rejected, pad] is attended as two causal SDPA calls: [prompt, chosen] and [prompt, rejected] (the
    prompt's queries are computed again in the second and dropped). Both calls pass no mask, so SDPA can
    pick its flash kernel, as it does for stock TRL's unpacked rows; memory is linear in the length.
    Any other mask goes to transformers' own SDPA function unchanged."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if not _is_marker(attention_mask):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    kwargs.pop("is_causal", None)
    CALLS["segmented_attention"] += 1
    width = query.shape[2]
    rows = []
    for i, (p, lc, total) in enumerate(attention_mask.view(-1, 3).tolist()):
        q, k, v = query[i:i + 1], key[i:i + 1], value[i:i + 1]
        chosen, _ = sdpa_attention_forward(module, q[:, :, :lc], k[:, :, :lc], v[:, :, :lc], None,
                                           is_causal=True, **kwargs)
        q_r, k_r, v_r = (torch.cat([t[:, :, :p], t[:, :, lc:total]], dim=2) for t in (q, k, v))
        rejected, _ = sdpa_attention_forward(module, q_r, k_r, v_r, None, is_causal=True, **kwargs)
        parts = [chosen, rejected[:, p:]]
        if total < width:  # padding positions: never attended to, never scored
            parts.append(chosen.new_zeros(1, width - total, *chosen.shape[2:]))
        rows.append(torch.cat(parts, dim=1))
    return torch.cat(rows), None


def register_segmented_attention() -> str:
    """Register SEGMENTED_ATTENTION with transformers (attention function + SDPA's own mask builder, so
    calls without a marker, e.g. generation, build the same masks as "sdpa"). Returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(SEGMENTED_ATTENTION, segmented_sdpa_forward)
    AttentionMaskInterface.register(SEGMENTED_ATTENTION, sdpa_mask)
    return SEGMENTED_ATTENTION


def use_segmented_attention(model: nn.Module) -> bool:
    """Switch `model` (SDPA or eager attention) to SEGMENTED_ATTENTION in place. Returns False, leaving it
    alone, for other kernels (flash-attention packs sequences its own way)."""
    config = getattr(model, "config", None)
    impl = getattr(config, "_attn_implementation", None)
    if impl == SEGMENTED_ATTENTION:
        return True
    if impl not in ("sdpa", "eager"):
        logger.warning("segmented_attention ignored: attention implementation is %r (needs sdpa or eager)", impl)
        return False
    register_segmented_attention()
    try:
        model.set_attn_implementation(SEGMENTED_ATTENTION)
    except (AttributeError, ValueError) as e:  # pragma: no cover - transformers without run-time switching
        logger.info("set_attn_implementation failed (%s); setting the config field directly", e)
        config._attn_implementation = SEGMENTED_ATTENTION
    return config._attn_implementation == SEGMENTED_ATTENTION
