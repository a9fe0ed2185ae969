"""Loaders for the claim / evidence sets of the pool (premise = evidence, hypothesis = claim).

| set | files | label 0 | label 1 | skipped |
|---|---|---|---|---|
| fever | RTE-Fever/processed/dev.raw.input{0,1}, dev.label (aligned; input0 = evidence) | entailment | not_entailment | - |
| covidfact | RTE-covidfact/{train,dev}.tsv (last column) | entailment | not_entailment | test.tsv (no labels) |
| climate_fever | dataset/climate-fever.jsonl, one pair per evidence | SUPPORTS | REFUTES, NOT_ENOUGH_INFO | - |
| healthver | data/healthver_{dev,test}.csv | Supports | Refutes, Neutral | - |
| factcheck_gpt | subtasks/subtask3_claim_evidence_stance.jsonl | completely-support | partially-support, refute, irrelevant | - |
| wice (claims) | code_and_resources/entailment_inputs/oracle_chunks/claim/{dev,test}.jsonl | supported | partially_supported, not_supported | - |
| wice (sub-claims) | data/non_supported_tokens/{train,dev,test}.jsonl, premise = the supporting sentences, spans = the non-supported tokens | - | partially_supported | - |

"partially supported" is 1: a summary sentence that is only partly backed by its evidence is a
hallucination for this project.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .nli import read_tsv
from .records import PoolPair, clean, detok, doc_key, locate_tokens, nli_label
from .sources import make_pair


def _jsonl(path: Path):
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{i + 1}: not JSON ({e})") from e


def _pair(source: str, evidence: str, claim: str, label: int, **kw) -> PoolPair | None:
    evidence, claim = clean(evidence), clean(claim)
    if not evidence or not claim:
        return None
    return make_pair(source, evidence, claim, label, doc_key=doc_key(evidence), **kw)


def load_fever(folder: Path) -> list[PoolPair]:
    base = Path(folder) / "RTE-Fever" / "processed"
    ev = (base / "dev.raw.input0").read_text(encoding="utf-8").splitlines()
    cl = (base / "dev.raw.input1").read_text(encoding="utf-8").splitlines()
    lab = (base / "dev.label").read_text(encoding="utf-8").splitlines()
    if not len(ev) == len(cl) == len(lab):
        raise ValueError(f"{base}: dev.raw.input0/input1/label have {len(ev)}/{len(cl)}/{len(lab)} lines")
    out = [_pair("fever", detok(e), c, nli_label(lab_, f"{base}/dev.label:{i + 1}"))
           for i, (e, c, lab_) in enumerate(zip(ev, cl, lab))]
    return [p for p in out if p]


def load_covidfact(folder: Path) -> list[PoolPair]:
    out = []
    for split in ("train", "dev"):  # test.tsv has no labels
        path = Path(folder) / "RTE-covidfact" / f"{split}.tsv"
        for r in read_tsv(path, header=False)[1:]:
            if len(r) >= 4:
                out.append(_pair("covidfact", r[1], r[2], nli_label(r[3], str(path)), kind=split))
    return [p for p in out if p]


_CLIMATE = {"SUPPORTS": 0, "REFUTES": 1, "NOT_ENOUGH_INFO": 1}


def load_climate_fever(folder: Path) -> list[PoolPair]:
    path = Path(folder) / "dataset" / "climate-fever.jsonl"
    out = []
    for rec in _jsonl(path):
        for ev in rec["evidences"]:
            if ev["evidence_label"] not in _CLIMATE:
                raise ValueError(f"{path}: unknown evidence_label {ev['evidence_label']!r}")
            out.append(_pair("climate_fever", ev["evidence"], rec["claim"], _CLIMATE[ev["evidence_label"]],
                             kind=ev["evidence_label"].lower()))
    return [p for p in out if p]


_HEALTHVER = {"supports": 0, "refutes": 1, "neutral": 1}


def load_healthver(folder: Path) -> list[PoolPair]:
    out = []
    for path in sorted((Path(folder) / "data").glob("healthver_*.csv")):
        with open(path, encoding="utf-8", newline="") as f:
            for r in csv.DictReader(f):
                lab = _HEALTHVER.get(clean(r["label"]).lower())
                if lab is None:
                    raise ValueError(f"{path}: unknown label {r['label']!r}")
                out.append(_pair("healthver", r["evidence"], r["claim"], lab, kind=path.stem))
    return [p for p in out if p]


_STANCE = {"completely-support": 0, "partially-support": 1, "refute": 1, "irrelevant": 1}


def load_factcheck_gpt(folder: Path) -> list[PoolPair]:
    path = Path(folder) / "subtasks" / "subtask3_claim_evidence_stance.jsonl"
    out = []
    for rec in _jsonl(path):
        if rec["stance"] not in _STANCE:
            raise ValueError(f"{path}: unknown stance {rec['stance']!r}")
        out.append(_pair("factcheck_gpt", rec["evidence"], rec["claim"], _STANCE[rec["stance"]], kind=rec["stance"]))
    return [p for p in out if p]


_WICE = {"supported": 0, "partially_supported": 1, "not_supported": 1}


def load_wice(folder: Path) -> list[PoolPair]:
    folder = Path(folder)
    out = []
    for split in ("dev", "test"):
        path = folder / "code_and_resources" / "entailment_inputs" / "oracle_chunks" / "claim" / f"{split}.jsonl"
        for rec in _jsonl(path):
            out.append(_pair("wice", " ".join(rec["evidence"]), rec["claim"], _WICE[rec["label"]],
                             kind=f"claim/{rec['label']}"))
    for split in ("train", "dev", "test"):
        path = folder / "data" / "non_supported_tokens" / f"{split}.jsonl"
        for rec in _jsonl(path):
            out.append(_wice_subclaim(rec))
    return [p for p in out if p]


def _wice_subclaim(rec: dict) -> PoolPair | None:
    """A partially supported sub-claim against the sentences its annotators cited, with the tokens they
    marked unsupported as spans."""
    claim = clean(rec["claim"])
    cited = sorted({i for group in rec["supporting_sentences"] for i in group})
    evidence = " ".join(rec["evidence"][i] for i in cited if i < len(rec["evidence"]))
    spans = locate_tokens(claim, rec["claim_tokens"], rec["non_supported_spans"])
    if not spans:
        return None
    return _pair("wice", evidence, claim, _WICE[rec["label"]], spans=tuple(spans), kind="subclaim_tokens")
