"""Loaders for the summary-faithfulness sets (premise = the whole document, hypothesis = the summary;
level="summary" unless stated). `windows.to_sentence_pairs` turns them into sentence-level pairs.

| set | files | label 0 | label 1 | notes |
|---|---|---|---|---|
| fib | multiple_choice-dataset/{cnn_dm,xsum}/*/*.jsonl | `correct_choice` | every other entry of `list_choices` | one item -> 2 pairs; kind = folder/file |
| summacoz | data/positive/<set>/*.txt | consistent | - | article + summary pulled out of the prompt |
| summacoz | data/annot/<set>/*.txt | - | inconsistent | same |
| polytope | data/polytope.json | no Addition, no Inaccuracy error | Addition or Inaccuracy error | its own `label` also penalises omissions, which are not hallucinations |
| aggrefact_cliff_goyal | data/error_type_mapping/{CLIFF,Goyal21}_error_types.csv | error_type "correct" / empty | any error type | spans = annotated_span located in the summary |
| qags | data/mturk_{cnndm,xsum}.jsonl, one pair per summary sentence | majority "yes" | majority "no" | - |
| falke | falke-summary-correctness-v1.0.zip: val_sentence_pairs.json (level="pair") | correct_sent | incorrect_sent | premise = article_sent |
| entfa | data/{train,test}.json | every entity Non-hallucinated | any entity hallucinated (factual or not) | spans = the hallucinated entities |
"""

from __future__ import annotations

import ast
import csv
import json
import re
import zipfile
from pathlib import Path

from .records import PoolPair, clean, detok, doc_key
from .sources import make_pair

_TAGGED = re.compile(r"<t>(.*?)</t>", re.S)


def _summary_sentences(text: str) -> list[str]:
    """CNN/DM-style "<t> a . </t> <t> b . </t>" -> ["a.", "b."]; untagged text -> [text]."""
    tagged = _TAGGED.findall(text)
    parts = tagged if tagged else [text]
    return [s for s in (detok(clean(p)) for p in parts) if s]


def _doc_pair(source: str, document: str, summary_sents: list[str], label: int, kind: str, **kw) -> PoolPair | None:
    document = clean(document)
    summary = " ".join(summary_sents)
    if not document or not summary:
        return None
    meta = {"summary_sents": tuple(summary_sents)} if len(summary_sents) > 1 else {}
    return make_pair(source, document, summary, label, doc_key=doc_key(document), kind=kind, level="summary",
                     meta=meta, **kw)


def load_fib(folder: Path) -> list[PoolPair]:
    out = []
    base = Path(folder) / "multiple_choice-dataset"
    for path in sorted(base.glob("*/*/*.jsonl")):
        kind = f"{path.parent.parent.name}/{path.parent.name}/{path.stem.replace('binary_choice-using_', '')}"
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if line.strip():
                    out += _fib_item(json.loads(line), f"{path}:{i + 1}", kind)
    return [p for p in out if p]


def _fib_item(rec: dict, where: str, kind: str) -> list[PoolPair | None]:
    choices = rec["list_choices"]
    if isinstance(choices, str):
        choices = json.loads(choices)
    correct = int(rec["lbl"])
    if not 0 <= correct < len(choices):
        raise ValueError(f"{where}: lbl {rec['lbl']!r} is not an index of list_choices ({len(choices)} entries)")
    doc = detok(rec["input"]) if "<t>" in rec["correct_choice"] or rec["input"][:200].islower() else rec["input"]
    return [_doc_pair("fib", doc, _summary_sentences(c), int(j != correct), kind) for j, c in enumerate(choices)]


# The tags open and close on lines of their own; the instruction mentions "<Article>" inline.
_SUMMACOZ_TAGS = re.compile(r"^[ \t]*<Article>[ \t]*\n(.*?)\n[ \t]*</Article>.*?^[ \t]*<(Summary|Claim)>[ \t]*\n(.*?)\n[ \t]*</\2>",
                            re.S | re.M)
_SUMMACOZ_PLAIN = re.compile(r"Summary:\s*(.*?)\s*Article:\s*(.*?)\s*Explain your reasoning", re.S)


def parse_summacoz_prompt(text: str) -> tuple[str, str] | None:
    """(article, summary) of one SummaCoz prompt file, or None when neither known layout matches.

    Only the prompt (before "[/INST]") is searched: the model's answer quotes the summary again.
    """
    prompt = text.split("[/INST]", 1)[0]
    m = _SUMMACOZ_TAGS.search(prompt)
    if m:
        return clean(m.group(1)), clean(m.group(3))
    m = _SUMMACOZ_PLAIN.search(prompt)
    if m:
        return clean(m.group(2)), clean(m.group(1))
    return None


