"""GPU benchmark of stage B (one DPO step, QLoRA r=16 all-linear): peak reserved memory and tokens/s of
(a) two 4-bit models (the seed's hand-written loop), (b) stock TRL 1.16 DPOTrainer with PEFT defaults,
(c) halluguard's `fit` and `fast` profiles and single levers, all in ONE process on the same 4-bit model.

    python benchmarks/gpu_dpo.py make --arch llama3_8b          # random-init bf16 on the GPU, saved once
    python benchmarks/gpu_dpo.py run --arch llama3_8b --configs stock:2048,fit:2048,fast:2048:auto \
        --out $OUT/dpo_llama3_8b.jsonl

Each config prints one `RESULT {...}` line (and appends it to --out). Config syntax: MODE:SEQ[:PAIRS[:STEPS]],
PAIRS an integer or `auto` (the planner's micro-batch for --cap-gb), STEPS overriding --steps. MODE is
`stock` (b), `two_model` (a), `fit`, `fast`, `long`, `stock+LEVER[+LEVER...]` with LEVER in offload, embcpu,
split, share, expandable, adam8bit, precompute, nogc, tile, segment, stash2, tile4096, gpuemb, noskip
(halluguard's trainer with those levers on top of stock; `long+LEVER...` on top of long), or stage A:
`sft_stock` (TRL's SFTTrainer) / `sft_long[+LEVER...]` (HalluguardSFTConfig). `noskip` runs the tiled
MLPs' checkpoint recompute as the code before the recompute skip did (an A/B in one run).
`--probe-attention` first records which SDPA kernels run the architecture's attention (long documents:
`--arch llama31_8b`, a 128k context). Between configs the LoRA is unloaded,
patches are removed and the cache emptied; `base_alloc_gib` in each result shows the memory the
previous configs left behind (should stay equal). `two_model` runs last (it upcasts the model).

Needs CUDA, bitsandbytes, trl 1.16. Models are random-init real architectures: memory and speed are
those of the real model; quality is meaningless.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ARCH = {
    "llama3_8b": {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                      "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
                      "max_position_embeddings": 8192, "rope_theta": 500000.0, "tie_word_embeddings": False},
    "qwen25_3b": {"model_type": "qwen2", "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
                      "num_attention_heads": 16, "num_key_value_heads": 2, "vocab_size": 151936,
                      "max_position_embeddings": 32768, "tie_word_embeddings": True},
    "qwen25_7b": {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                      "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
                      "max_position_embeddings": 32768, "tie_word_embeddings": False},
    # The 3B scorer base (halluguard.loading.DEFAULT_VERIFIER_BASE); numbers as in the planner's smollm3-3b.json.
    "smollm3_3b": {"model_type": "smollm3", "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
                      "num_attention_heads": 16, "num_key_value_heads": 4, "vocab_size": 128256,
                      "max_position_embeddings": 65536, "rope_theta": 5000000.0, "tie_word_embeddings": True},
}
# Llama-3.1-8B: Llama-3-8B's shape with llama3 RoPE scaling and a 128k context, for 32k-64k-token rows.
ARCH["llama31_8b"] = {**{k: v for k, v in ARCH["llama3_8b"].items() if k != "rope_theta"},
                      "max_position_embeddings": 131072,
                      "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                          "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                          "original_max_position_embeddings": 8192}}
# A tiny architecture for smoke-testing this script on a CPU (HG_BENCH_CPU=1).
ARCH["tiny_llama"] = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                          "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
                          "max_position_embeddings": 1024, "tie_word_embeddings": False}
PLANNER_ALIAS = {"llama3_8b": "llama3-8b", "llama31_8b": "llama3-8b", "qwen25_3b": "qwen2.5-3b", "qwen25_7b": "qwen2.5-7b",
                 "smollm3_3b": "smollm3-3b"}
GIB = 2**30


def model_dir(arch: str) -> str:
    return os.path.join(os.environ.get("HG_BENCH_DIR", tempfile.gettempdir()), f"hg_{arch}")


def word_tokenizer(vocab_size: int):
    """A word-level tokenizer over `vocab_size` ids ('w0' .. ), so random text maps 1:1 onto ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(vocab_size - 2)}
    vocab["<pad>"] = vocab_size - 2
    vocab["</s>"] = vocab_size - 1
    tk = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>")


