"""Loaders for the grounded-dialogue sets (premise = the knowledge snippet, hypothesis = the response).

| set | files | label 0 | label 1 | skipped |
|---|---|---|---|---|
| begin | {cmu-dog,topicalchat,wow}/begin_*.tsv | Fully attributable | Not fully attributable | Generic |
| faithdial | data-audit/{CTRL,DoHA,GPT2}/*.csv (`begin_label`) | entailment, entailment+uncooperative | hallucination, entailment+hallucination | generic |
| faithdial | data-audit/gold/*.csv (`BEGIN`) | Entailment | Hallucination, Partial Hallucination | Generic, Uncooperative, empty |
| q2 | third_party/data/{dodeca,memnet}_{consistent,inconsistent}.csv | *_consistent | *_inconsistent | cross_annotation.csv (labels undocumented) |

The dialogue history is not part of the premise: a response is judged against its knowledge only.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from .nli import read_tsv
from .records import PoolPair, clean, detok, doc_key
from .sources import make_pair

_BEGIN = {"fully attributable": 0, "not fully attributable": 1, "generic": None}


def _pair(source: str, knowledge: str, response: str, label: int | None, kind: str) -> PoolPair | None:
    knowledge, response = detok(clean(knowledge)), detok(clean(response))
    if label is None or not knowledge or not response:
        return None
    return make_pair(source, knowledge, response, label, doc_key=doc_key(knowledge), kind=kind)


def load_begin(folder: Path) -> list[PoolPair]:
    out = []
    for path in sorted(Path(folder).glob("*/begin_*.tsv")):
        for r in read_tsv(path):
            lab = clean(r["begin_label"]).lower()
            if lab not in _BEGIN:
                raise ValueError(f"{path}: unknown begin_label {r['begin_label']!r}")
            out.append(_pair("begin", r["knowledge"], r["response"], _BEGIN[lab], f"{path.parent.name}/{r['model_name']}"))
    return [p for p in out if p]


def _faithdial_label(value: str, where: str) -> int | None:
    """Comma-separated BEGIN tags of the audit files -> label; any hallucination tag wins."""
    tags = {t.strip() for t in re.split(r"[,.]", clean(value).lower()) if t.strip()}
    if not tags:
        return None
    if any(t.startswith("hallucinat") or t == "partial hallucination" for t in tags):
        return 1
    if any(t.startswith("entail") for t in tags):
        return 0
    if tags <= {"generic", "uncooperative"}:
        return None
    raise ValueError(f"{where}: unknown FaithDial label {value!r}")


def load_faithdial(folder: Path) -> list[PoolPair]:
    out = []
    for path in sorted((Path(folder) / "data-audit").glob("*/*.csv")):
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            if "BEGIN" in r:  # gold responses
                out.append(_pair("faithdial", r["evidence"], r["response"], _faithdial_label(r["BEGIN"], str(path)),
                                 f"gold/{path.stem}"))
            else:  # model responses: the response column is named after the model
                model_col = next(k for k in r if k not in ("knowledge", "history", "begin_label", "vrm_label"))
                out.append(_pair("faithdial", r["knowledge"], r[model_col],
                                 _faithdial_label(r["begin_label"], str(path)), f"{model_col}/{path.stem}"))
    return [p for p in out if p]


def load_q2(folder: Path) -> list[PoolPair]:
    out = []
    base = Path(folder) / "third_party" / "data"
    for system in ("dodeca", "memnet"):
        for name, lab in (("consistent", 0), ("inconsistent", 1)):
            path = base / f"{system}_{name}.csv"
            with open(path, encoding="utf-8", newline="") as f:
                out += [_pair("q2", r["knowledge"], r["response"], lab, f"{system}_{name}") for r in csv.DictReader(f)]
    return [p for p in out if p]
