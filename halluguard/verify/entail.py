"""`entail`: an offline entailment cross-encoder (the packaged MiniLM + a LoRA adapter and heads trained
by `training/entail.py`) judging each summary sentence against its best evidence in the source.

    from halluguard.verify import get_verifier
    v = get_verifier("entail")                     # the shipped adapter in halluguard/resources/entail/
    v = get_verifier("entail", model_dir="runs/entail_minilm_lora", threshold=0.6)
    report = v.verify(source, summary)             # same Report as every backend
    halluguard verify --backend entail --source doc.txt --summary sum.txt

How it decides, per summary sentence:
1. Evidence: `lite`'s retrieval (IDF-weighted overlap, then MiniLM cosine over the top candidates);
   the premise is the two best source units in source order, exactly what the model was evaluated on.
2. The cross-encoder reads "[CLS] premise [SEP] sentence [SEP]" (at most `max_len` word-pieces, the
   premise cut first) and gives P(unsupported); the token head, when the model has one, marks the
   word-pieces it finds unsupported, which become the sentence's spans (else the whole sentence).
3. The summary scores as its worst sentence. Sentences with nothing to check (no content word, a
   preamble) are `unknown` and do not count; a summary with none left is `unknown`.

On CPU the encoder's linear layers are quantized to int8, per channel (`quantize=True`), which roughly
halves its CPU time at a small cost in agreement with fp32 (`quantize=False` for exact scores);
measured numbers and why this is not the default verifier: docs/entail_model.md, BENCHMARKS.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, MutableMapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from halluguard.types import Evidence, Report, SentenceVerdict, Span, label_for
from halluguard.verify.base import Verifier, validate_batch


def default_model_dir() -> Path:
    return Path(str(resources.files("halluguard") / "resources" / "entail"))


def premise_text(units, evidence: Sequence[tuple[int, float]], k: int = 2) -> str:
    """The premise for one summary sentence: its `k` best evidence units, joined in source order."""
    ids = sorted({c for c, _ in evidence[:k]})
    return " ".join(units[c].text for c in ids)


def encode(tok, premises: Sequence[str], hypotheses: Sequence[str], max_len: int, offsets: bool = False):
    """Tokenize (premise, hypothesis) pairs the way the model was trained: premise cut first
    ("only_first"); a hypothesis too long even alone falls back to cutting both."""
    kw: dict[str, Any] = {"max_length": max_len, "return_offsets_mapping": offsets, "padding": False}
    try:
        return tok(list(premises), list(hypotheses), truncation="only_first", **kw)
    except Exception:  # noqa: BLE001 - tokenizers raise a plain Exception when only_first cannot fit
        return tok(list(premises), list(hypotheses), truncation="longest_first", **kw)


class EntailVerifier(Verifier):
    """Sentence-level entailment with the packaged MiniLM cross-encoder.

    Args:
        model_dir: folder with entail.safetensors + entail_config.json (default: the shipped one).
        threshold: summary score >= threshold -> "hallucinated" (default: the one chosen on dev splits,
            stored in entail_config.json).
        device: "cpu" (default) or a torch device.
        quantize: int8 dynamic quantization of the encoder's linear layers on CPU.
        batch_size: (premise, sentence) pairs per forward pass.
        max_len: word-pieces per pair (default: the model's training length); shorter is faster.
        token_threshold: a word-piece whose token-head probability reaches this becomes a span.
        embed_cache: text -> vector cache for the evidence retrieval (as for `lite`).
        base: encoder folder under the adapter (default: the packaged MiniLM; tests pass a tiny one).
        adapter, model, quantization: the CLI's `--adapter DIR` (= model_dir), `--model DIR` (= base) and
            `--quantization int8|none` (= quantize), so `halluguard verify --backend entail --adapter
            runs/entail_minilm_lora` works like the other backends.
    """

    name = "entail"

    def __init__(self, model_dir: str | Path | None = None, threshold: float | None = None, device: str = "cpu",
                 quantize: bool = True, batch_size: int = 32, max_len: int | None = None,
                 token_threshold: float | None = None,
                 embed_cache: MutableMapping[str, np.ndarray] | None = None, num_threads: int | None = None,
                 base: str | None = None, adapter: str | None = None, model: str | None = None,
                 quantization: str | None = None):
        import torch
        from transformers import AutoTokenizer

        from halluguard.embeddings import model_path
        from halluguard.train.entail import load_entail
        from halluguard.verify.lite import DEFAULT_CALIBRATION, LiteVerifier

        model_dir = model_dir if model_dir is not None else adapter
        base = base if base is not None else model
        if quantization is not None:
            if quantization not in ("int8", "none"):
                raise ValueError(f"entail runs int8 or unquantized on CPU; got quantization={quantization!r}")
            quantize = quantization == "int8"
        d = Path(model_dir) if model_dir is not None else default_model_dir()
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.model, self.meta = load_entail(d, base=base)
        if quantize and device == "cpu":
            # Per-channel int8 on the encoder only: per-tensor scales moved the logits of 11 % of SummEdits
            # sentences across the threshold, per-channel 4.5 % (fp32 and bf16: none); the heads stay fp32.
            from torch.ao.quantization import per_channel_dynamic_qconfig

            self.model.encoder = torch.ao.quantization.quantize_dynamic(
                self.model.encoder, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
        self.model.to(device)
        self.device = device
        self.tok = AutoTokenizer.from_pretrained(model_path())
        thr = threshold if threshold is not None else self.meta.get("threshold", 0.5)
        if not 0.0 <= float(thr) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {thr}")
        self.threshold = float(thr)
        self.token_threshold = float(token_threshold if token_threshold is not None
                                     else self.meta.get("token_threshold", 0.5))
        self.max_len = int(max_len or self.meta.get("max_len", 128))
        if self.max_len < 16:
            raise ValueError(f"max_len {self.max_len} is too short for a premise and a sentence")
        self.batch_size = int(batch_size)
        # lite's retrieval only (its checks and weights are not used), with the settings the model was
        # measured with: independent of lite's calibration file, which its own refits change.
        self.lite = LiteVerifier(calibration={**DEFAULT_CALIBRATION, "top_k": int(self.meta.get("top_k", 2))},
                                 embed_cache=embed_cache)
        self.model_dir = str(d)

    # -- model ----------------------------------------------------------------------------------

    def pair_logits(self, premises: Sequence[str], hypotheses: Sequence[str]):
        """(sequence logits (n,), per pair a list of (start, end, token logit) over the hypothesis)."""
        import torch

        seq = np.zeros(len(premises), np.float32)
        toks: list[list[tuple[int, int, float]]] = []
        order = np.argsort([len(p) + len(h) for p, h in zip(premises, hypotheses)])  # similar lengths batch well
        by_pos: dict[int, list[tuple[int, int, float]]] = {}
        for lo in range(0, len(order), self.batch_size):
            idx = order[lo : lo + self.batch_size]
            enc = encode(self.tok, [premises[i] for i in idx], [hypotheses[i] for i in idx], self.max_len, offsets=True)
            batch = self.tok.pad({k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")},
                                 return_tensors="pt")
            with torch.inference_mode():
                s, t = self.model(**{k: v.to(self.device) for k, v in batch.items()})
            s = s.float().cpu().numpy()
            t = t.float().cpu().numpy() if t is not None else None
            for j, i in enumerate(idx):
                seq[i] = s[j]
                out = []
                if t is not None:
                    for k, (sid, (a, b)) in enumerate(zip(enc.sequence_ids(j), enc["offset_mapping"][j])):
                        if sid == 1 and b > a:
                            out.append((a, b, float(t[j, k])))
                by_pos[int(i)] = out
        toks = [by_pos.get(i, []) for i in range(len(premises))]
        return seq, toks

    # -- verification ---------------------------------------------------------------------------

    def verify_batch(self, sources: Sequence[str], summaries: Sequence[str],
                     progress: Callable[[int, int], None] | None = None, chunk_size: int = 64) -> list[Report]:
        """Verify many pairs: one retrieval pass and batched cross-encoder passes per `chunk_size` pairs."""
        validate_batch(sources, summaries, item="pair")
        out: list[Report] = []
        for lo in range(0, len(sources), chunk_size):
            analyses = self.lite.analyze_batch(sources[lo : lo + chunk_size], summaries[lo : lo + chunk_size])
            jobs = [(a, k) for a, pa in enumerate(analyses) for k, sa in enumerate(pa.sentences) if sa.judged]
            prem = [premise_text(analyses[a].units, analyses[a].sentences[k].evidence) for a, k in jobs]
            hyp = [analyses[a].sentences[k].seg.text for a, k in jobs]
            seq, toks = self.pair_logits(prem, hyp) if jobs else (np.zeros(0), [])
            res = {job: (float(seq[n]), toks[n]) for n, job in enumerate(jobs)}
            for a, pa in enumerate(analyses):
                out.append(self._report(pa, {k: res[(a, k)] for k in range(len(pa.sentences)) if (a, k) in res}))
            if progress is not None:
                progress(len(out), len(sources))
        return out

    def _report(self, pa, judged: dict[int, tuple[float, list]]) -> Report:
        verdicts, spans, scores = [], [], []
        for k, sa in enumerate(pa.sentences):
            ev = [Evidence(pa.units[c].start, pa.units[c].end, pa.units[c].text, round(max(0.0, min(1.0, cos)), 4))
                  for c, cos in sa.evidence]
            if k not in judged:
                verdicts.append(SentenceVerdict(sa.seg.start, sa.seg.end, sa.seg.text, "unknown", float("nan"), ev, [],
                                                ["no content word to check"]))
                continue
            z, toks = judged[k]
            p = 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))
            scores.append(p)
            sp: list[Span] = []
            if p >= self.threshold:
                sp = self._spans(pa.summary, sa.seg.start, toks, p) or [
                    Span(sa.seg.start, sa.seg.end, sa.seg.text, round(p, 4), "model")]
            verdicts.append(SentenceVerdict(sa.seg.start, sa.seg.end, sa.seg.text,
                                            "unsupported" if p >= self.threshold else "supported", round(p, 4), ev, sp,
                                            ["the entailment model finds it unsupported by its evidence"]
                                            if p >= self.threshold else []))
            spans.extend(sp)
        score = max(scores) if scores else float("nan")
        return Report(score=round(score, 4) if scores else score, label=label_for(score, self.threshold),
                      threshold=self.threshold, backend=self.name, sentences=verdicts,
                      spans=sorted(spans, key=lambda s: (s.start, s.end)),
                      extra={"model": self.meta.get("base", ""), "model_dir": self.model_dir,
                             **({} if scores else {"reason": "no sentence with content to check"})})

    def _spans(self, summary: str, base: int, toks: list[tuple[int, int, float]], p: float) -> list[Span]:
        return token_spans(summary, base, toks, p, self.token_threshold)


def token_spans(summary: str, base: int, toks: Sequence[tuple[int, int, float]], p: float,
                token_threshold: float) -> list[Span]:
    """Word-pieces (offsets relative to the sentence at `base`) whose token logit reaches the threshold
    probability, widened to whole words and merged when adjacent; scored with the sentence's `p`."""
    t = token_threshold
    cut = -math.inf if t <= 0 else math.inf if t >= 1 else math.log(t / (1 - t))
    runs: list[list[int]] = []
    for a, b, z in toks:
        if z < cut:
            continue
        a, b = base + a, base + b
        while a > 0 and summary[a - 1].isalnum():
            a -= 1
        while b < len(summary) and summary[b].isalnum():
            b += 1
        if runs and a <= runs[-1][1] + 1:
            runs[-1][1] = max(runs[-1][1], b)
        else:
            runs.append([a, b])
    return [Span(a, b, summary[a:b], round(p, 4), "model") for a, b in runs]


def read_meta(model_dir: str | Path | None = None) -> dict[str, Any]:
    """The shipped model's entail_config.json (threshold, data, metrics) without loading it."""
    d = Path(model_dir) if model_dir is not None else default_model_dir()
    return json.loads((d / "entail_config.json").read_text(encoding="utf-8"))


__all__ = ["EntailVerifier", "default_model_dir", "encode", "premise_text", "read_meta", "token_spans"]
