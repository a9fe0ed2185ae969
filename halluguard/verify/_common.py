"""Helpers shared by the model-based verifiers (`nli`, `judge`, `dpo-reward`).

What lives here:

- sentence splitting with character offsets and token-budgeted source chunking with overlap, so that a
  source longer than a model's context is verified chunk by chunk (issue 6 section 2);
- `build_report`: per-sentence P(hallucinated) (or None = the model could not say) -> a full `Report`;
- the **3B scorer prompt contract** shared with `halluguard.train` (H6): `scorer_messages`,
  `scorer_prompt`, `scorer_token_ids` and the calibration file `halluguard_scorer.json`
  (`ScorerCalibration`) saved next to the scorer adapter.

The scorer contract, for whoever trains the scorer::

    from halluguard.verify._common import scorer_messages, save_scorer_calibration
    row = {"prompt": scorer_messages(source),                       # TRL conversational format
           "chosen": [{"role": "assistant", "content": faithful}],
           "rejected": [{"role": "assistant", "content": hallucinated}]}
    ...  # DPOTrainer(...).train(); trainer.save_model(out_dir)
    save_scorer_calibration(out_dir, beta=0.1, bias=b, scale=s, threshold=0.5, base_model=BASE)

`scorer_token_ids(tokenizer, source, summary)` tokenizes exactly as TRL 1.16's DPOTrainer does for that
row (chat template, completion = where prompt and prompt+completion token ids diverge), so the reward the
verifier computes is the reward DPO trained.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from halluguard.types import Evidence, Report, SentenceVerdict, Span, label_for

# --------------------------------------------------------------------------------------------------
# Sentences and chunks
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextPiece:
    """A stretch of a text: ``text == full[start:end]``."""

    start: int
    end: int
    text: str


# Fallback splitter (used until/unless halluguard.text provides one): a sentence ends at . ! ? (plus
# closing quotes/brackets) followed by whitespace, or at a blank line / newline. Abbreviations like
# "e.g." or "Dr." may over-split; harmless for verification (each piece is still checked).
_SENT_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+")


_ABBREV = frozenset("mr mrs ms dr prof st sr jr vs etc inc ltd co corp no fig eg ie e.g i.e u.s".split())  # noqa: SIM905


def _fallback_split(text: str) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    pos = 0
    for m in _SENT_END.finditer(text):
        if text[m.start()] != "\n":
            word = text[pos : m.start()].rstrip("\"')]").rsplit(None, 1)[-1:] or [""]
            w = word[0].rstrip(".").lower()
            if w in _ABBREV or (len(w) == 1 and w.isalpha()):  # "Dr. Smith", "J. Doe": not an end
                continue
        end = m.start() if text[m.start()] == "\n" else m.end()
        out.append((pos, end))
        pos = m.end()
    out.append((pos, len(text)))
    return out


def split_sentences(text: str) -> list[TextPiece]:
    """Sentences of `text` with character offsets (whitespace trimmed, empty pieces dropped).

    Uses `halluguard.text.split_sentences` when that module exists, else a small regex fallback.
    """
    spans: list[tuple[int, int]] | None = None
    try:  # H2's splitter, when it has landed; its items may be objects or (start, end[, text]) tuples
        from halluguard import text as _text  # type: ignore[attr-defined]

        raw = _text.split_sentences(text)
        spans = []
        for item in raw:
            if isinstance(item, tuple | list):
                spans.append((int(item[0]), int(item[1])))
            else:
                spans.append((int(item.start), int(item.end)))
    except (ImportError, AttributeError, TypeError, IndexError, ValueError):
        spans = None
    if spans is None:
        spans = _fallback_split(text)
    pieces = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            pieces.append(TextPiece(s, e, text[s:e]))
    if not pieces and text.strip():
        s = len(text) - len(text.lstrip())
        e = len(text.rstrip())
        pieces = [TextPiece(s, e, text[s:e])]
    return pieces


def _token_offsets(tokenizer: Any, text: str) -> list[tuple[int, int]] | None:
    """Character offsets of each token of `text` (no special tokens), or None for slow tokenizers."""
    try:
        # verbose=False: counting a long source is not feeding it to the model; no "too long" warning.
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    except (NotImplementedError, TypeError, ValueError):
        return None
    offs = enc.get("offset_mapping") if hasattr(enc, "get") else None
    if offs is None:
        return None
    return [(int(a), int(b)) for a, b in offs]


def count_tokens(tokenizer: Any, text: str) -> int:
    """Number of tokens of `text` without special tokens."""
    return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])


def chunk_source(
    source: str,
    tokenizer: Any,
    max_tokens: int,
    overlap_tokens: int = 0,
    sentences: Sequence[TextPiece] | None = None,
) -> list[TextPiece]:
    """Split `source` into chunks of at most `max_tokens` tokens that overlap by ~`overlap_tokens`.

    Chunks are packed from whole sentences (so evidence reads naturally); the next chunk starts far
    enough back to repeat at most `overlap_tokens` tokens of the previous one (at least one sentence
    is always new). A single sentence longer than `max_tokens` is cut by tokens. A source that fits
    is one chunk: the whole (trimmed) source.
    """
    if max_tokens < 1:
        raise ValueError(f"chunk size must be at least 1 token, got {max_tokens}")
    overlap_tokens = max(0, min(overlap_tokens, max_tokens // 2))
    sents = list(sentences) if sentences is not None else split_sentences(source)
    if not sents:
        return []
    offsets = _token_offsets(tokenizer, source)
    if offsets is not None:
        # Tokens per sentence from ONE tokenization of the source (fast even for 50k words).
        starts = [o[0] for o in offsets]
        import bisect

        def ntok(p: TextPiece) -> int:
            return max(1, bisect.bisect_left(starts, p.end) - bisect.bisect_left(starts, p.start))
    else:
        def ntok(p: TextPiece) -> int:
            return max(1, count_tokens(tokenizer, p.text))

    # Cut over-long sentences into token windows first.
    units: list[tuple[TextPiece, int]] = []
    for p in sents:
        n = ntok(p)
        if n <= max_tokens:
            units.append((p, n))
            continue
        sub = _token_offsets(tokenizer, p.text)
        if sub is None:  # slow tokenizer: cut by characters proportionally
            step = max(1, len(p.text) * max_tokens // n)
            sub_spans = [(i, min(i + step, len(p.text))) for i in range(0, len(p.text), step)]
            for a, b in sub_spans:
                units.append((TextPiece(p.start + a, p.start + b, source[p.start + a : p.start + b]), max_tokens))
            continue
        for i in range(0, len(sub), max_tokens):
            win = sub[i : i + max_tokens]
            a, b = p.start + win[0][0], p.start + win[-1][1]
            units.append((TextPiece(a, b, source[a:b]), len(win)))

    chunks: list[TextPiece] = []
    i = 0
    while i < len(units):
        j, total = i, 0
        while j < len(units) and total + units[j][1] <= max_tokens:
            total += units[j][1]
            j += 1
        j = max(j, i + 1)
        a, b = units[i][0].start, units[j - 1][0].end
        chunks.append(TextPiece(a, b, source[a:b]))
        if j >= len(units):
            break
        # Step back over trailing units while they fit in the overlap budget, but always advance.
        k, back = j, 0
        while k - 1 > i and back + units[k - 1][1] <= overlap_tokens:
            back += units[k - 1][1]
            k -= 1
        i = k
    return chunks


class ApproxTokenizer:
    """Counts tokens without a model's tokenizer (a remote judge): word pieces of at most 4 characters
    plus punctuation, which over-counts BPE tokens of English text, so chunks err on the small side.
    Implements just what `chunk_source` and `count_tokens` call."""

    _PIECE = re.compile(r"\w{1,4}|[^\w\s]", re.UNICODE)

    def __call__(self, text: str, add_special_tokens: bool = False, return_offsets_mapping: bool = False, **_: Any):
        spans = [(m.start(), m.end()) for m in self._PIECE.finditer(text)]
        out: dict[str, Any] = {"input_ids": list(range(len(spans)))}
        if return_offsets_mapping:
            out["offset_mapping"] = spans
        return out


_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(
    ["a", "an", "the", "of", "to", "in", "on", "at", "for", "and", "or", "but", "is", "are", "was", "were", "be", "been", "by", "with", "as", "that", "this", "it", "its", "from", "has", "have", "had", "not", "no", "do", "does", "did", "will", "would", "can", "could", "should", "may", "might", "than", "then", "there", "their", "they", "he", "she", "his", "her", "we", "our"]
)


def _content_words(text: str) -> set[str]:
    return {w for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in _STOP}


def lexical_evidence(sentence: str, source: str, within: TextPiece | None = None) -> Evidence | None:
    """The source sentence (inside `within`, default the whole source) sharing most content words with
    `sentence`; score = fraction of the sentence's content words it contains. Cheap pointer for backends
    whose model reads the whole source at once (judge, dpo-reward): the model's verdict is not based on it.
    """
    region = within or TextPiece(0, len(source), source)
    words = _content_words(sentence)
    best: tuple[float, TextPiece] | None = None
    for p in split_sentences(region.text):
        piece = TextPiece(region.start + p.start, region.start + p.end, p.text)
        overlap = len(words & _content_words(p.text)) / len(words) if words else 0.0
        if best is None or overlap > best[0]:
            best = (overlap, piece)
    if best is None:
        return None
    return Evidence(start=best[1].start, end=best[1].end, text=best[1].text, score=round(best[0], 4))


# --------------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------------


def _finite(x: float | None) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def build_report(
    backend: str,
    sentences: Sequence[TextPiece],
    scores: Sequence[float | None],
    threshold: float,
    evidence: Sequence[list[Evidence]] | None = None,
    spans: Sequence[list[Span] | None] | None = None,
    reasons: Sequence[list[str]] | None = None,
    extra: dict[str, Any] | None = None,
    overall: float | None = None,
) -> Report:
    """A `Report` from per-sentence P(hallucinated); `None`/NaN means the model could not decide.

    Aggregation (documented in docs/verifiers.md): overall score = max sentence P(hallucinated)
    (= 1 - min support, MiniCheck/SummaC style: one unsupported sentence makes the summary
    hallucinated), unless `overall` is given (dpo-reward scores the whole summary). Label:
    "hallucinated" if the score >= threshold; otherwise "unknown" if any sentence is unknown (an
    unread sentence may hide a hallucination, so it never counts as supported); otherwise "faithful".
    All sentences unknown -> score NaN, label "unknown".
    A flagged sentence with no finer spans given gets one span covering the whole sentence.
    """
    verdicts: list[SentenceVerdict] = []
    all_spans: list[Span] = []
    known = [float(s) for s in scores if _finite(s)]
    for i, (piece, s) in enumerate(zip(sentences, scores)):
        ev = list(evidence[i]) if evidence is not None else []
        why = list(reasons[i]) if reasons is not None else []
        if not _finite(s):
            verdicts.append(SentenceVerdict(piece.start, piece.end, piece.text, "unknown", float("nan"), ev, [], why))
            continue
        s = float(s)
        sent_spans: list[Span] = []
        if s >= threshold:
            given = spans[i] if spans is not None else None
            sent_spans = list(given) if given else [Span(piece.start, piece.end, piece.text, round(s, 6), "model")]
            verdict = "unsupported"
        else:
            verdict = "supported"
        all_spans.extend(sent_spans)
        verdicts.append(SentenceVerdict(piece.start, piece.end, piece.text, verdict, round(s, 6), ev, sent_spans, why))
    if overall is not None and _finite(overall):
        score = float(overall)
    elif known:
        score = max(known)
    else:
        score = float("nan")
    label = label_for(score, threshold)
    if label == "faithful" and len(known) < len(sentences):
        label = "unknown"
    all_spans.sort(key=lambda sp: (sp.start, sp.end))
    return Report(
        score=round(score, 6) if _finite(score) else score,
        label=label,
        threshold=threshold,
        backend=backend,
        sentences=verdicts,
        spans=all_spans,
        extra=dict(extra or {}),
    )


def model_context(model: Any, tokenizer: Any, override: int | None = None) -> int:
    """The number of tokens the model can read: `override`, else the smaller of the model config's
    position limit and the tokenizer's `model_max_length` (ignoring the 'unlimited' sentinel)."""
    if override:
        return int(override)
    limits = []
    cfg = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        v = getattr(cfg, key, None)
        if isinstance(v, int) and v > 0:
            limits.append(v)
            break
    tml = getattr(tokenizer, "model_max_length", None)
    if isinstance(tml, int) and 0 < tml < 10_000_000:
        limits.append(tml)
    return min(limits) if limits else 2048


