"""Lazy, cached models for the app: one instance of each per process, one lock for the accelerator.

Nothing loads at import or when the UI is built; the first event that needs a model loads it (under a
lock, so two first requests do not load it twice) and later events reuse it. Every model call goes
through `hub.run(...)`, which holds `hub.model_lock`: with one GPU that is the queue. The batch tab
takes the lock per row, so interactive users interleave with a long batch job instead of waiting for it.

    hub = ModelHub(AppConfig())
    report = hub.run(hub.verifier().verify, source, summary)
    summary = hub.summarize("extractive", document)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from halluguard.app.config import AppConfig
from halluguard.types import Summary

T = TypeVar("T")

# Offline generator choices: two extractive lengths, so Compare works with no GPU and no server.
EXTRACTIVE_CHOICES = {"extractive (3 sentences)": 3, "extractive (1 sentence)": 1}


class ModelHub:
    """Owns every model the app uses; thread-safe, lazy, cached."""

    def __init__(self, cfg: AppConfig):
        self.cfg = cfg
        # Re-entrant: a summarizer call and the verification that follows may nest under one hold.
        self.model_lock = threading.RLock()
        self._load_lock = threading.RLock()  # re-entrant: a summarizer build loads its base via _get
        self._cache: dict[str, Any] = {}

    # ------------------------------------------------------------------ generic

    def _get(self, key: str, build: Callable[[], T]) -> T:
        if key in self._cache:
            return self._cache[key]
        with self._load_lock:
            if key not in self._cache:
                self._cache[key] = build()
            return self._cache[key]

    def loaded(self) -> list[str]:
        """Names of the models loaded so far (for the Operations panel and for tests)."""
        return sorted(self._cache)

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call `fn` holding the model lock (one model call at a time on the accelerator)."""
        with self.model_lock:
            return fn(*args, **kwargs)

    # ------------------------------------------------------------------ verifier

    def verifier(self):
        """The configured verifier backend (halluguard.verify.get_verifier), built on first use."""

        def build():
            from halluguard.verify import get_verifier

            kw: dict[str, Any] = {}
            if self.cfg.verifier_model:
                kw["model"] = self.cfg.verifier_model
            if self.cfg.verifier_adapter:
                kw["adapter"] = self.cfg.verifier_adapter
            if self.cfg.verifier_preset:
                kw["preset"] = self.cfg.verifier_preset
            if self.cfg.verifier_trust_remote_code:
                kw["trust_remote_code"] = True
            v = get_verifier(self.cfg.verifier, **kw)
            if self.cfg.threshold is not None:
                v.threshold = float(self.cfg.threshold)
            return v

        return self._get(f"verifier:{self.cfg.verifier}", build)

    def verify(self, source: str, summary: str):
        """Verify one pair under the model lock; ValueError for empty input."""
        from halluguard.verify.base import validate_pair

        validate_pair(source, summary)
        self.check_length(source, "source")
        self.check_length(summary, "summary")
        return self.run(self.verifier().verify, source, summary)

    def check_length(self, text: str, what: str) -> None:
        """Refuse text longer than `max_doc_chars` (one request must not tie up the model for minutes)."""
        if len(text) > self.cfg.max_doc_chars:
            raise ValueError(f"the {what} has {len(text):,} characters; this app takes at most "
                             f"{self.cfg.max_doc_chars:,} (--max-doc-chars); use the CLI for longer documents")

    # ------------------------------------------------------------------ generators

    def generator_choices(self) -> list[str]:
        """What the Summarize and Compare tabs offer, from the configured generator."""
        if self.cfg.generator == "hf":
            return ["hf:base"] + [f"hf:{name}" for name in self.cfg.adapters]
        if self.cfg.generator == "openai":
            return [f"openai:{self.cfg.model or 'default'}"] + list(EXTRACTIVE_CHOICES)
        return list(EXTRACTIVE_CHOICES)

    def summarize(self, choice: str, document: str) -> Summary:
        """Summarize one document with a generator choice (see `generator_choices`)."""
        if choice not in self.generator_choices():
            raise ValueError(f"unknown generator {choice!r}; choose one of: {', '.join(self.generator_choices())}")
        if not isinstance(document, str) or not document.strip():
            raise ValueError("the document is empty")
        self.check_length(document, "document")
        if choice in EXTRACTIVE_CHOICES:
            summarizer = self._get(f"summarizer:{choice}", lambda: _extractive(EXTRACTIVE_CHOICES[choice]))
            return self.run(_summarize_one, summarizer, document)
        if choice.startswith("openai:"):
            summarizer = self._get("summarizer:openai", self._build_openai)
            return _summarize_one(summarizer, document)  # a remote server: no local accelerator to guard
        adapter = choice.split(":", 1)[1]
        summarizer = self._get(f"summarizer:hf:{adapter}", lambda: self._build_hf(adapter))
        # Every adapter's summarizer shares one 4-bit base; it switches the active adapter per call,
        # which is only safe with the lock held.
        out = self.run(_summarize_one, summarizer, document)
        out.model = f"{out.model or self.cfg.model} [{adapter}]"  # which adapter wrote it, for Compare
        return out

    def _hf_base(self):
        """(model, tokenizer): the generator base with every configured adapter attached, loaded once."""

        def build():
            from halluguard.loading import ModelSpec, load_model

            spec = ModelSpec(model=self.cfg.model, quantization=self.cfg.quantization,
                             adapters=dict(self.cfg.adapters), allow_fallback=self.cfg.allow_fallback)
            return load_model(spec)

        return self._get("generator:hf", build)

    def _build_hf(self, adapter: str):
        from halluguard.summarize import get_summarizer

        model, tokenizer = self._hf_base()
        return get_summarizer("hf", model=model, tokenizer=tokenizer, adapter=None if adapter == "base" else adapter)

    def _build_openai(self):
        from halluguard.summarize import get_summarizer

        kw: dict[str, Any] = {"model": self.cfg.model or None}
        if self.cfg.base_url:
            kw["base_url"] = self.cfg.base_url
        return get_summarizer("openai", **kw)


def _summarize_one(summarizer, document: str) -> Summary:
    """One document through a batch summarizer; a failed row becomes a ValueError with its message."""
    from halluguard.generation import BatchError

    try:
        return summarizer.summarize([document])[0]
    except BatchError as e:
        errors = getattr(e, "errors", None)
        raise ValueError(next(iter(errors.values())) if errors else str(e)) from None


def _extractive(n_sentences: int):
    from halluguard.summarize import get_summarizer

    return get_summarizer("extractive", num_sentences=n_sentences)
