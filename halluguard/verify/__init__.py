"""Verifier backends behind one API.

    v = get_verifier("lite")                 # offline default, CPU
    v = get_verifier("nli", model="vectara/hallucination_evaluation_model")
    v = get_verifier("span", preset="lettucedetect-base")   # token spans (presets: halluguard.verify.presets)
    v = get_verifier("judge", model="HuggingFaceTB/SmolLM3-3B", quantization="nf4")
    v = get_verifier("dpo-reward", model=BASE, adapter="runs/scorer")

Every backend implements `halluguard.verify.base.Verifier`: `score(sources, summaries) -> list[float]`
and `verify(source, summary) -> Report`.
"""

from __future__ import annotations

import importlib
from typing import Any

from halluguard.verify.base import Verifier, validate_batch, validate_pair

# name -> "module:Class"; modules are imported only when asked for, so `lite` never pulls in a causal LM.
BACKENDS: dict[str, str] = {
    "lite": "halluguard.verify.lite:LiteVerifier",
    "nli": "halluguard.verify.nli:NLIVerifier",
    "span": "halluguard.verify.span:SpanVerifier",
    "entail": "halluguard.verify.entail:EntailVerifier",
    "judge": "halluguard.verify.judge:JudgeVerifier",
    "dpo-reward": "halluguard.verify.dpo_reward:DPORewardVerifier",
}


def get_verifier(name: str = "lite", **kwargs: Any) -> Verifier:
    """Build a verifier backend by name; unknown names raise ValueError listing the choices."""
    key = (name or "").strip().lower().replace("_", "-")
    if key not in BACKENDS:
        raise ValueError(f"unknown verifier backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[key].split(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)


__all__ = ["BACKENDS", "Verifier", "get_verifier", "validate_batch", "validate_pair"]
