"""`span` verifier: a token-classification hallucination detector (LettuceDetect style) flags characters.

    from halluguard.verify import get_verifier
    v = get_verifier("span", preset="lettucedetect-base")         # KRLabsOrg/lettucedect-base-modernbert-en-v1
    v = get_verifier("span", model="./my-token-classifier", threshold=0.5)
    report = v.verify(source, summary)     # report.spans: character spans of the summary, report.score

The model reads one pair per forward pass: first the source inside LettuceDetect's summary prompt
("Summarize the following text:\\npassage 1: <source>\\noutput:"), then the summary; it gives every
summary token P(hallucinated) (label 1, as LettuceDetect trains it). Tokens at or above `threshold`
are flagged; neighbouring flagged tokens of one sentence merge into one span, widened to whole words.

Long inputs: the source is cut into overlapping chunks (`chunk_source`) that fit the model next to
the summary, and a summary longer than half the context is checked in sentence groups. Each summary
token gets one probability per chunk; ``chunk_merge="min"`` (default) keeps the lowest, so a token is
hallucinated only if no chunk supports it. LettuceDetect itself takes the max (a token is supported only
if every chunk supports it), which flags any fact that sits in another chunk; ``"max"`` reproduces it.

Scores: a sentence's P(hallucinated) is the max over its tokens; the summary's score is the max over its
sentences (= the max token probability). Evidence per sentence: the source sentence sharing most words
with it inside the chunk that supported it best, then that chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from halluguard.types import Evidence, Report, Span
from halluguard.verify._common import (
    TextPiece,
    build_report,
    chunk_source,
    count_tokens,
    lexical_evidence,
    load_classifier,
    model_context,
    model_device,
    split_sentences,
)
from halluguard.verify.base import Verifier, validate_batch

# LettuceDetect's English summary prompt (lettucedetect/prompts/summary_prompt_en.txt) with the source
# as its one passage ("passage 1: ..."); `{context}` is where the source chunk goes.
PROMPTS = {
    "lettucedetect": "Summarize the following text:\npassage 1: {context}\noutput:",
    "plain": "{context}",
}
_NEGATIVE = ("hallucin", "unsupported", "unfaithful", "inconsistent", "contradict", "error")


def hallucinated_index(id2label: dict[Any, str] | None, num_labels: int, override: int | str | None = None) -> int:
    """Which output means "hallucinated": `override` (index or label name), else a label named like
    it, else 1 (LettuceDetect: 0 = supported, 1 = hallucinated). -1 means a single sigmoid logit."""
    names = {int(k): str(v).strip().lower() for k, v in (id2label or {}).items()}
    if num_labels == 1:
        return -1
    if override is not None:
        if isinstance(override, int) or str(override).strip().isdigit():
            idx = int(override)
            if not 0 <= idx < num_labels:
                raise ValueError(f"hallucinated_label {idx} out of range for a head with {num_labels} outputs")
            return idx
        for i, n in names.items():
            if n == str(override).strip().lower():
                return i
        raise ValueError(f"hallucinated_label {override!r} is not one of the model's labels {sorted(names.values())}")
    named = [i for i, n in names.items() if i < num_labels and any(k in n for k in _NEGATIVE)]
    if len(named) == 1:
        return named[0]
    if num_labels == 2:
        return 1
    raise ValueError(f"cannot tell which of {num_labels} token labels means 'hallucinated' "
                     f"({[names.get(i) for i in range(num_labels)]}); pass hallucinated_label=")


def merge_chunk_probs(per_chunk: Sequence[Sequence[float]], how: str = "min") -> list[float]:
    """One P(hallucinated) per token from one list per chunk (all lists cover the same tokens)."""
    if not per_chunk:
        return []
    pick = min if how == "min" else max
    return [pick(col) for col in zip(*per_chunk)]


def _widen_to_words(text: str, start: int, end: int) -> tuple[int, int]:
    # Sub-word tokens ("loggerhea" + "##d") must not cut a word in the highlighted text.
    while start > 0 and text[start - 1].isalnum() and text[start].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum() and text[end - 1].isalnum():
        end += 1
    return start, end


def token_spans(text: str, tokens: Sequence[tuple[int, int, float]], threshold: float,
                within: TextPiece) -> list[Span]:
    """Spans of `text` over the flagged tokens (start, end, p) inside `within`: consecutive flagged
    tokens merge, each span is widened to whole words; span score = its highest token probability."""
    spans: list[Span] = []
    run: list[tuple[int, int, float]] = []

    def close() -> None:
        if run:
            a, b = _widen_to_words(text, run[0][0], run[-1][1])
            a, b = max(a, within.start), min(b, within.end)
            score = round(max(t[2] for t in run), 6)
            if spans and a <= spans[-1].end:  # widening joined it to the previous span
                prev = spans.pop()
                a, score = prev.start, max(prev.score, score)
            spans.append(Span(a, b, text[a:b], score, "model"))
            run.clear()

    for tok in tokens:
        if not (within.start <= tok[0] < within.end):
            continue
        if tok[2] >= threshold:
            run.append(tok)
        else:
            close()
    close()
    return spans


class SpanVerifier(Verifier):
    """Character spans from a token classifier over (source, summary) pairs.

    Args:
        model: hub id, local path, or an already loaded token-classification model (then pass `tokenizer`,
            a fast tokenizer: character offsets come from it).
        preset: a name from `halluguard.verify.presets` (e.g. "lettucedetect-base"); explicit arguments win.
        threshold: token P(hallucinated) >= threshold -> flagged (LettuceDetect: 0.5).
        prompt: "lettucedetect" (its summary prompt), "plain" (the source as is) or a template with "{context}".
        hallucinated_label: index or name of the "hallucinated" output; default from `config.id2label`, else 1.
        chunk_tokens: most source tokens per chunk; default: what fits beside the summary.
        chunk_overlap: tokens repeated between consecutive source chunks.
        chunk_merge: "min" (hallucinated only if no chunk supports the token) or "max" (LettuceDetect's rule).
        batch_size: (chunk, summary) pairs per forward pass.
        max_length: override the model's context length (the LettuceDetect presets use 4096).
        quantization, dtype, device_map, allow_fallback, trust_remote_code, revision: as in
            `halluguard.loading.ModelSpec`.
    """

    name = "span"

    def __init__(self, model: Any = None, *, preset: str | None = None, tokenizer: Any = None,
                 threshold: float | None = None, prompt: str | None = None,
                 hallucinated_label: int | str | None = None, chunk_tokens: int | None = None,
                 chunk_overlap: int = 64, chunk_merge: str = "min", batch_size: int = 8,
                 max_length: int | None = None, quantization: str = "none", dtype: str = "auto",
                 device_map: str | dict | None = "auto", allow_fallback: bool = False,
                 trust_remote_code: bool = False, revision: str | None = None) -> None:
        from halluguard.verify.presets import apply_preset

        self.preset, a = apply_preset(self.name, preset, dict(
            model=model, threshold=threshold, prompt=prompt, max_length=max_length, revision=revision,
            trust_remote_code=trust_remote_code))
        self._check_args(a, chunk_tokens, chunk_merge)
        template = a["prompt"] or "lettucedetect"
        self.prompt = PROMPTS.get(template, template)
        self.prompt_name = template if template in PROMPTS else "custom"
        self.threshold = float(0.5 if a["threshold"] is None else a["threshold"])
        self.chunk_merge, self.chunk_tokens = chunk_merge, chunk_tokens
        self.chunk_overlap, self.batch_size = max(0, int(chunk_overlap)), max(1, int(batch_size))
        self._load(a["model"], tokenizer, dict(quantization=quantization, dtype=dtype, device_map=device_map,
                                               allow_fallback=allow_fallback, revision=a["revision"],
                                               trust_remote_code=bool(a["trust_remote_code"])))
        cfg = self.model.config
        n = int(getattr(cfg, "num_labels", 0) or len(getattr(cfg, "id2label", {}) or {}))
        self.label_index = hallucinated_index(getattr(cfg, "id2label", None), n, hallucinated_label)
        # A preset's length (4096 for LettuceDetect) never exceeds what the loaded model can read.
        own = model_context(self.model, self.tokenizer)
        self.max_length = min(int(a["max_length"]), own) if a["max_length"] else own
        self._overhead = count_tokens(self.tokenizer, self.prompt.replace("{context}", ""))

    def _check_args(self, a: dict[str, Any], chunk_tokens: int | None, chunk_merge: str) -> None:
        if a["model"] is None or (isinstance(a["model"], str) and not a["model"].strip()):
            from halluguard.verify.presets import presets_for

            raise ValueError("the span backend needs a token-classification model: model=<hub id or folder> or "
                             f"preset=<{' | '.join(presets_for('span'))}>")
        if a["threshold"] is not None and not 0.0 <= float(a["threshold"]) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {a['threshold']}")
        if a["prompt"] and a["prompt"] not in PROMPTS and "{context}" not in a["prompt"]:
            raise ValueError(f"prompt must be one of {', '.join(PROMPTS)} or a template containing '{{context}}'")
        if chunk_merge not in ("min", "max"):
            raise ValueError(f"chunk_merge must be 'min' or 'max', got {chunk_merge!r}")
        if chunk_tokens is not None and chunk_tokens < 8:
            raise ValueError(f"chunk_tokens must be at least 8, got {chunk_tokens}")

    def _load(self, model: Any, tokenizer: Any, load_kw: dict[str, Any]) -> None:
        if isinstance(model, str):
            from halluguard.loading import HubUnavailable
            from halluguard.verify.presets import preset_hint

            self.model_name = model
            try:
                self.model, tok = load_classifier(model, head="token-cls", **load_kw)
            except HubUnavailable as e:
                raise preset_hint(self.preset, e) from None
            self.tokenizer = tokenizer or tok
        else:
            self.model, self.tokenizer = model, tokenizer
            self.model_name = getattr(getattr(model, "config", None), "_name_or_path", type(model).__name__)
        self.model.eval()
        if self.tokenizer is None:
            raise ValueError(f"no tokenizer found for {self.model_name}; pass tokenizer=")
        if not getattr(self.tokenizer, "is_fast", False):
            raise ValueError(f"{self.model_name}: the span backend needs a fast tokenizer (character offsets)")

    # ------------------------------------------------------------------ model

    def token_probs(self, contexts: Sequence[str], answers: Sequence[str]) -> list[list[tuple[int, int, float]]]:
        """For each (context, answer) pair: (start, end, P(hallucinated)) of every answer token, with
        character offsets into the answer. The context goes through the prompt template first."""
        import torch

        out: list[list[tuple[int, int, float]]] = [[] for _ in contexts]
        device = model_device(self.model)
        names = set(getattr(self.tokenizer, "model_input_names", ["input_ids", "attention_mask"]))
        # Similar lengths share a batch, so a short pair is not padded to a 4096-token neighbour.
        order = sorted(range(len(contexts)), key=lambda i: len(contexts[i]) + len(answers[i]))
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            prompts = [self.prompt.replace("{context}", contexts[i]) for i in idx]
            enc = self.tokenizer(prompts, [answers[i] for i in idx], padding=True,
                                 truncation="only_first", max_length=self.max_length,
                                 return_offsets_mapping=True, return_tensors="pt")
            offsets = enc.pop("offset_mapping").tolist()
            with torch.no_grad():
                logits = self.model(**{k: v.to(device) for k, v in enc.items() if k in names}).logits.float()
            if self.label_index < 0:
                probs = torch.sigmoid(logits[..., 0])
            else:
                probs = torch.softmax(logits, dim=-1)[..., self.label_index]
            probs = probs.cpu().tolist()
            for row, i in enumerate(idx):
                seq = enc.sequence_ids(row)
                out[i] = [(int(s), int(e), float(p)) for (s, e), p, sid in zip(offsets[row], probs[row], seq)
                          if sid == 1 and e > s]
        return out

    # ------------------------------------------------------------------ verify

    def _plan(self, source: str, summary: str) -> list[tuple[TextPiece, list[TextPiece]]]:
        """(summary segment, source chunks) pairs: segments of at most half the context, chunks that fit
        beside each segment and the prompt."""
        special = self.tokenizer.num_special_tokens_to_add(pair=True)
        segments = chunk_source(summary, self.tokenizer, max(16, self.max_length // 2))
        plan = []
        for seg in segments:
            room = self.max_length - special - self._overhead - count_tokens(self.tokenizer, seg.text)
            room = max(room, 16) if self.chunk_tokens is None else max(min(self.chunk_tokens, room), 16)
            plan.append((seg, chunk_source(source, self.tokenizer, room, self.chunk_overlap)))
        return plan

    @staticmethod
    def _jobs(plan) -> list[tuple[int, int]]:
        return [(si, ci) for si, (_, chunks) in enumerate(plan) for ci in range(len(chunks))]

    def _merge(self, plan, results):
        """Merged token probabilities (summary offsets) and, per token, each chunk's probability, from the
        token lists of this pair's (segment, chunk) jobs in `_jobs` order."""
        tokens: list[tuple[int, int, float]] = []
        per_chunk: list[tuple[int, int, list[float], list[TextPiece]]] = []
        jobs = self._jobs(plan)
        for si, (seg, chunks) in enumerate(plan):
            rows = [res for (s, _), res in zip(jobs, results) if s == si]
            # The segment is tokenized alike beside every chunk (only the context is ever truncated).
            n = min(len(r) for r in rows)
            merged = merge_chunk_probs([[p for _, _, p in r[:n]] for r in rows], self.chunk_merge)
            for k, (s, e, _) in enumerate(rows[0][:n]):
                tokens.append((seg.start + s, seg.start + e, merged[k]))
                per_chunk.append((seg.start + s, seg.start + e, [r[k][2] for r in rows], chunks))
        return tokens, per_chunk, max(len(c) for _, c in plan)

    def _sentence_evidence(self, sent: TextPiece, source: str, per_chunk) -> list[Evidence]:
        inside = [t for t in per_chunk if sent.start <= t[0] < sent.end]
        if not inside:
            return []
        chunks = inside[0][3]
        worst = [max(t[2][ci] for t in inside) for ci in range(len(chunks))]  # per chunk: the sentence's max
        best = min(range(len(chunks)), key=worst.__getitem__)
        c = chunks[best]
        ev = [Evidence(c.start, c.end, c.text, round(1.0 - worst[best], 6))]
        pointer = lexical_evidence(sent.text, source, within=c) if len(split_sentences(c.text)) > 1 else None
        return [pointer, *ev] if pointer is not None else ev

    def _report(self, source: str, summary: str, plan, results) -> Report:
        tokens, per_chunk, n_chunks = self._merge(plan, results)
        sents = split_sentences(summary)
        scores, spans, evidence, reasons = [], [], [], []
        for s in sents:
            ps = [p for a, _, p in tokens if s.start <= a < s.end]
            score = max(ps) if ps else 0.0
            sp = token_spans(summary, tokens, self.threshold, s)
            scores.append(score)
            spans.append(sp)
            evidence.append(self._sentence_evidence(s, source, per_chunk))
            reasons.append([f"the detector flags {', '.join(repr(x.text) for x in sp)} (max token p={score:.2f})"]
                           if sp and score >= self.threshold else [])
        extra = {"model": self.model_name, "chunks": n_chunks, "chunk_merge": self.chunk_merge,
                 "prompt": self.prompt_name, "token_probs": [[a, b, round(p, 4)] for a, b, p in tokens]}
        if self.preset is not None:
            extra["preset"] = self.preset.name
        return build_report(self.name, sents, scores, self.threshold, evidence=evidence, spans=spans,
                            reasons=reasons, extra=extra)

    def verify_batch(self, sources: Sequence[str], summaries: Sequence[str],
                     progress: Callable[[int, int], None] | None = None, group_size: int = 8) -> list[Report]:
        """Verify many pairs; the (segment, chunk) inputs of `group_size` pairs share forward passes."""
        validate_batch(sources, summaries)
        out: list[Report] = []
        for g in range(0, len(sources), max(1, group_size)):
            rows = range(g, min(len(sources), g + max(1, group_size)))
            plans = [self._plan(sources[r], summaries[r]) for r in rows]
            jobs = [(k, si, ci) for k, plan in enumerate(plans) for si, ci in self._jobs(plan)]
            results = self.token_probs([plans[k][si][1][ci].text for k, si, ci in jobs],
                                       [plans[k][si][0].text for k, si, _ in jobs])
            for k, r in enumerate(rows):
                mine = [res for (kk, _, _), res in zip(jobs, results) if kk == k]
                out.append(self._report(sources[r], summaries[r], plans[k], mine))
            if progress is not None:
                progress(len(out), len(sources))
        return out
