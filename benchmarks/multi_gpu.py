"""Stage B and the 3B scorer on two GPUs (DDP, DeepSpeed ZeRO-3) against one GPU, and a 20-step check
that one and two processes train the same LoRA. The whole measurement is ONE call of
`benchmarks/multi_gpu.sh` on a two-GPU machine; this file is what it launches.

    python benchmarks/multi_gpu.py make --arch llama3_8b                       # random-init, saved once
    python benchmarks/multi_gpu.py run --arch llama3_8b --configs fit:2048,fast:2048:4 --out R.jsonl   # one GPU
    accelerate launch --config_file training/accelerate/ddp.yaml benchmarks/multi_gpu.py run ...      # DDP
    accelerate launch --config_file training/accelerate/zero3.yaml benchmarks/multi_gpu.py run \
        --arch llama3_8b --configs fit:2048 --out R.jsonl                         # ZeRO-3, one config per launch
    python benchmarks/multi_gpu.py run --arch smollm3_3b --agree 1x2,2x1 --save DIR                  # one GPU
    accelerate launch --config_file training/accelerate/ddp.yaml benchmarks/multi_gpu.py run \
        --arch smollm3_3b --agree 1x1 --save DIR                                  # two GPUs
    python benchmarks/multi_gpu.py compare --save DIR --out R.jsonl
    python benchmarks/multi_gpu.py summarize --out R.jsonl        # scaling rows: 2 GPUs vs 1, same call

`run --configs`: one RESULT row per config (syntax MODE:SEQ[:PAIRS] as in benchmarks/gpu_dpo.py, PAIRS per GPU):
peak reserved memory of every GPU (from the start of training, after the ZeRO-3 partitioning; and
including loading and set-up), tokens/s in total and per GPU, the planner's per-GPU estimate.
Under ZeRO-3 each config needs its own launch (DeepSpeed keeps the partitioned model).

`run --agree`: the same `--agree-steps` optimizer steps on the same pairs, in order (sequential sampler), with a
global batch of `--global-batch` pairs. `--agree PxA` = P pairs per process and A accumulation steps
(P x A x processes must equal the global batch). Saves the loss of every step and the final LoRA weights.
`compare` checks a two-process run against the one-process run `1xG` (accumulation): the tolerance is
3x the spread between the two one-process runs, which differ only in reduction order (batched `Gx1`
against accumulated `1xG`), and at least 4 units of the dtype's relative precision (bf16 2^-8, fp32
2^-24, the unit roundoff) of the loss / of the LoRA update. See docs/training.md, "More than one GPU".

Random-init real architectures (no weights are downloaded): memory and speed are those of the real
model, quality is meaningless. HG_BENCH_CPU=1 runs everything on the CPU (tiny models, fp32, gloo):
tests/test_multi_gpu.py does that. The 4-bit variant of that check (docs/training.md reports it):

    export HG_BENCH_CPU=1 HG_BENCH_QUANT=nf4 OMP_NUM_THREADS=1; A="--arch tiny_llama --agree-seq 64 --agree-mode stock --lr 1e-3 --save /tmp/agq"
    python benchmarks/multi_gpu.py run $A --agree 1x2,2x1
    torchrun --nproc_per_node 2 benchmarks/multi_gpu.py run $A --agree 1x1                 # DDP (gloo)
    env DS_ACCELERATOR=cpu ACCELERATE_USE_DEEPSPEED=true ACCELERATE_DEEPSPEED_ZERO3_INIT=true \
        ACCELERATE_MIXED_PRECISION=no ACCELERATE_DEEPSPEED_CONFIG_FILE=training/accelerate/zero3_ds.json \
        torchrun --nproc_per_node 2 --master_port 29501 benchmarks/multi_gpu.py run $A --agree 1x1   # ZeRO-3
    python benchmarks/multi_gpu.py compare --save /tmp/agq
(the ZeRO-3 environment is what `accelerate launch --config_file training/accelerate/zero3.yaml` sets;
HG_BENCH_QUANT_STORAGE=bfloat16 loads the one-process runs with ZeRO-3's bf16 storage.)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (str(ROOT), str(ROOT / "benchmarks")):  # the GPU machine runs the checkout uninstalled
    if _p not in sys.path:
        sys.path.insert(0, _p)

import gpu_dpo  # the one-GPU benchmark's model builder, data, LoRA config and clean-up

GIB = 2**30
EPS = {"bfloat16": 2.0**-8, "float32": 2.0**-24}  # unit roundoff: the largest relative error of rounding one value
NOISE_FACTOR = 3.0  # how far beyond the measured reduction-order spread a two-process run may land
EPS_UNITS = 4.0  # the floor, in units of EPS, when the two reference runs happen to agree exactly


def on_cpu() -> bool:
    return bool(os.environ.get("HG_BENCH_CPU"))


def world() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def strategy() -> str:
    """What the launcher set up: single, ddp or zero3 (the planner's names)."""
    if world()[1] <= 1:
        return "single"
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        return "zero3"
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return "fsdp"
    return "ddp"


def cpu_deepspeed() -> None:
    """On the CPU, DeepSpeed JIT-compiles a shared-memory all-reduce with g++ the first time (minutes on a
    small machine, and a lock that a killed run leaves behind hangs every later one). gloo does the same
    job: skip the op. GPUs (NCCL) never build it."""
    if on_cpu() and strategy() == "zero3":
        import importlib

        # importlib, not `import deepspeed.comm.torch as m`: deepspeed.comm's attribute `torch` is torch itself.
        importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None


def say(*args) -> None:
    if world()[0] == 0:
        print(*args, flush=True)


# --------------------------------------------------------------------------------------------- set-up
def train_args(out_dir: str, mode: str, seq: int, steps: int, pairs: int, accum: int = 1, **extra):
    """(TRL config, trainer class, planner settings) of one run, from benchmarks/gpu_dpo.py's MODE table.
    Built BEFORE the model is loaded: under ZeRO-3 it registers the DeepSpeed config with transformers
    and, everywhere, pins this process to its GPU."""
    common = {"output_dir": out_dir, "max_length": seq, "max_steps": steps, "logging_steps": 1,
              "learning_rate": 5e-6, "bf16": not on_cpu(), "use_cpu": on_cpu(), "gradient_checkpointing": True,
              "report_to": [], "save_strategy": "no", "disable_tqdm": True, "per_device_train_batch_size": pairs,
              # ddp_find_unused_parameters is left to the Trainer (True for a PeftModel), as in training/dpo.py:
              # the benchmark measures what the shipped scripts run.
              "gradient_accumulation_steps": accum, **extra}
    args, trainer_cls, settings, preference = gpu_dpo.stage_config(mode, common)
    if not preference:
        raise ValueError(f"mode {mode!r} is SFT; this benchmark measures stage B (DPO)")
    return args, trainer_cls, settings


def load(path: str):
    """The base through the training stages' own loader: under ZeRO-3 it stores the 4-bit weights in bf16
    (`ModelSpec.quant_storage`) and leaves placement to DeepSpeed; under DDP each process gets its GPU."""
    import torch

    from halluguard.train.common import ModelArguments, load_base

    cpu = on_cpu()
    device_map = "cpu" if cpu else {"": torch.cuda.current_device()}
    # HG_BENCH_QUANT=nf4 with HG_BENCH_CPU: the 4-bit path (bitsandbytes' CPU kernels) on the CPU too.
    quant = os.environ.get("HG_BENCH_QUANT") or ("none" if cpu else "nf4")
    margs = ModelArguments(model_name_or_path=path, quantization=quant,
                           model_dtype="float32" if cpu else "bfloat16", device_map=device_map)
    storage = os.environ.get("HG_BENCH_QUANT_STORAGE")  # diagnostic: one process with ZeRO-3's bf16 storage
    if storage and strategy() != "zero3":
        from halluguard.loading import load_model

        model, _ = load_model(path, quantization=quant, dtype=margs.model_dtype, device_map=device_map,
                              quant_storage=storage)
    else:
        model, _ = load_base(margs)
    # The word-level tokenizer is built, not loaded (benchmarks/gpu_dpo.py says why).
    return model, gpu_dpo.word_tokenizer(model.config.vocab_size)


def sequential_trainer(base_cls):
    """`base_cls` reading the pairs in order, so one process with accumulation and two processes see the
    same pairs in the same optimizer step (accelerate deals batch i to process i mod N)."""

    class Sequential(base_cls):
        def _get_train_sampler(self, train_dataset=None):
            import torch

            return torch.utils.data.SequentialSampler(train_dataset or self.train_dataset)

    return Sequential


def step_logger():
    """A TrainerCallback timing each optimizer step and keeping each logged loss; it resets the peak
    memory counters when training starts (after DeepSpeed has partitioned the model)."""
    import torch
    from transformers import TrainerCallback

    cuda = torch.cuda.is_available() and not on_cpu()

    class StepLog(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []
            self.losses: list[float] = []
            self.peak_setup = 0.0

        def on_train_begin(self, args, state, control, **kw):
            if cuda:
                self.peak_setup = torch.cuda.max_memory_reserved() / GIB
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()

        def on_step_begin(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.t)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    return StepLog()


def shared_tmpdir(prefix: str) -> str:
    """A fresh folder, the same one in every process (output_dir must be shared: TRL's cached reference
    log-probs are written by the main process and read by all)."""
    if world()[1] <= 1:
        return tempfile.mkdtemp(prefix=prefix)
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState()  # sets up the process group if the training config has not yet
    path = [tempfile.mkdtemp(prefix=prefix) if state.is_main_process else None]
    broadcast_object_list(path, from_process=0)
    return path[0]


def gather(obj) -> list:
    """`obj` of every process (a one-element list without torch.distributed)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def lora_weights(model) -> dict:
    """CPU copy of the trained LoRA weights, gathered first when ZeRO-3 has partitioned them."""
    from halluguard.train.common import lora_state

    params = [p for n, p in model.named_parameters() if "lora_" in n and ".ref." not in n]
    ctx = contextlib.nullcontext()
    if any(hasattr(p, "ds_id") for p in params):
        import deepspeed

        ctx = deepspeed.zero.GatheredParameters(params, modifier_rank=None)
    with ctx:
        return lora_state(model)


# ---------------------------------------------------------------------------------------------- bench
def per_gpu_settings(settings, gpus: int, strat: str):
    from halluguard import planner

    return planner.with_gpus(settings, gpus, "ddp" if strat == "single" else strat)


def planned_gib(arch: str, settings, seq: int, pairs: int) -> float | None:
    from halluguard import planner

    try:
        return round(planner.estimate_train_step(gpu_dpo.shape_of(arch), seq, pairs, settings).peak_gib, 2)
    except (ValueError, FileNotFoundError):  # an architecture the planner has no config for
        return None


def bench_one(model, tok, arch: str, config: str, steps: int, cap_gb: float, idx: int) -> tuple[dict, object]:
    """One config: train `steps` steps, return (row, model with the LoRA removed)."""
    import torch

    from halluguard import planner

    mode, seq, pairs_arg, own_steps = gpu_dpo.parse_config(config)
    steps = own_steps or steps
    n, strat = world()[1], strategy()
    args, trainer_cls, settings = train_args(shared_tmpdir("hg_mgpu_"), mode, seq, steps, 1)
    settings = per_gpu_settings(settings, n, strat)
    shape = gpu_dpo.shape_of(arch)
    pairs = planner.max_pairs_per_step(shape, seq, cap_gb, settings) if pairs_arg == "auto" else int(pairs_arg)
    args.per_device_train_batch_size = pairs
    data = gpu_dpo.preference_data(shape.vocab, seq, steps * pairs * n, seed=1000 + idx)
    log = step_logger()
    trainer = trainer_cls(model=model, args=args, train_dataset=data, processing_class=tok,
                          peft_config=gpu_dpo.lora_config(), callbacks=[log])
    model.train()
    trainer.train()
    cuda = torch.cuda.is_available() and not on_cpu()
    mine = {"peak": torch.cuda.max_memory_reserved() / GIB if cuda else 0.0, "setup": log.peak_setup,
            "alloc": torch.cuda.max_memory_allocated() / GIB if cuda else 0.0}
    every = gather(mine)
    step_s = statistics.median(log.times[1:]) if len(log.times) > 1 else log.times[0]
    tokens = n * 2 * seq * pairs  # the anchors' definition: 2 sequences of `seq` per pair
    row = {"arch": arch, "mode": mode, "seq": seq, "pairs_per_gpu": pairs, "strategy": strat, "gpus": n,
           "peak_reserved_gib": round(max(e["peak"] for e in every), 2),
           "peak_reserved_per_gpu": [round(e["peak"], 2) for e in every],
           "peak_alloc_gib": round(max(e["alloc"] for e in every), 2),
           "peak_reserved_incl_setup_gib": round(max(max(e["setup"], e["peak"]) for e in every), 2),
           "planned_gib": planned_gib(arch, settings, seq, pairs),
           "step_s": round(step_s, 3), "tokens_per_s": round(tokens / step_s, 1),
           "tokens_per_s_per_gpu": round(tokens / step_s / n, 1), "steps_timed": len(log.times) - 1,
           "ref_precompute_s": round(getattr(trainer, "ref_precompute_seconds", 0.0), 2)}
    if strat == "zero3":  # DeepSpeed owns the model now: the launcher starts a fresh process per config
        return row, None
    peft_model = trainer.model
    trainer.accelerator.free_memory()
    del trainer
    return row, gpu_dpo.cleanup(peft_model, None)


def cmd_run(a) -> int:
    """Load the model once; run the --configs, then the --agree runs, on it."""
    import torch

    configs = [c for c in a.configs.split(",") if c]
    runs = [r for r in a.agree.split(",") if r]
    if not configs and not runs:
        raise ValueError("nothing to run: give --configs and/or --agree")
    if strategy() == "zero3" and len(configs) + len(runs) != 1:
        raise ValueError("under ZeRO-3 give one config or one agreement run per launch (DeepSpeed keeps the "
                         "partitioned model)")
    if runs and not a.save:
        raise ValueError("--agree needs --save DIR")
    path = gpu_dpo.make(a.arch) if world()[1] == 1 else gpu_dpo.model_dir(a.arch)
    if not os.path.exists(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"{path}: run `python benchmarks/multi_gpu.py make --arch {a.arch}` first")
    train_args(tempfile.mkdtemp(), "stock", 64, 1, 1)  # device + DeepSpeed config before the model loads
    t = time.time()
    model, tok = load(path)
    say(f"loaded {a.arch} ({strategy()}, {world()[1]} process(es)) in {time.time() - t:.0f}s")
    extra = {"device": "cpu" if on_cpu() else torch.cuda.get_device_name(0), "torch": torch.__version__}
    for idx, config in enumerate(configs):
        try:
            row, model = bench_one(model, tok, a.arch, config, a.steps, a.cap_gb, idx)
        except Exception as e:  # noqa: BLE001 - one failing config must not hide the others' rows
            import traceback

            traceback.print_exc()
            kind = "OOM" if isinstance(e, torch.OutOfMemoryError) else type(e).__name__
            row = {"arch": a.arch, "config": config, "strategy": strategy(), "gpus": world()[1],
                   "error": f"{kind}: {str(e)[:300]}"}
            model = None
        emit(row | extra, a.out)
        if model is None and (idx + 1 < len(configs) or runs):
            model, tok = load(path)  # a failed trainer may have left patches behind: start afresh
    if runs:
        os.makedirs(a.save, exist_ok=True)
    for run in runs:
        record, (init, weights), model = agree_one(model, tok, a, run)
        if world()[0] == 0:
            name = f"{strategy()}_{run}"
            torch.save({"init": init, "final": weights}, os.path.join(a.save, f"{name}.pt"))
            Path(a.save, f"{name}.json").write_text(json.dumps(record | {"device": extra["device"]}), encoding="utf-8")
            say(f"agree {name}: losses {[round(x, 5) for x in record['losses']]}")
    return 0


def emit(row: dict, out: str | None) -> None:
    if world()[0] != 0:
        return
    line = json.dumps(row)
    print("RESULT", line, flush=True)
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.write(line + "\n")


# ---------------------------------------------------------------------------------------------- agree
def parse_run(text: str) -> tuple[int, int]:
    try:
        pairs, accum = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"run {text!r}: expected PAIRSxACCUM, e.g. 1x2") from None
    if pairs < 1 or accum < 1:
        raise ValueError(f"run {text!r}: pairs and accumulation steps must be >= 1")
    return pairs, accum


def agree_data(vocab: int, seq: int, steps: int, global_batch: int, seed: int):
    """`steps` global batches cycling over 2 batches of fixed random pairs: the policy can learn them, so
    the loss falls well below ln 2 (on fresh random pairs it would stay there and agree trivially)."""
    from datasets import concatenate_datasets

    base = gpu_dpo.preference_data(vocab, seq, 2 * global_batch, seed=seed)
    return concatenate_datasets([base] * ((steps + 1) // 2)).select(range(steps * global_batch))


def agree_one(model, tok, a, run: str):
    """Train `a.agree_steps` steps as `run` (PxA) and return ({losses, meta}, lora weights, model)."""
    from halluguard.train.common import set_seed

    pairs, accum = parse_run(run)
    n = world()[1]
    if pairs * accum * n != a.global_batch:
        raise ValueError(f"run {run} on {n} process(es) is a batch of {pairs * accum * n}, not --global-batch "
                         f"{a.global_batch}")
    if a.agree_steps < 2:
        raise ValueError("--agree-steps must be >= 2")
    args, trainer_cls, _ = train_args(shared_tmpdir("hg_agree_"), a.agree_mode, a.agree_seq, a.agree_steps, pairs, accum,
                                      learning_rate=a.lr, seed=a.seed, lr_scheduler_type="constant")
    data = agree_data(model.config.vocab_size, a.agree_seq, a.agree_steps, a.global_batch, a.seed)
    log = step_logger()
    set_seed(a.seed)  # the fresh LoRA's A matrices come from the RNG: the same in every run
    trainer = sequential_trainer(trainer_cls)(model=model, args=args, train_dataset=data, processing_class=tok,
                                              peft_config=gpu_dpo.lora_config(), callbacks=[log])
    init = lora_weights(trainer.model)
    model.train()
    trainer.train()
    weights = lora_weights(trainer.model)
    dtype = "float32" if on_cpu() else "bfloat16"
    meta = {"run": run, "processes": n, "strategy": strategy(), "steps": a.agree_steps, "seq": a.agree_seq,
            "global_batch": a.global_batch, "mode": a.agree_mode, "lr": a.lr, "dtype": dtype, "arch": a.arch,
            # Evidence that the launcher's strategy really ran: DDP wraps the model, ZeRO-3 partitions it.
            "wrapper": type(trainer.model_wrapped).__name__,
            "zero3_partitioned": any(hasattr(p, "ds_id") for p in trainer.model.parameters())}
    if strategy() == "zero3":
        return {"losses": log.losses, "meta": meta}, (init, weights), None
    peft_model = trainer.model
    trainer.accelerator.free_memory()
    del trainer
    return {"losses": log.losses, "meta": meta}, (init, weights), gpu_dpo.cleanup(peft_model, None)


def update_distance(w_ref: dict, w_other: dict, init: dict) -> dict:
    """How far two runs' LoRA weights are apart, relative to how far training moved them: relative L2 of
    the difference against the reference run's update (final - init), and the cosine of the two updates."""
    import torch

    if set(w_ref) != set(w_other):
        raise ValueError("the two runs have different LoRA parameters")
    names = sorted(w_ref)
    upd_ref = torch.cat([(w_ref[k] - init[k]).flatten() for k in names])
    upd_other = torch.cat([(w_other[k] - init[k]).flatten() for k in names])
    moved = float(upd_ref.norm())
    if moved == 0.0:
        raise ValueError("the reference run did not change its LoRA weights: nothing to compare")
    return {"rel_l2": float((upd_other - upd_ref).norm()) / moved,
            "cosine": float(torch.nn.functional.cosine_similarity(upd_ref, upd_other, dim=0)),
            "update_norm": moved}


def agreement(ref: dict, alt: dict, test: dict) -> dict:
    """Check `test` (two processes) against `ref` (one process, accumulation), with the tolerance set by
    `alt` (one process, batched: the same maths in another reduction order). Each argument is
    {"losses": [...], "final": {name: tensor}, "init": {...}, "meta": {...}}. Returns a result row."""
    la, lb, lt = ref["losses"], alt["losses"], test["losses"]
    if not (len(la) == len(lb) == len(lt)) or not la:
        raise ValueError(f"loss curves of different lengths: {len(la)}, {len(lb)}, {len(lt)}")
    eps = EPS[ref["meta"]["dtype"]]
    scale = max(abs(x) for x in la)
    noise = max(abs(x - y) for x, y in zip(la, lb))
    loss_tol = max(NOISE_FACTOR * noise, EPS_UNITS * eps * scale)
    loss_diff = max(abs(x - y) for x, y in zip(la, lt))
    w_noise = update_distance(ref["final"], alt["final"], ref["init"])
    w_test = update_distance(ref["final"], test["final"], ref["init"])
    w_tol = max(NOISE_FACTOR * w_noise["rel_l2"], EPS_UNITS * eps)
    # Cosine of two vectors whose difference has relative norm d is at least 1 - d^2/2 (for small d).
    cos_bound = 1.0 - w_tol**2 / 2
    row = {"kind": "agreement", "reference": ref["meta"]["run"], "alternative": alt["meta"]["run"],
           "test": f"{test['meta']['strategy']} {test['meta']['run']} x{test['meta']['processes']}",
           "steps": len(la), "dtype": ref["meta"]["dtype"], "arch": ref["meta"]["arch"],
           "loss_first_last": [round(la[0], 6), round(la[-1], 6)],
           "loss_max_diff": loss_diff, "loss_noise": noise, "loss_tol": loss_tol,
           "lora_rel_l2": w_test["rel_l2"], "lora_rel_l2_noise": w_noise["rel_l2"], "lora_rel_l2_tol": w_tol,
           "lora_cosine": w_test["cosine"], "lora_cosine_bound": cos_bound, "lora_update_norm": w_test["update_norm"],
           # The check can fail: training must move the loss by much more than the tolerance.
           "loss_moved": abs(la[0] - la[-1])}
    row["ok"] = bool(loss_diff <= loss_tol and w_test["rel_l2"] <= w_tol and w_test["cosine"] >= cos_bound
                     and row["loss_moved"] > 10 * loss_tol)
    return row


def load_run(save: str, name: str) -> dict:
    import torch

    record = json.loads(Path(save, f"{name}.json").read_text(encoding="utf-8"))
    record.update(torch.load(os.path.join(save, f"{name}.pt")))
    return record


def cmd_compare(a) -> int:
    ref = load_run(a.save, f"single_{a.ref}")
    alt = load_run(a.save, f"single_{a.alt}")
    tests = sorted(p.stem for p in Path(a.save).glob("*.json") if not p.stem.startswith("single_"))
    if not tests:
        raise FileNotFoundError(f"{a.save}: no multi-process run saved (expected ddp_*.json or zero3_*.json)")
    bad = 0
    for name in tests:
        row = agreement(ref, alt, load_run(a.save, name))
        emit(row, a.out)
        bad += not row["ok"]
    return 1 if bad else 0


# ------------------------------------------------------------------------------------------ summarize
def scaling_rows(rows: list[dict]) -> list[dict]:
    """For each multi-GPU row, the one-GPU row of the same arch/mode/seq/pairs from the same file."""
    single = {(r["arch"], r["mode"], r["seq"], r["pairs_per_gpu"]): r for r in rows
              if r.get("strategy") == "single" and "error" not in r}
    out = []
    for r in rows:
        if r.get("strategy") in (None, "single") or "error" in r or "tokens_per_s" not in r:
            continue
        one = single.get((r["arch"], r["mode"], r["seq"], r["pairs_per_gpu"]))
        if one is None:
            continue
        speedup = r["tokens_per_s"] / one["tokens_per_s"]
        out.append({"kind": "scaling", "arch": r["arch"], "mode": r["mode"], "seq": r["seq"],
                    "pairs_per_gpu": r["pairs_per_gpu"], "strategy": r["strategy"], "gpus": r["gpus"],
                    "speedup": round(speedup, 3), "efficiency": round(speedup / r["gpus"], 3),
                    "peak_per_gpu_vs_one_gib": round(r["peak_reserved_gib"] - one["peak_reserved_gib"], 2)})
    return out


def cmd_summarize(a) -> int:
    rows = [json.loads(line) for line in Path(a.out).read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in scaling_rows(rows):
        emit(row, a.out)
    return 0


# --------------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="action", required=True)
    p = sub.add_parser("make", help="build and save the random-init architecture")
    p.add_argument("--arch", required=True, choices=sorted(gpu_dpo.ARCH))
    p = sub.add_parser("run", help="load the model once; stage-B configs and/or agreement runs in this launch")
    p.add_argument("--arch", required=True, choices=sorted(gpu_dpo.ARCH))
    p.add_argument("--configs", default="", help="MODE:SEQ[:PAIRS per GPU[:STEPS]], comma-separated (e.g. fit:2048)")
    p.add_argument("--steps", type=int, default=4, help="optimizer steps per config; the first is warm-up")
    p.add_argument("--cap-gb", type=float, default=12.0, help="per-GPU memory cap for PAIRS=auto")
    p.add_argument("--out", default=None, help="append RESULT JSON lines here")
    p.add_argument("--agree", default="", help="agreement runs, PAIRSxACCUM per process, comma-separated (1x2,2x1)")
    p.add_argument("--save", default=None, help="folder for the agreement runs' <strategy>_<run>.json/.pt")
    p.add_argument("--global-batch", type=int, default=2, help="pairs per optimizer step over all processes")
    p.add_argument("--agree-steps", type=int, default=20)
    p.add_argument("--agree-seq", type=int, default=1024)
    p.add_argument("--agree-mode", default="fit", choices=["stock", "fit"],
                   help="stage-B profile of the agreement runs (fit: halluguard's default; stock: CPU-friendly)")
    p.add_argument("--lr", type=float, default=2e-4, help="agreement runs: constant, large enough to move the loss")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("compare", help="agreement rows of the saved multi-process runs")
    p.add_argument("--save", required=True)
    p.add_argument("--ref", default="1x2", help="one-process reference run (accumulation)")
    p.add_argument("--alt", default="2x1", help="one-process run in another reduction order (batched)")
    p.add_argument("--out", default=None)
    p = sub.add_parser("summarize", help="append scaling rows (N GPUs vs one) to a bench JSONL")
    p.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    gpu_dpo.logging_quiet()
    cpu_deepspeed()
    if a.action == "make":
        gpu_dpo.make(a.arch)
        return 0
    return {"run": cmd_run, "compare": cmd_compare, "summarize": cmd_summarize}[a.action](a)


if __name__ == "__main__":
    raise SystemExit(main())
