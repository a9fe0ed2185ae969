"""Peak memory of one checkpointed forward + backward through Llama decoder layers on the CPU, per token, in
units of H-sized bf16 values: untiled MLP, tiled MLP, and tiled MLP + segmented attention on a packed
shared-prompt row. It checks the planner's constants for the long-document levers (`work_h_tiled`,
`segmented_h` in halluguard/planner.py) where no GPU measurement of them exists.

    python benchmarks/layer_memory_cpu.py                      # ~2 minutes on 1 thread
    python benchmarks/layer_memory_cpu.py --tokens 4096 8192 --out benchmarks/results/layer_memory_cpu.json

How: each configuration runs in its own process with glibc's mmap threshold at 64 KiB (so a freed tensor
goes back to the OS at once and the resident set tracks live tensors); a thread samples the resident set
during the timed step, after a warm-up step. Model: 4 Llama layers, hidden 512, intermediate 1792 (the
3.5 x ratio of Llama-3-8B), 8 heads / 2 KV heads, bf16, LoRA r=16 on all linears in bf16 (TRL's QLoRA
dtype), non-reentrant gradient checkpointing, loss = mean square of the last hidden state. The per-token
figure includes the 4 layer checkpoints and the loss's own tensors; differences between modes are the
working-set changes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

H, I, LAYERS, TILE = 512, 1792, 4, 512


def measure(mode: str, tokens: int) -> float:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig

    from halluguard.train.tiling import segments_marker, tile_mlps, use_segmented_attention

    torch.set_num_threads(1)
    cfg = LlamaConfig(vocab_size=512, hidden_size=H, intermediate_size=I, num_hidden_layers=LAYERS,
                      num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=65536)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).to(torch.bfloat16)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear"),
                           autocast_adapter_dtype=False)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model.train()
    kw = {}
    if mode in ("tiled", "tiled+segmented"):
        tile_mlps(model, TILE)
    if mode == "tiled+segmented":  # prompt 60 %, chosen and rejected 20 % each of the packed row
        use_segmented_attention(model.base_model.model)
        p, c = int(tokens * 0.6), int(tokens * 0.2)
        lc, lr = p + c, p + (tokens - p - c)
        kw = {"attention_mask": segments_marker([(p, lc, lr)]),
              "position_ids": torch.cat([torch.arange(lc), torch.arange(p, lr)])[None]}
    ids = torch.randint(0, 500, (1, tokens))
    backbone = model.base_model.model.model

    def step():
        backbone(input_ids=ids, **kw).last_hidden_state.float().square().mean().backward()
        for p in model.parameters():
            p.grad = None

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    step()  # warm-up: lazy initialisation, allocator
    base = rss()
    peak, stop = [base], [False]

    def sample():
        while not stop[0]:
            peak[0] = max(peak[0], rss())

    t = threading.Thread(target=sample)
    t.start()
    step()
    stop[0] = True
    t.join()
    return (peak[0] - base) / (tokens * H * 2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, nargs="+", default=[4096, 8192])
    ap.add_argument("--out", default=None, help="write the results here as JSON")
    ap.add_argument("--one", nargs=2, metavar=("MODE", "TOKENS"), help=argparse.SUPPRESS)  # child process
    a = ap.parse_args(argv)
    if a.one:
        print(json.dumps({"h_per_token": round(measure(a.one[0], int(a.one[1])), 2)}))
        return 0
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    rows = []
    for tokens in a.tokens:
        for mode in ("untiled", "tiled", "tiled+segmented"):
            out = subprocess.run([sys.executable, __file__, "--one", mode, str(tokens)], env=env, check=True,
                                 capture_output=True, text=True).stdout.strip().splitlines()[-1]
            rows.append({"mode": mode, "tokens": tokens, "tile": TILE, **json.loads(out)})
            print(json.dumps(rows[-1]), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps({"hidden": H, "intermediate": I, "layers": LAYERS, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