def model_device(model: Any):
    """The device of the model's first parameter (inputs go there; accelerate moves the rest)."""
    import torch

    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


# --------------------------------------------------------------------------------------------------
# Loading (through halluguard.loading, the project's one loader and its safety rules)
# --------------------------------------------------------------------------------------------------


def load_causal_lm(
    model: str,
    *,
    quantization: str = "none",
    dtype: str = "auto",
    device_map: str | dict | None = "auto",
    adapters: dict[str, str] | None = None,
    trust_remote_code: bool = False,
    allow_fallback: bool = False,
    revision: str | None = None,
):
    """(model, tokenizer) for a causal LM, optionally 4-/8-bit, with named LoRA adapters loaded."""
    from halluguard.loading import ModelSpec, load_model

    spec = ModelSpec(
        model=model, quantization=quantization, dtype=dtype, device_map=device_map,
        adapters=dict(adapters or {}), trust_remote_code=trust_remote_code,
        allow_fallback=allow_fallback, revision=revision,
    )
    return load_model(spec)


def load_classifier(
    model: str,
    *,
    head: str = "seq-cls",
    quantization: str = "none",
    dtype: str = "auto",
    device_map: str | dict | None = "auto",
    trust_remote_code: bool = False,
    allow_fallback: bool = False,
    revision: str | None = None,
):
    """(model, tokenizer or None) for a classifier: ``head="seq-cls"`` (NLI / HHEM / MiniCheck) or
    ``"token-cls"`` (LettuceDetect-style span detectors).

    Loaded by `halluguard.loading.load_model` with its rules: safetensors only, `trust_remote_code`
    off unless asked, 4-/8-bit only where bitsandbytes runs (else an error, or unquantized with
    `allow_fallback`) with the classification head kept in full precision, the local cache first and a
    quick failure when a hub id is not cached and the hub cannot be reached. The tokenizer is None when
    the repository has none (HHEM carries its own inside the model).
    """
    from halluguard.loading import ModelSpec, load_model

    spec = ModelSpec(model=model, head=head, quantization=quantization, dtype=dtype, device_map=device_map,
                     trust_remote_code=trust_remote_code, allow_fallback=allow_fallback, revision=revision)
    return load_model(spec)