def make(arch: str) -> str:
    """Build the random-init architecture in bf16 on the GPU and save it (+ tokenizer) once."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    path = model_dir(arch)
    if os.path.exists(os.path.join(path, "config.json")) and os.path.exists(os.path.join(path, "tokenizer.json")):
        return path
    kw = dict(ARCH[arch])
    cfg = AutoConfig.for_model(kw.pop("model_type"), **kw)
    cfg.pad_token_id = cfg.vocab_size - 2
    cfg.eos_token_id = cfg.vocab_size - 1
    t = time.time()
    torch.manual_seed(0)
    with torch.device("cpu" if os.environ.get("HG_BENCH_CPU") else "cuda"):
        m = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    m.save_pretrained(path, max_shard_size="4GB")
    word_tokenizer(cfg.vocab_size).save_pretrained(path)
    n = sum(p.numel() for p in m.parameters())
    print(f"made {arch}: {n / 1e9:.2f}B params in {time.time() - t:.0f}s -> {path}", flush=True)
    del m
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return path


def device_map():
    return {"": "cpu"} if os.environ.get("HG_BENCH_CPU") else {"": 0}


def shape_of(arch: str):
    from halluguard import planner

    return planner.load_shape(PLANNER_ALIAS.get(arch) or model_dir(arch))


def load_4bit(path: str):
    """Load through halluguard's loader (H1); bitsandbytes directly if the loader is not importable."""
    import torch

    try:
        from halluguard.loading import load_model

        model, _ = load_model(path, quantization="nf4", dtype="bfloat16", device_map=device_map())
        how = "halluguard.loading.load_model"
    except ImportError:
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
        model = AutoModelForCausalLM.from_pretrained(path, quantization_config=q, dtype=torch.bfloat16,
                                                     device_map=device_map())
        how = "transformers+bitsandbytes"
    # The word-level tokenizer is built here, not loaded: AutoTokenizer would pick the architecture's own
    # tokenizer class (e.g. Qwen2's byte-level BPE) for these configs and turn "w123" words into few tokens.
    tok = word_tokenizer(model.config.vocab_size)
    return model, tok, how


def preference_data(vocab: int, seq: int, n: int, seed: int):
    """n random pairs: prompt of 3/4 seq, completions of seq/4 - 2 words (+ eos), like the anchor probe."""
    import torch
    from datasets import Dataset

    g = torch.Generator().manual_seed(seed)

    def words(k):
        return " ".join(f"w{int(i)}" for i in torch.randint(0, vocab - 2, (k,), generator=g))

    p, c = seq * 3 // 4, seq // 4 - 2
    return Dataset.from_list([{"prompt": words(p), "chosen": " " + words(c), "rejected": " " + words(c)}
                              for _ in range(n)])


def lora_config():
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


def parse_config(text: str) -> tuple[str, int, str, int | None]:
    parts = text.split(":")
    if len(parts) not in (2, 3, 4):
        raise ValueError(f"config {text!r}: expected MODE:SEQ[:PAIRS[:STEPS]]")
    steps = int(parts[3]) if len(parts) == 4 else None
    return parts[0], int(parts[1]), parts[2] if len(parts) >= 3 else "1", steps


LEVERS = {
    "offload": {"activation_offloading": True},
    "embcpu": {"embeddings_on_cpu": True},
    "split": {"sequences_per_forward": 1},
    "share": {"share_prompt": True},
    "expandable": {"expandable_segments": True},
    "adam8bit": {"optim": "adamw_8bit"},
    "precompute": {"precompute_ref_log_probs": True},
    "nogc": {"gradient_checkpointing": False},
    "tile": {"mlp_tile_tokens": 2048},
    "segment": {"segmented_attention": True},
    "stash2": {"offload_stash_size": 2},
    "tile4096": {"mlp_tile_tokens": 4096},
    "gpuemb": {"embeddings_on_cpu": False},
    # benchmark-only A/B: the tiled MLPs run the tiles in the checkpoint recompute too (the code before the
    # recompute skip, halluguard.train.tiling), so one run measures both
    "noskip": {},
}


def parse_levers(mode: str) -> dict:
    levers = {}
    for lever in mode.split("+")[1:]:
        if lever not in LEVERS:
            raise ValueError(f"unknown lever {lever!r} in {mode!r}; choose from {sorted(LEVERS)}")
        levers.update(LEVERS[lever])
    return levers


