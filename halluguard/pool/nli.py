"""Loaders for the general NLI sets of the pool. Each takes the set's `owner+repo` folder.

| set | files | label 0 | label 1 | skipped |
|---|---|---|---|---|
| esnli | dataset/eSNLI/{s1,s2,labels}.{dev,test} (aligned lines, PTB-tokenised) | entailment | neutral, contradiction | - |
| cad_snli | NLI/all_combined/{train,dev,test}.tsv | entailment | neutral, contradiction | - |
| taxinli | taxinli10k.tsv (`label` = MNLI gold) | entailment | neutral, contradiction | - |
| rte | data/RTE/{train,dev,val}.tsv (val has no header) | entailment | not_entailment | - |
| conjnli | data/NLI/{adversarial_train_15k,conj_dev}.tsv | entailment | neutral, contradiction | conj_test (no labels) |
| breaking_nli | breaking_nli_dataset.zip: data/dataset.jsonl | entailment | neutral, contradiction | - |
| med | MED.tsv (`gold_label`) | entailment | neutral, contradiction | - |
| help | output_en/*.tsv (ori_sentence, new_sentence) | entailment | neutral | - |
"""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

from .records import PoolPair, clean, detok, doc_key, nli_label
from .sources import make_pair


def read_tsv(path: Path, header: bool = True) -> list[dict[str, str]] | list[list[str]]:
    """Rows of a tab-separated file without quote handling (these sets put bare quotes in text)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not header:
        return rows
    if not rows:
        return []
    head = [h.strip() for h in rows[0]]
    return [dict(zip(head, r)) for r in rows[1:] if any(c.strip() for c in r)]


def _nli_pair(source: str, premise: str, hypothesis: str, label: str, where: str, kind: str = "") -> PoolPair | None:
    lab = nli_label(label, where)
    premise, hypothesis = clean(premise), clean(hypothesis)
    if lab is None or not premise or not hypothesis:
        return None
    return make_pair(source, premise, hypothesis, lab, doc_key=doc_key(premise), kind=kind)


def _keep(pairs) -> list[PoolPair]:
    return [p for p in pairs if p is not None]


def load_esnli(folder: Path) -> list[PoolPair]:
    base = Path(folder) / "dataset" / "eSNLI"
    out = []
    for split in ("dev", "test"):
        s1 = (base / f"s1.{split}").read_text(encoding="utf-8").splitlines()
        s2 = (base / f"s2.{split}").read_text(encoding="utf-8").splitlines()
        lab = (base / f"labels.{split}").read_text(encoding="utf-8").splitlines()
        if not len(s1) == len(s2) == len(lab):
            raise ValueError(f"{base}: s1/s2/labels.{split} have {len(s1)}/{len(s2)}/{len(lab)} lines; they must align")
        out += [_nli_pair("esnli", detok(a), detok(b), c, f"{base}/labels.{split}:{i + 1}", split)
                for i, (a, b, c) in enumerate(zip(s1, s2, lab))]
    return _keep(out)


def load_cad_snli(folder: Path) -> list[PoolPair]:
    out = []
    for split in ("train", "dev", "test"):
        path = Path(folder) / "NLI" / "all_combined" / f"{split}.tsv"
        out += [_nli_pair("cad_snli", r["sentence1"], r["sentence2"], r["gold_label"], str(path), split)
                for r in read_tsv(path)]
    return _keep(out)


def load_taxinli(folder: Path) -> list[PoolPair]:
    path = Path(folder) / "taxinli10k.tsv"
    return _keep(_nli_pair("taxinli", r["prem"], r["hyp"], r["label"], str(path), r.get("genre", ""))
                 for r in read_tsv(path))


def load_rte(folder: Path) -> list[PoolPair]:
    out = []
    for split in ("train", "dev", "val"):
        path = Path(folder) / "data" / "RTE" / f"{split}.tsv"
        rows = read_tsv(path, header=False)
        if rows and rows[0][0].strip().lower() == "index":
            rows = rows[1:]
        out += [_nli_pair("rte", r[1], r[2], r[3], str(path), split) for r in rows if len(r) >= 4]
    return _keep(out)


def load_conjnli(folder: Path) -> list[PoolPair]:
    out = []
    for name in ("adversarial_train_15k", "conj_dev"):  # conj_test.tsv has no labels
        path = Path(folder) / "data" / "NLI" / f"{name}.tsv"
        out += [_nli_pair("conjnli", r["Premise"], r["Hypothesis"], r["Label"], str(path), name)
                for r in read_tsv(path)]
    return _keep(out)


def load_breaking_nli(folder: Path) -> list[PoolPair]:
    path = Path(folder) / "breaking_nli_dataset.zip"
    out = []
    with zipfile.ZipFile(path) as z:
        for i, line in enumerate(z.read("data/dataset.jsonl").decode("utf-8").splitlines()):
            if line.strip():
                r = json.loads(line)
                out.append(_nli_pair("breaking_nli", r["sentence1"], r["sentence2"], r["gold_label"],
                                     f"{path}:{i + 1}", r.get("category", "")))
    return _keep(out)


def load_med(folder: Path) -> list[PoolPair]:
    path = Path(folder) / "MED.tsv"
    return _keep(_nli_pair("med", r["sentence1"], r["sentence2"], r["gold_label"], str(path), r.get("genre", ""))
                 for r in read_tsv(path))


def load_help(folder: Path) -> list[PoolPair]:
    out = []
    for path in sorted((Path(folder) / "output_en").glob("*.tsv")):
        out += [_nli_pair("help", detok(r["ori_sentence"]), detok(r["new_sentence"]), r["gold_label"], str(path),
                          r.get("monotonicity", "")) for r in read_tsv(path)]
    return _keep(out)