# --------------------------------------------------------------------------------------------------
# The 3B DPO scorer: prompt contract and calibration file (shared with halluguard.train)
# --------------------------------------------------------------------------------------------------

SCORER_PROMPT_VERSION = 1

SCORER_SYSTEM = "You write summaries that state only what the source document supports."

SCORER_TEMPLATE = "Summarize the following document.\n\nDocument:\n{source}"

CALIBRATION_FILE = "halluguard_scorer.json"


def scorer_messages(source: str, template: str | None = None, system: str | None = None) -> list[dict[str, str]]:
    """The prompt (TRL conversational format) the 3B DPO scorer is trained and scored with.

    The DPO scorer learns to prefer faithful summaries of `source`; the verifier scores a summary by
    the implicit reward of the assistant turn that follows these messages.
    """
    tmpl = template or SCORER_TEMPLATE
    if "{source}" not in tmpl:
        raise ValueError("scorer prompt template must contain '{source}'")
    msgs = []
    sys_text = SCORER_SYSTEM if system is None else system
    if sys_text:
        msgs.append({"role": "system", "content": sys_text})
    msgs.append({"role": "user", "content": tmpl.replace("{source}", source)})
    return msgs


def scorer_prompt(source: str, template: str | None = None, system: str | None = None) -> str:
    """Plain-text form of the scorer prompt, for tokenizers without a chat template.

    Used with TRL's standard (non-conversational) format: {"prompt": scorer_prompt(src),
    "chosen": " " + faithful, "rejected": " " + hallucinated} (TRL appends the EOS token).
    """
    tmpl = template or SCORER_TEMPLATE
    if "{source}" not in tmpl:
        raise ValueError("scorer prompt template must contain '{source}'")
    sys_text = SCORER_SYSTEM if system is None else system
    head = f"{sys_text}\n\n" if sys_text else ""
    return f"{head}{tmpl.replace('{source}', source)}\n\nSummary:"


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def scorer_token_ids(
    tokenizer: Any,
    source: str,
    summary: str,
    template: str | None = None,
    system: str | None = None,
) -> tuple[list[int], list[int]]:
    """(prompt_ids, completion_ids) for (source, summary), tokenized exactly like TRL 1.16's DPOTrainer.

    With a chat template: prompt = chat(messages, add_generation_prompt=True), full = chat(messages +
    assistant summary); the completion starts where the two id lists diverge. Without one: TRL's
    standard format, prompt text + " " + summary + EOS.
    """
    if getattr(tokenizer, "chat_template", None):
        msgs = scorer_messages(source, template, system)
        p = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=True)
        f = tokenizer.apply_chat_template(
            msgs + [{"role": "assistant", "content": summary}], tokenize=True, return_dict=True
        )
        prompt_ids, full_ids = list(p["input_ids"]), list(f["input_ids"])
    else:
        text = scorer_prompt(source, template, system)
        completion = " " + summary
        eos = getattr(tokenizer, "eos_token", None) or ""
        if eos and not completion.endswith(eos):
            completion += eos
        prompt_ids = list(tokenizer(text=text)["input_ids"])
        full_ids = list(tokenizer(text=text + completion)["input_ids"])
    n = _common_prefix(prompt_ids, full_ids)
    return prompt_ids[:n], full_ids[n:]