def load_summacoz(folder: Path) -> list[PoolPair]:
    out = []
    for which, label in (("positive", 0), ("annot", 1)):
        for path in sorted((Path(folder) / "data" / which).glob("*/*.txt")):
            parsed = parse_summacoz_prompt(path.read_text(encoding="utf-8"))
            if parsed is None:
                raise ValueError(f"{path}: no <Article>/<Summary|Claim> or 'Summary: ... Article:' block in the prompt")
            article, summary = parsed
            out.append(_doc_pair("summacoz", article, [summary], label, f"{path.parent.name}/{which}"))
    return [p for p in out if p]


def load_polytope(folder: Path) -> list[PoolPair]:
    path = Path(folder) / "data" / "polytope.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for key, rec in data.items():
        errors = rec["errors"] if isinstance(rec["errors"], list) else ast.literal_eval(rec["errors"])
        # addition_label / inaccuracy_label are 1 when that error is ABSENT, 0 when present.
        unfaithful = str(rec["addition_label"]) == "0" or str(rec["inaccuracy_label"]) == "0"
        sents = [detok(s) for s in rec["claim"].split("\n") if s.strip()]
        out.append(_doc_pair("polytope", detok(rec["document"].replace("\n", " ")), sents, int(unfaithful),
                             "+".join(sorted(set(errors))) or "none"))
    return [p for p in out if p]


def _find_spans(summary: str, phrases: list[str]) -> tuple[tuple[int, int], ...]:
    spans = set()
    low = summary.lower()
    for ph in phrases:
        ph = clean(ph).strip("[]")
        i = low.find(ph.lower()) if ph else -1
        if i >= 0:
            spans.add((i, i + len(ph)))
    return tuple(sorted(spans))


def load_aggrefact_cliff_goyal(folder: Path) -> list[PoolPair]:
    out = []
    for name in ("CLIFF", "Goyal21"):
        path = Path(folder) / "data" / "error_type_mapping" / f"{name}_error_types.csv"
        with open(path, encoding="utf-8", newline="") as f:
            for r in csv.DictReader(f):
                err = clean(r["error_type"])
                label = 0 if err in ("", "correct", "[]") else 1
                raw = ast.literal_eval(r["annotated_span"]) if r["annotated_span"].strip() else []
                phrases = [p for x in raw for p in (x if isinstance(x, list) else [x])]
                summ = clean(r["summ"])
                spans = _find_spans(summ, phrases) if label else ()
                out.append(_doc_pair("aggrefact_cliff_goyal", r["doc"], [summ], label, f"{name}/{r['origin']}/{r['cut']}",
                                     spans=spans))
    return [p for p in out if p]


def load_qags(folder: Path) -> list[PoolPair]:
    out = []
    for origin in ("cnndm", "xsum"):
        path = Path(folder) / "data" / f"mturk_{origin}.jsonl"
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                rec = json.loads(line)
                for s in rec["summary_sentences"]:
                    votes = [v["response"] for v in s["responses"]]
                    label = int(votes.count("no") > len(votes) / 2)
                    out.append(_doc_pair("qags", rec["article"], [detok(s["sentence"])], label, origin))
    return [p for p in out if p]


def load_falke(folder: Path) -> list[PoolPair]:
    path = Path(folder) / "falke-summary-correctness-v1.0.zip"
    with zipfile.ZipFile(path) as z:
        triples = json.loads(z.read("val_sentence_pairs.json").decode("utf-8"))
    out = []
    for t in triples:
        prem = detok(t["article_sent"])
        for key, label in (("correct_sent", 0), ("incorrect_sent", 1)):
            hyp = detok(t[key])
            if prem and hyp:
                out.append(make_pair("falke", prem, hyp, label, doc_key=doc_key(prem), kind="val_sentence_pairs"))
    return out


def load_entfa(folder: Path) -> list[PoolPair]:
    out = []
    for split in ("train", "test"):
        path = Path(folder) / "data" / f"{split}.json"
        for rec in json.loads(path.read_text(encoding="utf-8")):
            pred = rec["prediction"]
            ents = rec["entities"] if isinstance(rec["entities"], list) else ast.literal_eval(rec["entities"])
            bad = sorted({(e["start"], e["end"]) for e in ents if e["label"] != "Non-hallucinated"
                          and 0 <= e["start"] < e["end"] <= len(pred)})
            out.append(_doc_pair("entfa", rec["source"], [pred], int(bool(bad)), split, spans=tuple(bad)))
    return [p for p in out if p]
