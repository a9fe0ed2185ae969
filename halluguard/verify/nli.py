"""`nli` verifier: any Hugging Face (premise, hypothesis) classifier checks each summary sentence.

    from halluguard.verify import get_verifier
    v = get_verifier("nli", model="lytang/MiniCheck-RoBERTa-Large")          # or a local path
    v = get_verifier("nli", model="microsoft/deberta-large-mnli")             # 3-way MNLI head
    v = get_verifier("nli", model="vectara/hallucination_evaluation_model",   # HHEM-2.1-open runs its
                     trust_remote_code=True)                                  # own code: opt in
    v = get_verifier("nli", preset="minicheck-roberta-large")   # presets: halluguard.verify.presets
    report = v.verify(source, summary)

Each summary sentence is the hypothesis; the source, cut into chunks of at most `chunk_tokens` tokens
overlapping by `chunk_overlap` (so sources longer than the model's context work), is the premise.
A sentence's support is the maximum over chunks (MiniCheck's aggregation); its P(hallucinated) is
1 - support; the summary's score is 1 - the minimum support over its sentences.

Which output means "supported" is read from `config.id2label` (entailment / consistent / supported /
faithful / ...); `support_label=` (an index or a label name) overrides it. Two- and three-label heads
use the softmax probability of that label; a single-logit head uses sigmoid(logit).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from halluguard.types import Evidence, Report
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

# Label names, matched as lower-case substrings. Negatives are checked first because "inconsistent",
# "not_entailment" and "unsupported" contain a positive word.
_NEGATIVE = ("contradict", "hallucin", "inconsistent", "unsupported", "not_", "not ", "non_", "non-", "unfaithful",
             "neutral", "false", "incorrect", "refute")
_POSITIVE = ("entail", "consistent", "support", "faithful", "factual", "true", "correct", "grounded")
_GENERIC = re.compile(r"^label_?\d+$")


def _is_negative(name: str) -> bool:
    return any(k in name for k in _NEGATIVE)


def _is_positive(name: str) -> bool:
    return not _is_negative(name) and any(k in name for k in _POSITIVE)


def resolve_support_label(
    id2label: dict[Any, str] | None, num_outputs: int, support_label: int | str | None = None
) -> tuple[str, int, str]:
    """Which model output means "supported": returns (mode, index, how_decided).

    mode is "softmax" (2+ outputs: P(supported) = softmax[index]), "sigmoid" (one output:
    P(supported) = sigmoid(logit)) or "sigmoid-inverted" (one output that scores hallucination:
    P(supported) = 1 - sigmoid(logit)). `support_label` may be an index or a label name; for a
    single-logit head, "invert" flips the direction.
    """
    names = {int(k): str(v).strip().lower() for k, v in (id2label or {}).items()}
    if num_outputs < 1:
        raise ValueError("classifier has no outputs")
    if num_outputs == 1:
        if support_label is not None:
            if str(support_label).lower() == "invert":
                return "sigmoid-inverted", 0, "support_label='invert'"
            if str(support_label).lower() in (str(0), names.get(0, "")):
                return "sigmoid", 0, "support_label"
            raise ValueError(f"single-logit head: support_label must be 0, {names.get(0, 'its label')!r} or 'invert'")
        name = names.get(0, "")
        if _is_negative(name):
            return "sigmoid-inverted", 0, f"label name {name!r}"
        return "sigmoid", 0, "single logit (sigmoid = P(supported))"
    if support_label is not None:
        if isinstance(support_label, int) or (isinstance(support_label, str) and support_label.strip().isdigit()):
            idx = int(support_label)
            if not 0 <= idx < num_outputs:
                raise ValueError(f"support_label {idx} out of range for a head with {num_outputs} outputs")
            return "softmax", idx, "support_label"
        wanted = str(support_label).strip().lower()
        for i, n in names.items():
            if n == wanted and i < num_outputs:
                return "softmax", i, "support_label"
        raise ValueError(f"support_label {support_label!r} is not one of the model's labels {sorted(names.values())}")
    positive = [i for i, n in names.items() if i < num_outputs and _is_positive(n)]
    if len(positive) == 1:
        return "softmax", positive[0], f"label name {names[positive[0]]!r}"
    if num_outputs == 2:
        negative = [i for i, n in names.items() if i < 2 and _is_negative(n)]
        if len(negative) == 1:
            other = 1 - negative[0]
            return "softmax", other, f"the label other than {names[negative[0]]!r}"
        if all(_GENERIC.match(names.get(i, f"label_{i}")) for i in range(2)):
            # MiniCheck and most binary consistency heads put "supported" at index 1 (LABEL_1).
            return "softmax", 1, "convention: index 1 of an unnamed 2-label head"
    raise ValueError(
        f"cannot tell which output means 'supported' from labels {[names.get(i) for i in range(num_outputs)]}; "
        "pass support_label= (index or name)"
    )


class NLIVerifier(Verifier):
    """Sentence-level verification with a (premise, hypothesis) sequence classifier.

    Args:
        model: hub id, local path, or an already loaded `PreTrainedModel` (then pass `tokenizer`).
        preset: a name from `halluguard.verify.presets` (hhem-2.1-open, minicheck-roberta-large, ...)
            filling model, revision, threshold and support_label; explicit arguments win.
        tokenizer: tokenizer for a pre-loaded model (HHEM-style models carry their own).
        support_label: index or name of the "supported" output; default: read from `config.id2label`.
        threshold: sentence/summary P(hallucinated) >= threshold -> unsupported / hallucinated.
        chunk_tokens: tokens per source chunk; default: as many as fit the model with the sentence.
        chunk_overlap: tokens repeated between consecutive chunks.
        batch_size: (chunk, sentence) pairs per forward pass.
        max_length: override the model's context length.
        sentence_evidence: how the source sentence shown first in each sentence's evidence is picked
            inside the best chunk: "lexical" (most shared content words, free), "model" (highest
            P(supported) by the classifier: one more pair per chunk sentence) or "none" (chunk only).
        quantization, dtype, device_map, allow_fallback, revision: as in `halluguard.loading.ModelSpec`
            (safetensors weights only).
        trust_remote_code: needed for HHEM-2.1-open, which runs code from its repository; off unless
            you turn it on.
    """

    name = "nli"

    def __init__(
        self,
        model: Any = None,
        *,
        preset: str | None = None,
        tokenizer: Any = None,
        support_label: int | str | None = None,
        threshold: float | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int = 64,
        batch_size: int = 16,
        max_length: int | None = None,
        sentence_evidence: str = "lexical",
        quantization: str = "none",
        dtype: str = "auto",
        device_map: str | dict | None = "auto",
        allow_fallback: bool = False,
        trust_remote_code: bool = False,
        revision: str | None = None,
    ) -> None:
        from halluguard.verify.presets import apply_preset

        self.preset, a = apply_preset(self.name, preset, dict(
            model=model, threshold=threshold, revision=revision, support_label=support_label,
            trust_remote_code=trust_remote_code))
        model, revision, support_label = a["model"], a["revision"], a["support_label"]
        threshold = 0.5 if a["threshold"] is None else a["threshold"]
        if model is None or (isinstance(model, str) and not model.strip()):
            raise ValueError(
                "the nli backend needs a model: a hub id or local path of a (premise, hypothesis) classifier, "
                "e.g. lytang/MiniCheck-RoBERTa-Large, microsoft/deberta-large-mnli, or "
                "vectara/hallucination_evaluation_model (with trust_remote_code=True); or a preset: "
                "preset='minicheck-roberta-large'"
            )
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if chunk_tokens is not None and chunk_tokens < 8:
            raise ValueError(f"chunk_tokens must be at least 8, got {chunk_tokens}")
        if sentence_evidence not in ("lexical", "model", "none"):
            raise ValueError(f"sentence_evidence must be 'lexical', 'model' or 'none', got {sentence_evidence!r}")
        self.sentence_evidence = sentence_evidence
        self.threshold = float(threshold)
        self.batch_size = max(1, int(batch_size))
        self.chunk_overlap = max(0, int(chunk_overlap))
        if isinstance(model, str):
            from halluguard.loading import HubUnavailable
            from halluguard.verify.presets import preset_hint

            self.model_name = model
            try:
                self.model, tok = load_classifier(
                    model, quantization=quantization, dtype=dtype, device_map=device_map,
                    allow_fallback=allow_fallback, trust_remote_code=trust_remote_code, revision=revision,
                )
            except HubUnavailable as e:
                raise preset_hint(self.preset, e) from None
            except ValueError as e:
                if "trust_remote_code" in str(e) and not trust_remote_code:
                    raise ValueError(
                        f"{model} runs code from its repository (e.g. HHEM-2.1-open); read it, then opt in with "
                        "trust_remote_code=True (CLI: `halluguard bench --trust-remote-code`, "
                        "`halluguard verify --opt trust_remote_code=true`)"
                    ) from None
                raise
            self.tokenizer = tokenizer or tok
        else:
            self.model, self.tokenizer = model, tokenizer
            self.model_name = getattr(getattr(model, "config", None), "_name_or_path", type(model).__name__)
        self.model.eval()
        # HHEM-2.1-open (remote code) scores text pairs through its own `predict` with its own prompt and
        # T5 tokenizer (the attribute is spelled `tokenzier` in its repository).
        self._predict = self._is_predict_model(self.model)
        if self.tokenizer is None:
            self.tokenizer = getattr(self.model, "tokenizer", None) or getattr(self.model, "tokenzier", None)
        if self.tokenizer is None:
            raise ValueError(f"no tokenizer found for {self.model_name}; pass tokenizer=")
        if self._predict:
            self.mode, self.support_index, self.label_source = "predict", 1, "the model's own predict()"
        else:
            cfg = self.model.config
            n = int(getattr(cfg, "num_labels", 0) or len(getattr(cfg, "id2label", {}) or {}))
            self.mode, self.support_index, self.label_source = resolve_support_label(
                getattr(cfg, "id2label", None), n, support_label
            )
            if self.label_source.startswith("convention"):
                warnings.warn(
                    f"{self.model_name}: labels are unnamed; assuming index 1 means 'supported' (MiniCheck "
                    "convention). Pass support_label= if that is wrong.", stacklevel=2,
                )
        if not self._predict and getattr(self.tokenizer, "pad_token", "") is None:
            # Decoder-based classifiers (Llama/Qwen heads) often have no pad token; batching needs one, and
            # their head finds each row's last real token through config.pad_token_id.
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
            if getattr(self.model.config, "pad_token_id", None) is None:
                self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.max_length = model_context(self.model, self.tokenizer, max_length)
        self.chunk_tokens = chunk_tokens

    @staticmethod
    def _is_predict_model(model: Any) -> bool:
        kind = (type(model).__name__ + " " + str(getattr(getattr(model, "config", None), "model_type", ""))).lower()
        return callable(getattr(model, "predict", None)) and "hhem" in kind

    # ------------------------------------------------------------------ scoring

    def _n_special(self) -> int:
        try:
            return int(self.tokenizer.num_special_tokens_to_add(pair=True))
        except (AttributeError, TypeError):
            return 4

    def support_probs(self, premises: Sequence[str], hypotheses: Sequence[str]) -> list[float]:
        """P(supported) for each (premise, hypothesis) pair, batched."""
        import torch

        out: list[float] = [0.0] * len(premises)
        order = sorted(range(len(premises)), key=lambda i: len(premises[i]) + len(hypotheses[i]))
        device = model_device(self.model)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            prem = [premises[i] for i in idx]
            hyp = [hypotheses[i] for i in idx]
            with torch.no_grad():
                if self._predict:
                    probs = self.model.predict(list(zip(prem, hyp)))
                    vals = torch.as_tensor(probs, dtype=torch.float32).flatten().tolist()
                else:
                    enc = self.tokenizer(
                        prem, hyp, padding=True, truncation="longest_first", max_length=self.max_length,
                        return_tensors="pt",
                    )
                    names = set(getattr(self.tokenizer, "model_input_names", enc.keys()))
                    enc = {k: v.to(device) for k, v in enc.items() if k in names}
                    logits = self.model(**enc).logits.float()
                    if self.mode == "softmax":
                        vals = torch.softmax(logits, dim=-1)[:, self.support_index].tolist()
                    else:
                        p = torch.sigmoid(logits[:, 0])
                        vals = (1 - p if self.mode == "sigmoid-inverted" else p).tolist()
            for i, v in zip(idx, vals):
                out[i] = float(v)
        return out

    def _chunk_budget(self, sentences: Sequence[TextPiece]) -> int:
        longest = max(count_tokens(self.tokenizer, s.text) for s in sentences)
        # A very long summary sentence leaves little room; the tokenizer truncates the pair then.
        room = max(self.max_length - self._n_special() - longest, min(64, self.max_length // 2))
        return room if self.chunk_tokens is None else min(self.chunk_tokens, room)

    def _sentence_evidence(self, rows, sources, plan, best_chunks) -> dict[tuple[int, int], Evidence]:
        """The source sentence inside each sentence's best chunk that supports it most: by shared content
        words ("lexical", free) or by the model itself ("model": one more pair per chunk sentence)."""
        out: dict[tuple[int, int], Evidence] = {}
        if self.sentence_evidence == "none":
            return out
        jobs = []  # (key, candidate piece in source offsets, hypothesis)
        for (ri, si), (c, _) in best_chunks.items():
            inner = split_sentences(c.text)
            if len(inner) < 2:
                continue  # the chunk is one sentence: it is its own pointer
            hyp = plan[ri][0][si].text
            src = sources[rows[ri]]
            if self.sentence_evidence == "lexical":
                lex = lexical_evidence(hyp, src, within=c)
                if lex is not None:
                    out[(ri, si)] = lex
                continue
            for p in inner:
                jobs.append(((ri, si), TextPiece(c.start + p.start, c.start + p.end, p.text), hyp))
        if jobs:
            probs = self.support_probs([j[1].text for j in jobs], [j[2] for j in jobs])
            for (key, piece, _), p in zip(jobs, probs):
                if key not in out or p > out[key].score:
                    out[key] = Evidence(piece.start, piece.end, piece.text, round(p, 6))
        return out

    def verify_batch(
        self,
        sources: Sequence[str],
        summaries: Sequence[str],
        progress: Callable[[int, int], None] | None = None,
        group_size: int = 8,
    ) -> list[Report]:
        """Verify many pairs; the (chunk, sentence) pairs of `group_size` rows share forward passes."""
        validate_batch(sources, summaries)
        reports: list[Report] = []
        total = len(sources)
        for g in range(0, total, max(1, group_size)):
            rows = list(range(g, min(total, g + max(1, group_size))))
            plan = []  # per row: (sentences, chunks)
            premises, hypotheses, where = [], [], []
            for r in rows:
                sents = split_sentences(summaries[r])
                chunks = chunk_source(sources[r], self.tokenizer, self._chunk_budget(sents), self.chunk_overlap)
                plan.append((sents, chunks))
                for si, s in enumerate(sents):
                    for ci, c in enumerate(chunks):
                        premises.append(c.text)
                        hypotheses.append(s.text)
                        where.append((len(plan) - 1, si, ci))
            probs = self.support_probs(premises, hypotheses)
            table: dict[tuple[int, int], list[float]] = {}
            for (ri, si, ci), p in zip(where, probs):
                table.setdefault((ri, si), [0.0] * len(plan[ri][1]))[ci] = p
            best_chunks = {}  # (row, sentence) -> (chunk, support)
            for ri, _ in enumerate(rows):
                sents, chunks = plan[ri]
                for si in range(len(sents)):
                    per_chunk = table[(ri, si)]
                    best = max(range(len(per_chunk)), key=per_chunk.__getitem__)
                    best_chunks[(ri, si)] = (chunks[best], per_chunk[best])
            pointers = self._sentence_evidence(rows, sources, plan, best_chunks)
            for ri, r in enumerate(rows):
                sents, chunks = plan[ri]
                scores, evidence = [], []
                for si in range(len(sents)):
                    c, support = best_chunks[(ri, si)]
                    chunk_ev = Evidence(c.start, c.end, c.text, round(support, 6))
                    pointer = pointers.get((ri, si))
                    # The closest source sentence first (what a reader looks at), then the chunk the model read.
                    evidence.append([pointer, chunk_ev] if pointer is not None else [chunk_ev])
                    scores.append(1.0 - support)
                reports.append(build_report(
                    self.name, sents, scores, self.threshold, evidence=evidence,
                    extra={"model": self.model_name, "chunks": len(chunks), "support_label": self.label_source,
                           **({"preset": self.preset.name} if self.preset else {})},
                ))
            if progress is not None:
                progress(len(reports), total)
        return reports
