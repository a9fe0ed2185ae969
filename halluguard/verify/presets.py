"""Named settings for published hallucination detectors, used through the `span` and `nli` backends.

    get_verifier("span", preset="lettucedetect-base")
    get_verifier("nli", preset="minicheck-roberta-large")
    get_verifier("nli", preset="hhem-2.1-open", trust_remote_code=True)   # runs the repository's code
    get_verifier("span", preset="lettucedetect-base", model="models/lettucedect-base")  # a local copy

A preset fills in what the user did not give (model id, revision, threshold, input format options);
anything passed explicitly wins, so ``model=<local folder>`` keeps the preset's other settings. Nothing
is downloaded here: loading goes through `halluguard.loading.load_model` (local cache first, a quick
clear error when the hub cannot be reached). The table in docs/verifiers.md lists the same facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    """One published detector: where it lives, how it reads its input, and its licence."""

    name: str
    backend: str  # "span" (token classifier) or "nli" (sequence classifier)
    model: str  # hub id
    head: str  # "token-cls" | "seq-cls": the model class the loader builds
    threshold: float  # P(hallucinated) >= threshold -> flagged, as published by the authors
    licence: str
    input_format: str  # what the model reads, in one line
    options: Mapping[str, Any] = field(default_factory=dict)  # other constructor arguments
    needs_remote_code: bool = False  # the repository's own Python code runs on load
    url: str = ""


PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset(
        "lettucedetect-base", "span", "KRLabsOrg/lettucedect-base-modernbert-en-v1", "token-cls", 0.5, "MIT",
        "ModernBERT token classifier (English); pair input (LettuceDetect summary prompt around a source "
        "chunk, summary); label 1 = hallucinated token",
        options={"max_length": 4096, "prompt": "lettucedetect"},
        url="https://huggingface.co/KRLabsOrg/lettucedect-base-modernbert-en-v1",
    ),
    Preset(
        "lettucedetect-large", "span", "KRLabsOrg/lettucedect-large-modernbert-en-v1", "token-cls", 0.5, "MIT",
        "as lettucedetect-base, ModernBERT-large (slower, stronger)",
        options={"max_length": 4096, "prompt": "lettucedetect"},
        url="https://huggingface.co/KRLabsOrg/lettucedect-large-modernbert-en-v1",
    ),
    Preset(
        "hhem-2.1-open", "nli", "vectara/hallucination_evaluation_model", "seq-cls", 0.5, "Apache-2.0",
        "(source chunk, summary sentence) scored by the model's own predict() (a Flan-T5 prompt; its code "
        "also fetches the google/flan-t5-base tokenizer); output = P(consistent)",
        needs_remote_code=True,
        url="https://huggingface.co/vectara/hallucination_evaluation_model",
    ),
    Preset(
        "minicheck-roberta-large", "nli", "lytang/MiniCheck-RoBERTa-Large", "seq-cls", 0.5, "MIT",
        "(document chunk, claim sentence) pair classifier; label 1 = supported. main holds pickle weights "
        "only, so the preset pins the hub's safetensors conversion (refs/pr/1)",
        options={"revision": "refs/pr/1", "support_label": 1},
        url="https://huggingface.co/lytang/MiniCheck-RoBERTa-Large",
    ),
    Preset(
        "minicheck-deberta-v3-large", "nli", "lytang/MiniCheck-DeBERTa-v3-Large", "seq-cls", 0.5, "MIT",
        "as minicheck-roberta-large, DeBERTa-v3-large body; safetensors from the hub's conversion PR (refs/pr/1)",
        options={"revision": "refs/pr/1", "support_label": 1},
        url="https://huggingface.co/lytang/MiniCheck-DeBERTa-v3-Large",
    ),
]}


def get_preset(name: str, backend: str | None = None) -> Preset:
    """The preset called `name`; ValueError listing the choices, or naming the backend it belongs to."""
    key = (name or "").strip().lower()
    if key not in PRESETS:
        names = [p for p in PRESETS if backend is None or PRESETS[p].backend == backend]
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(names)}")
    p = PRESETS[key]
    if backend is not None and p.backend != backend:
        raise ValueError(f"preset {p.name!r} is for the {p.backend!r} backend: use --backend {p.backend} "
                         f"--preset {p.name} (get_verifier({p.backend!r}, preset={p.name!r}))")
    return p


def presets_for(backend: str) -> list[str]:
    """Names of the presets a backend takes."""
    return [n for n, p in PRESETS.items() if p.backend == backend]


def apply_preset(backend: str, preset: str | None, given: dict[str, Any]) -> tuple[Preset | None, dict[str, Any]]:
    """(preset, arguments): `given` (None = not given) completed from the preset; explicit values win.

    Refuses, before anything loads, a preset whose repository runs its own code unless
    ``trust_remote_code=True`` was passed: choosing a preset is not consent to run code.
    """
    if preset is None or preset == "":
        return None, dict(given)
    p = get_preset(preset, backend)
    out = dict(given)
    for key, value in {"model": p.model, "threshold": p.threshold, **p.options}.items():
        if out.get(key) is None:
            out[key] = value
    if p.needs_remote_code and not out.get("trust_remote_code") and out["model"] == p.model:
        raise ValueError(f"preset {p.name!r} runs code from {p.model} (its own model class); read it at {p.url}, "
                         "then opt in with trust_remote_code=True (CLI: --trust-remote-code)")
    return p, out


def preset_hint(p: Preset | None, err: Exception) -> Exception:
    """`err` with a line on keeping the preset's settings for a local copy (for HubUnavailable)."""
    if p is None:
        return err
    name = p.model.rsplit("/", 1)[-1]
    return type(err)(f"{err} With a local copy, keep the preset: --preset {p.name} --model models/{name}.")


__all__ = ["PRESETS", "Preset", "apply_preset", "get_preset", "preset_hint", "presets_for"]
