"""examples/sft_vs_dpo.ipynb runs top to bottom in a real Jupyter kernel, offline, on the shipped example,
and shows what it promises: the verdict with its reason, the charts, both summaries with their flags."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples/sft_vs_dpo.ipynb"


def _text(output: dict) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    data = output.get("data", {})
    return data.get("text/markdown", "") + data.get("text/html", "") + data.get("text/plain", "")


@pytest.mark.slow
def test_sft_vs_dpo_notebook_runs_offline(monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # The kernel inherits the environment: offline, and the Agg-free inline backend Jupyter sets itself.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    start = time.monotonic()
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    elapsed = time.monotonic() - start

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(_text(o) for o in outputs)
    report = json.loads((ROOT / "examples/sft_vs_dpo/verdict.json").read_text())
    assert f"Verdict: **{report['verdict']}**" in text and report["reason"] in text
    assert "| hallucination rate (%) |" in text  # the metrics table
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2  # verdict chart + per-document chart
    assert text.count("P(hallucination) =") >= 3  # SFT, DPO and the extractive baseline, each verified
    assert "<mark" in text  # flagged spans highlighted
    assert "verdict.json" in text and "per_document.jsonl" in text  # the verdict recomputed from the summaries
    assert elapsed < 180, f"the notebook took {elapsed:.0f} s; keep it quick"