def cleanup(model, base_state):
    """Return the shared model to its loaded state: no LoRA, no patched forward, embeddings on GPU."""
    import torch
    from peft import PeftModel

    from halluguard.train.dpo import restore_input_embeddings

    if isinstance(model, PeftModel):
        model = model.unload()
    # The current device, not cuda:0: under DDP (benchmarks/multi_gpu.py) rank 1 owns cuda:1.
    restore_input_embeddings(model, device="cpu" if os.environ.get("HG_BENCH_CPU") else
                             f"cuda:{torch.cuda.current_device()}")
    model.__dict__.pop("forward", None)
    model.__dict__.pop("peft_config", None)
    from halluguard.train.tiling import SEGMENTED_ATTENTION, untile_mlps

    untile_mlps(model)
    if getattr(model.config, "_attn_implementation", None) == SEGMENTED_ATTENTION:
        model.set_attn_implementation("sdpa")
    if getattr(model, "_require_grads_hook", None) is not None:
        model.disable_input_require_grads()
    if hasattr(model, "gradient_checkpointing_disable"):
        model.gradient_checkpointing_disable()
    gc.collect()
    torch.cuda.empty_cache()
    return model


def sft_data(vocab: int, seq: int, n: int, seed: int):
    """n random prompt-completion rows with the DPO rows' split: prompt 3/4 seq, completion seq/4 - 2 words."""
    import torch
    from datasets import Dataset

    g = torch.Generator().manual_seed(seed)

    def words(k):
        return " ".join(f"w{int(i)}" for i in torch.randint(0, vocab - 2, (k,), generator=g))

    return Dataset.from_list([{"prompt": words(seq * 3 // 4), "completion": " " + words(seq // 4 - 2)}
                              for _ in range(n)])


def stage_config(mode: str, common: dict):
    """(TRL config, trainer class, planner settings, preference?) for a config's MODE."""
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from halluguard import planner
    from halluguard.train.dpo import HalluguardDPOConfig, HalluguardDPOTrainer
    from halluguard.train.sft import HalluguardSFTConfig, HalluguardSFTTrainer

    if mode == "stock":
        return DPOConfig(**common), DPOTrainer, planner.StageBSettings.profile("stock"), True
    if mode == "sft_stock":
        return SFTConfig(**common), SFTTrainer, planner.StageBSettings.profile("stock"), False
    if mode.startswith("sft_"):  # sft_long[+LEVER...]
        args = HalluguardSFTConfig(**{**common, **parse_levers(mode)}, memory_profile=mode[4:].split("+")[0])
        return args, HalluguardSFTTrainer, planner.StageBSettings.from_dpo_config(args), False
    if mode.split("+")[0] in ("fit", "fast", "long"):
        args = HalluguardDPOConfig(**{**common, **parse_levers(mode)}, memory_profile=mode.split("+")[0])
    elif mode.startswith("stock+"):
        args = HalluguardDPOConfig(**{**common, **parse_levers(mode)}, memory_profile="stock")
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return args, HalluguardDPOTrainer, planner.StageBSettings.from_dpo_config(args), True


def run_trainer(model, tok, arch, mode, seq, pairs_arg, idx, cap_gb, steps, out_dir):
    import torch
    from transformers import TrainerCallback

    from halluguard import planner
    from halluguard.train import tiling
    from halluguard.train.dpo import set_expandable_segments

    shape = shape_of(arch)
    common = {"output_dir": os.path.join(out_dir, f"run{idx}"), "max_length": seq, "max_steps": steps, "logging_steps": 1,
                  "learning_rate": 5e-6, "bf16": True, "gradient_checkpointing": True, "report_to": [], "save_strategy": "no",
                  "disable_tqdm": True}
    if os.environ.get("HG_BENCH_CPU"):  # smoke-testing this script on a CPU with a tiny model
        common.update(bf16=False, use_cpu=True)
    args, trainer_cls, settings, preference = stage_config(mode, common)
    if os.environ.get("HG_BENCH_CPU"):
        args.activation_offloading = False  # TRL's offloading needs an accelerator
    if pairs_arg == "auto":
        pairs = planner.max_pairs_per_step(shape, seq, cap_gb, settings)
    else:
        pairs = int(pairs_arg)
    args.per_device_train_batch_size = pairs
    # Allocator mode is process-wide: set it for every config so one config's choice does not leak.
    set_expandable_segments(bool(getattr(args, "expandable_segments", False)))
    planned = planner.estimate_train_step(shape, seq, pairs, settings, preference=preference).peak_gib

    make_data = preference_data if preference else sft_data
    ds = make_data(shape.vocab, seq, steps * pairs, seed=1000 + idx)
    tiling.CALLS.clear()
    torch.cuda.synchronize()
    base_alloc = torch.cuda.memory_allocated() / GIB
    torch.cuda.reset_peak_memory_stats()
    t_init = time.time()
    trainer = trainer_cls(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=lora_config())
    init_s = time.time() - t_init
    if "+noskip" in mode:
        for mlp_forward in (m.__dict__.get("forward") for m in model.modules()):
            if isinstance(mlp_forward, tiling._TiledForward):
                mlp_forward.skip_recompute = False
    ex = trainer.train_dataset[0]
    if preference:
        example_len = len(ex["prompt_ids"]) + max(len(ex["chosen_ids"]), len(ex["rejected_ids"]))
    else:
        example_len = len(ex["input_ids"])
    if example_len < 0.9 * seq:  # the tokenizer did not map words 1:1 onto ids: the numbers would be wrong
        raise ValueError(f"tokenized example has {example_len} tokens, expected about {seq}")
    peak_init_reserved = torch.cuda.max_memory_reserved() / GIB
    torch.cuda.reset_peak_memory_stats()
    times = []
    profile = os.environ.get("HG_PROFILE") == f"{mode}:{seq}"  # profile the last step of this mode (not timed)

    class Timer(TrainerCallback):
        def on_step_begin(self, args_, state, control, **k):
            torch.cuda.synchronize()
            self.prof = None
            if profile and state.global_step == steps - 1:
                self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                                               torch.profiler.ProfilerActivity.CUDA])
                self.prof.__enter__()
            self.t = time.time()

        def on_step_end(self, args_, state, control, **k):
            torch.cuda.synchronize()
            if self.prof is not None:
                self.prof.__exit__(None, None, None)
                ka = self.prof.key_averages()
                print(ka.table(sort_by="self_cuda_time_total", row_limit=20), flush=True)
                print(ka.table(sort_by="self_cpu_time_total", row_limit=15), flush=True)
                return
            times.append(time.time() - self.t)

    trainer.add_callback(Timer())
    model.train()
    trainer.train()
    peak_res = torch.cuda.max_memory_reserved() / GIB
    peak_alloc = torch.cuda.max_memory_allocated() / GIB
    step_s = statistics.median(times[1:]) if len(times) > 1 else times[0]
    tokens = (2 if preference else 1) * seq * pairs
    pre_s = getattr(trainer, "ref_precompute_seconds", 0.0)
    res = {
        "arch": arch, "mode": ("stock_trl" if mode == "stock" else mode), "seq": seq, "pairs": pairs,
        "peak_reserved_gib": round(peak_res, 2), "peak_alloc_gib": round(peak_alloc, 2),
        "peak_reserved_incl_init_gib": round(max(peak_res, peak_init_reserved), 2),
        "planned_gib": round(planned, 2), "step_s": round(step_s, 3), "tokens_per_s": round(tokens / step_s, 1),
        "ref_precompute_s": round(pre_s, 2),
        "tokens_per_s_incl_ref": round(tokens / (step_s + pre_s / steps), 1),
        "init_s": round(init_s, 1), "base_alloc_gib": round(base_alloc, 3), "steps_timed": len(times) - 1,
        "embeddings_offloaded": bool(getattr(trainer, "embeddings_offloaded", False)),
        "pairs_per_s": round(pairs / step_s, 3), "example_tokens": example_len,
        "attn_implementation": model.config._attn_implementation, "lever_calls": dict(tiling.CALLS),
    }
    if hasattr(trainer, "shared_prompt_calls"):
        res["fused_calls"] = trainer.shared_prompt_calls()
    if mode not in ("stock", "sft_stock"):
        res["settings"] = {k: getattr(args, k, None) for k in (
            "gradient_checkpointing", "activation_offloading", "embeddings_on_cpu", "sequences_per_forward",
            "share_prompt", "logp_chunk_size", "expandable_segments", "precompute_ref_log_probs", "optim",
            "mlp_tile_tokens", "segmented_attention", "offload_stash_size")}
        res["settings"]["optim"] = str(getattr(args.optim, "value", args.optim))
    peft_model = trainer.model
    trainer.accelerator.free_memory()
    del trainer
    model = cleanup(peft_model, None)
    return res, model