@dataclass
class ScorerCalibration:
    """What `halluguard_scorer.json` (saved next to the scorer adapter) holds.

    The verifier maps the implicit reward r (summed over the summary's tokens, times beta) to
    P(hallucinated) = sigmoid(-(r - bias) / scale). Fit bias/scale on a dev split: a logistic
    regression P(hallucinated) = sigmoid(a * r + c) gives scale = -1 / a and bias = -c / a (a < 0).
    """

    beta: float = 0.1  # the DPO beta the scorer was trained with
    bias: float = 0.0  # reward at which P(hallucinated) = 0.5
    scale: float = 1.0  # reward units per logit; > 0
    threshold: float = 0.5  # P(hallucinated) >= threshold -> "hallucinated"
    sentence_bias: float | None = None  # per-sentence calibration (reward summed over a sentence); None = bias
    sentence_scale: float | None = None  # None = scale
    prompt_template: str = SCORER_TEMPLATE  # must contain "{source}"
    system_prompt: str | None = SCORER_SYSTEM  # None or "" = no system message
    prompt_version: int = SCORER_PROMPT_VERSION
    base_model: str = ""  # hub id or path of the base the adapter was trained on
    fitted_on: str = ""  # which data bias/scale were fitted on (never the reported test set)
    notes: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> ScorerCalibration:
        for name in ("beta", "scale"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not v > 0:
                raise ValueError(f"{CALIBRATION_FILE}: {name} must be a positive number, got {v!r}")
        if self.sentence_scale is not None and not self.sentence_scale > 0:
            raise ValueError(f"{CALIBRATION_FILE}: sentence_scale must be positive, got {self.sentence_scale!r}")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"{CALIBRATION_FILE}: threshold must be in [0, 1], got {self.threshold!r}")
        if "{source}" not in self.prompt_template:
            raise ValueError(f"{CALIBRATION_FILE}: prompt_template must contain '{{source}}'")
        return self