def run_two_model(model, path, arch, seq, steps):
    """(a): the seed's loop: policy (prepare_model_for_kbit_training + LoRA) and a separate 4-bit reference,
    full logits. Mutates `model` (fp32 upcast), so it runs last."""
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training

    from halluguard import planner

    shape = shape_of(arch)
    planned = planner.estimate_train_step(shape, seq, 1, planner.StageBSettings.profile("seed")).peak_gib
    torch.cuda.reset_peak_memory_stats()
    pol = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    pol = get_peft_model(pol, lora_config())
    pol.train()
    ref, _, _ = load_4bit(path)
    opt = torch.optim.AdamW([p for p in pol.parameters() if p.requires_grad], lr=1e-5)
    V = shape.vocab
    dev = "cpu" if os.environ.get("HG_BENCH_CPU") else "cuda"
    ids = torch.randint(0, V - 2, (2, seq), device=dev)
    mask = torch.zeros(2, seq, device=dev)
    mask[:, seq * 3 // 4:] = 1

    def seq_logp(m, x):
        logits = m(input_ids=x).logits[:, :-1].float()
        lp = torch.log_softmax(logits, -1).gather(-1, x[:, 1:, None]).squeeze(-1)
        return (lp * mask[:, 1:]).sum(-1)

    times = []
    for _ in range(steps):
        torch.cuda.synchronize()
        t = time.time()
        with torch.no_grad():
            r = seq_logp(ref, ids)
        p = seq_logp(pol, ids)
        loss = -torch.nn.functional.logsigmoid(0.1 * ((p[0] - r[0]) - (p[1] - r[1])))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.time() - t)
    step_s = statistics.median(times[1:])
    return {"arch": arch, "mode": "two_model", "seq": seq, "pairs": 1,
                "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / GIB, 2),
                "peak_alloc_gib": round(torch.cuda.max_memory_allocated() / GIB, 2), "planned_gib": round(planned, 2),
                "step_s": round(step_s, 3), "tokens_per_s": round(2 * seq / step_s, 1), "steps_timed": len(times) - 1}


def attention_kernel_probe(arch: str, seq: int = 16384) -> dict:
    """Which SDPA kernel runs the attention of `arch` at `seq` tokens, forward + backward, bf16:
    (1) causal without a mask and GQA heads, as stock TRL's rows and the segmented attention call it;
    (2) a dense [L, L] bool mask, as the `fit` profile's shared-prompt rows call it (K/V repeated to all
    heads, as transformers does when there is a mask). For each: the backends that accept it when forced
    one at a time, and the CUDA kernels a default call launches (profiler names), so a silent fall-back to
    the O(n^2) math path would show."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    c = ARCH[arch]
    heads, kv, d = c["num_attention_heads"], c["num_key_value_heads"], c["hidden_size"] // c["num_attention_heads"]
    dev = "cuda"

    def tensors(n_kv):
        q = torch.randn(1, heads, seq, d, device=dev, dtype=torch.bfloat16, requires_grad=True)
        k = torch.randn(1, n_kv, seq, d, device=dev, dtype=torch.bfloat16, requires_grad=True)
        v = torch.randn(1, n_kv, seq, d, device=dev, dtype=torch.bfloat16, requires_grad=True)
        return q, k, v

    cases = {
        "causal_gqa_no_mask": (lambda: tensors(kv), {"is_causal": True, "enable_gqa": True}),
        "dense_bool_mask": (lambda: tensors(heads),
                            {"attn_mask": torch.ones(seq, seq, device=dev, dtype=torch.bool).tril()[None, None]}),
    }
    out = {"arch": arch, "mode": "sdpa_probe", "seq": seq}
    for name, (make_qkv, kw) in cases.items():
        accepted = []
        for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
            q, k, v = make_qkv()
            try:
                with sdpa_kernel([backend]):
                    F.scaled_dot_product_attention(q, k, v, **kw).sum().backward()
                accepted.append(backend.name)
            except RuntimeError:
                pass
        q, k, v = make_qkv()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            F.scaled_dot_product_attention(q, k, v, **kw).sum().backward()
            torch.cuda.synchronize()
        kernels = sorted({e.key for e in prof.key_averages() if any(
            w in e.key.lower() for w in ("flash", "fmha", "cudnn", "softmax", "gemm", "efficient", "attention"))})
        out[name] = {"backends_accepted": accepted, "default_kernels": kernels[:8],
                     "peak_alloc_gib": round(torch.cuda.max_memory_allocated() / GIB, 2)}
        del q, k, v
    torch.cuda.empty_cache()
    return out


def emit(res: dict, out: str | None, extra: dict):
    res = {**res, **extra}
    line = json.dumps(res)
    print("RESULT", line, flush=True)
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["make", "run"])
    ap.add_argument("--arch", required=True, choices=sorted(ARCH))
    ap.add_argument("--configs", default="stock:2048,fit:2048,fast:2048:auto")
    ap.add_argument("--steps", type=int, default=5, help="optimizer steps per config; the first is warm-up")
    ap.add_argument("--cap-gb", type=float, default=12.0, help="memory cap for PAIRS=auto")
    ap.add_argument("--out", default=None, help="append RESULT JSON lines here")
    ap.add_argument("--probe-attention", action="store_true",
                    help="first record which SDPA kernels run the arch's attention shapes (see attention_kernel_probe)")
    a = ap.parse_args(argv)
    if a.action == "make":
        make(a.arch)
        return 0
    import torch
    import transformers
    import trl

    logging_quiet()
    if os.environ.get("HG_BENCH_CPU"):
        cpu_memory_stats_stub()
    path = make(a.arch)
    t = time.time()
    model, tok, how = load_4bit(path)
    print(f"loaded {a.arch} in 4-bit via {how} in {time.time() - t:.0f}s; "
          f"{torch.cuda.memory_allocated() / GIB:.2f} GiB allocated", flush=True)
    extra = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "torch": torch.__version__, "transformers": transformers.__version__,
                 "trl": trl.__version__, "loader": how}
    configs = [parse_config(c) for c in a.configs.split(",") if c]
    out_dir = tempfile.mkdtemp()
    two = [c for c in configs if c[0] == "two_model"]
    if a.probe_attention:
        emit(attention_kernel_probe(a.arch), a.out, extra)
    for idx, (mode, seq, pairs, steps) in enumerate(c for c in configs if c[0] != "two_model"):
        failed = False
        try:
            res, model = run_trainer(model, tok, a.arch, mode, seq, pairs, idx, a.cap_gb, steps or a.steps, out_dir)
        except Exception as e:  # noqa: BLE001 - one failing config must not hide the others' numbers
            import traceback

            traceback.print_exc()
            kind = "OOM" if isinstance(e, torch.OutOfMemoryError) else type(e).__name__
            res = {"arch": a.arch, "mode": mode, "seq": seq, "pairs": pairs, "error": f"{kind}: {str(e)[:300]}"}
            failed = True
        emit(res, a.out, extra)
        if failed:
            # The failed trainer may have left LoRA layers or patches in the model: start from a fresh load
            # (outside the except block, so the traceback no longer pins the old one).
            del model
            gc.collect()
            torch.cuda.empty_cache()
            model, tok, _ = load_4bit(path)
    for mode, seq, _, _ in two:
        try:
            res = run_two_model(model, path, a.arch, seq, a.steps)
        except torch.OutOfMemoryError as e:
            res = {"arch": a.arch, "mode": "two_model", "seq": seq, "error": f"OOM: {str(e)[:200]}"}
        emit(res, a.out, extra)
    return 0


def cpu_memory_stats_stub():
    """HG_BENCH_CPU: the torch.cuda calls the measurement makes become no-ops reporting 0 bytes, so the
    script's code paths can be smoke-tested on a CPU-only torch."""
    import torch

    for name in ("synchronize", "reset_peak_memory_stats", "empty_cache"):
        setattr(torch.cuda, name, lambda *a, **k: None)
    for name in ("max_memory_reserved", "max_memory_allocated", "memory_allocated"):
        setattr(torch.cuda, name, lambda *a, **k: 0)


def logging_quiet():
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    os.environ.setdefault("TQDM_DISABLE", "1")


if __name__ == "__main__":
    raise SystemExit(main())