def load_scorer_calibration(adapter_dir: str | Path | None) -> ScorerCalibration:
    """Read `halluguard_scorer.json` from the adapter directory (defaults when it is absent), or the
    calibration JSON file `adapter_dir` names.

    Unknown keys raise ValueError (a typo must not silently fall back to a default).
    """
    if adapter_dir is None:
        return ScorerCalibration()
    path = Path(adapter_dir)
    if not path.is_file():
        path = path / CALIBRATION_FILE
        if not path.is_file():
            return ScorerCalibration()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")  # noqa: TRY004 - bad input is a ValueError here
    known = {f.name for f in fields(ScorerCalibration)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; allowed: {sorted(known)}")
    return ScorerCalibration(**data).validate()


def save_scorer_calibration(adapter_dir: str | Path, **values: Any) -> Path:
    """Write `halluguard_scorer.json` into `adapter_dir` (fields of `ScorerCalibration`); returns the path."""
    cal = ScorerCalibration(**values).validate()
    path = Path(adapter_dir) / CALIBRATION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(cal), indent=2) + "\n", encoding="utf-8")
    return path


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


__all__ = [
    "CALIBRATION_FILE",
    "SCORER_PROMPT_VERSION",
    "SCORER_SYSTEM",
    "SCORER_TEMPLATE",
    "ScorerCalibration",
    "TextPiece",
    "build_report",
    "chunk_source",
    "lexical_evidence",
    "load_scorer_calibration",
    "save_scorer_calibration",
    "scorer_messages",
    "scorer_prompt",
    "scorer_token_ids",
    "split_sentences",
]
