"""Stage-A data from zero: (document, reference summary) rows from a public summarization set.

    halluguard data sft --from cnn_dailymail --train-size 20000 --heldout-size 500   # hub download (internet)
    halluguard data sft --from articles.jsonl --document-column text --summary-column abstract   # a local file
    halluguard data sft --config examples/tiny_pipeline/data.yaml                    # the same from YAML

    from halluguard.train.sft_data import SFTDataConfig, build_sft_data
    report = build_sft_data(SFTDataConfig(source="cnn_dailymail"))   # dict: files written, counts

Writes `<out_dir>/sft_train.jsonl` (what `training/configs/sft_*.yaml` and `triplets_*.yaml` read) and
`<out_dir>/heldout.jsonl` (what `verdict_*.yaml` and `ablate_*.yaml` evaluate on), rows
`{"id", "document", "summary", "origin"}`, plus `<out_dir>/sft_data.json` with the counts and the
settings. No document is in both files: held-out rows come from the set's test split (hub presets) or
from a seeded split by document (a local file or a hub set without a test split), and the document key
is the one `training/verdict.py` checks (a hash of the normalized text), so the verdict's leakage check
passes by construction. Duplicate documents are kept once; documents outside the word limits are left
out and counted, never cut, because the trainers drop over-long rows anyway.

Only the standard library is imported at module top (`halluguard --help` stays fast); `datasets` is
imported for hub sets only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

# common.py itself imports only the standard library at its top
from halluguard.train.common import write_jsonl


@dataclass(frozen=True)
class HubPreset:
    """A public summarization set on the Hugging Face hub and the columns halluguard reads."""

    hub_id: str
    config: str | None
    document: str
    summary: str
    id: str | None
    train_split: str
    heldout_split: str | None
    licence: str


PRESETS = {
    # CNN/DailyMail 3.0.0 (parquet on the hub): news articles with bullet-point highlights, ~287k train.
    "cnn_dailymail": HubPreset("abisee/cnn_dailymail", "3.0.0", "article", "highlights", "id", "train", "test",
                               "Apache-2.0"),
}


@dataclass
class SFTDataConfig:
    """How `halluguard data sft` builds stage-A data. YAML keys = these field names."""

    source: str = field(default="", metadata={"help": "a preset (" + ", ".join(PRESETS) + "), a hub dataset id "
                                                      "(owner/name, needs internet), or a local JSONL/CSV/Parquet file"})
    out_dir: str = field(default="data", metadata={"help": "where sft_train.jsonl, heldout.jsonl and sft_data.json go"})
    train_size: int = field(default=20000, metadata={"help": "training rows to keep (0 = all available)"})
    heldout_size: int = field(default=500, metadata={"help": "held-out rows for the verdict and ablations (0 = none)"})
    document_column: str | None = field(default=None, metadata={"help": "document column (default: the preset's, "
                                                                         "else 'document')"})
    summary_column: str | None = field(default=None, metadata={"help": "reference summary column (default: the "
                                                                       "preset's, else 'summary')"})
    id_column: str | None = field(default=None, metadata={"help": "id column (default: the preset's, else 'id' if "
                                                                  "present; rows without one get a content hash)"})
    hub_config: str | None = field(default=None, metadata={"help": "hub dataset configuration (default: the preset's)"})
    revision: str | None = field(default=None, metadata={"help": "hub branch / tag / commit to pin"})
    train_split: str | None = field(default=None, metadata={"help": "hub split for training (default: the preset's, "
                                                                    "else 'train')"})
    heldout_split: str | None = field(default=None, metadata={"help": "hub split for held-out rows (default: the "
                                                                      "preset's; none = split the training rows by "
                                                                      "document)"})
    min_document_words: int = field(default=30, metadata={"help": "shorter documents are left out"})
    max_document_words: int = field(default=1500, metadata={"help": "longer documents are left out (1,500 words is "
                                                                    "about 2k tokens: fits the recipes' max_length "
                                                                    "3072 with the instruction and the summary)"})
    min_summary_words: int = field(default=5, metadata={"help": "shorter reference summaries are left out"})
    seed: int = field(default=42, metadata={"help": "seeds the shuffle and the split by document"})
    overwrite: bool = field(default=False, metadata={"help": "replace existing output files"})

    def validate(self) -> None:
        if not self.source or not str(self.source).strip():
            raise ValueError("no source: pass --from cnn_dailymail, a hub dataset id (owner/name) or a local file")
        for name in ("train_size", "heldout_size", "min_document_words", "min_summary_words"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_document_words < max(1, self.min_document_words):
            raise ValueError(f"max_document_words ({self.max_document_words}) is below min_document_words "
                             f"({self.min_document_words})")

    @property
    def train_path(self) -> Path:
        return Path(self.out_dir) / "sft_train.jsonl"

    @property
    def heldout_path(self) -> Path:
        return Path(self.out_dir) / "heldout.jsonl"


# ---------------------------------------------------------------------------------------------------
# Cleaning
# ---------------------------------------------------------------------------------------------------
def clean_summary(text: str) -> str:
    """One paragraph: CNN/DM highlights are one sentence per line, often without a final full stop."""
    lines = [re.sub(r"\s+", " ", ln).strip() for ln in str(text).splitlines()]
    lines = [ln if ln.endswith((".", "!", "?", '"', "'")) else ln + "." for ln in lines if ln]
    return " ".join(lines)


def clean_document(text: str) -> str:
    """Paragraph breaks kept, runs of spaces and blank lines collapsed."""
    paras = [re.sub(r"[ \t\r\f\v]+", " ", p).strip() for p in re.split(r"\n\s*\n", str(text))]
    return "\n\n".join(p for p in paras if p)


def _doc_key(document: str) -> str:
    # The key training/verdict.py uses to refuse evaluation documents seen in training.
    from halluguard.train.triplets import doc_key

    return doc_key(document)


class _Counter:
    """Why rows were left out, for the report."""

    def __init__(self) -> None:
        self.counts = {"read": 0, "empty": 0, "short_document": 0, "long_document": 0, "short_summary": 0,
                       "duplicate": 0}

    def add(self, reason: str) -> None:
        self.counts[reason] += 1


def _clean_rows(records: Iterable[dict], cfg: SFTDataConfig, doc_col: str, sum_col: str, id_col: str | None,
                origin: str, seen: set[str], counter: _Counter) -> Iterator[dict]:
    """Cleaned rows in input order; drops empty, out-of-limits and duplicate documents (counted)."""
    for rec in records:
        counter.add("read")
        doc, summ = rec.get(doc_col), rec.get(sum_col)
        if not isinstance(doc, str) or not isinstance(summ, str) or not doc.strip() or not summ.strip():
            counter.add("empty")
            continue
        doc, summ = clean_document(doc), clean_summary(summ)
        words = len(doc.split())
        if words < cfg.min_document_words:
            counter.add("short_document")
            continue
        if words > cfg.max_document_words:
            counter.add("long_document")
            continue
        if len(summ.split()) < cfg.min_summary_words:
            counter.add("short_summary")
            continue
        key = _doc_key(doc)
        if key in seen:
            counter.add("duplicate")
            continue
        seen.add(key)
        rid = rec.get(id_col) if id_col else None
        yield {"id": str(rid) if rid not in (None, "") else key, "document": doc, "summary": summ,
               "origin": origin, "_key": key}


def _take(rows: Iterator[dict], n: int) -> list[dict]:
    out = []
    for r in rows:
        out.append(r)
        if n and len(out) >= n:
            break
    return out


def _seeded_order(rows: list[dict], seed: int) -> list[dict]:
    # Ordered by a hash of (seed, document key): stable across machines and Python versions.
    return sorted(rows, key=lambda r: hashlib.sha1(f"{seed}:{r['_key']}".encode()).hexdigest())


# ---------------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------------
def _local_records(path: Path, doc_col: str, sum_col: str) -> Iterator[dict]:
    from halluguard.io import RowError, input_columns, read_records

    columns = input_columns(path)
    missing = [c for c in (doc_col, sum_col) if c not in columns]
    if missing:
        raise ValueError(f"{path}: no column(s) {missing}; it has {columns}. Name them with --document-column / "
                         "--summary-column")
    for row in read_records(path):
        if isinstance(row, RowError):
            continue  # unreadable rows are counted as empty by the caller
        yield row.data


def _hub_unusable() -> str | None:
    """Why the hub cannot be used (offline flags, or no answer to a short probe), so that an offline machine
    fails in seconds instead of after the datasets library's retries."""
    if os.environ.get("HF_DATASETS_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE"):
        return "HF_DATASETS_OFFLINE=1 is set"
    from halluguard.loading import hub_unreachable_reason

    return hub_unreachable_reason()


def _hub_records(cfg: SFTDataConfig, hub_id: str, config: str | None, split: str) -> Iterator[dict]:
    """Rows of a hub split, streamed (only what is kept is downloaded) and shuffled with a buffer."""
    why = _hub_unusable()
    if why:
        raise OSError(f"{hub_id}: the hub cannot be used here ({why}); build the files on a machine with internet, "
                      "or pass a local JSONL/CSV/Parquet file as --from")
    try:
        from datasets import load_dataset
    except ImportError as e:  # pragma: no cover - datasets is a dependency
        raise OSError("hub sets need the `datasets` package (pip install datasets)") from e
    try:
        ds = load_dataset(hub_id, config, split=split, revision=cfg.revision, streaming=True)
        ds = ds.shuffle(seed=cfg.seed, buffer_size=10_000)
        yield from ds
    except (OSError, ValueError, ConnectionError) as e:
        raise OSError(f"{hub_id} ({config or 'default'}, {split}): could not be loaded from the hub "
                      f"({type(e).__name__}: {str(e)[:200]}). Without internet, pass a local file as --from") from None


def _resolve(cfg: SFTDataConfig) -> tuple[HubPreset | None, Path | None, dict[str, Any]]:
    """The preset (or an ad-hoc hub set), or the local path, and the columns/splits to use."""
    local = Path(os.path.expanduser(cfg.source))
    preset = PRESETS.get(cfg.source)
    if preset is None and not local.exists():
        if local.suffix.lower() in (".jsonl", ".json", ".csv", ".tsv", ".parquet") or cfg.source.startswith(("/", ".", "~")):
            raise FileNotFoundError(f"{cfg.source}: no such file")
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", cfg.source):
            raise ValueError(f"{cfg.source!r} is not a preset ({', '.join(PRESETS)}), a hub dataset id (owner/name) "
                             "or an existing file")
        preset = HubPreset(cfg.source, None, "document", "summary", None, "train", None, "see the dataset card")
    if preset is not None:
        cols = {"document": cfg.document_column or preset.document, "summary": cfg.summary_column or preset.summary,
                "id": cfg.id_column or preset.id, "config": cfg.hub_config or preset.config,
                "train_split": cfg.train_split or preset.train_split,
                "heldout_split": cfg.heldout_split if cfg.heldout_split is not None else preset.heldout_split}
        return preset, None, cols
    if local.is_dir():
        raise ValueError(f"{local} is a folder: pass one JSONL/CSV/Parquet file")
    cols = {"document": cfg.document_column or "document", "summary": cfg.summary_column or "summary",
            "id": cfg.id_column or "id", "config": None, "train_split": None, "heldout_split": None}
    return None, local, cols


# ---------------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------------
def _write_jsonl(path: Path, rows: list[dict]) -> None:
    # common.write_jsonl writes through a .tmp file, so a killed run never leaves half a file under the
    # final name; the "_"-prefixed keys are bookkeeping of the build, not data
    write_jsonl(path, ({k: v for k, v in r.items() if not k.startswith("_")} for r in rows))


def build_sft_data(cfg: SFTDataConfig) -> dict[str, Any]:
    """Build and write the stage-A training file and the held-out file; returns the report (also written as
    `sft_data.json`). Raises ValueError / FileNotFoundError / OSError with a message a user can act on."""
    cfg.validate()
    out = Path(cfg.out_dir)
    existing = [p for p in (cfg.train_path, cfg.heldout_path) if p.exists()]
    if existing and not cfg.overwrite:
        raise FileExistsError(f"{', '.join(map(str, existing))} already exist(s); pass --overwrite to replace")
    preset, local, cols = _resolve(cfg)
    counter, seen = _Counter(), set()
    train_n, held_n = cfg.train_size, cfg.heldout_size
    if preset is not None and cols["heldout_split"]:
        # Held-out documents first, from the set's own test split, so a document in both splits stays held out.
        heldout = _take(_clean_rows(_hub_records(cfg, preset.hub_id, cols["config"], cols["heldout_split"]), cfg,
                                    cols["document"], cols["summary"], cols["id"], f"{preset.hub_id}:{cols['heldout_split']}",
                                    seen, counter), held_n) if held_n else []
        train = _take(_clean_rows(_hub_records(cfg, preset.hub_id, cols["config"], cols["train_split"]), cfg,
                                  cols["document"], cols["summary"], cols["id"], f"{preset.hub_id}:{cols['train_split']}",
                                  seen, counter), train_n)
    else:
        if preset is not None:
            records, origin = _hub_records(cfg, preset.hub_id, cols["config"], cols["train_split"]), preset.hub_id
        else:
            records, origin = _local_records(local, cols["document"], cols["summary"]), local.name
        # One pool, split by document with a seeded order; read only what both files need from a hub stream.
        limit = (train_n + held_n) if (preset is not None and train_n) else 0
        pool = _seeded_order(_take(_clean_rows(records, cfg, cols["document"], cols["summary"], cols["id"], origin,
                                               seen, counter), limit), cfg.seed)
        heldout = pool[:held_n]
        train = pool[held_n:held_n + train_n] if train_n else pool[held_n:]
    if not train:
        raise ValueError(f"{cfg.source}: no usable training rows (left out: {counter.counts}); check the columns "
                         "and the word limits")
    out.mkdir(parents=True, exist_ok=True)
    _write_jsonl(cfg.train_path, train)
    if heldout:
        _write_jsonl(cfg.heldout_path, heldout)
    report = {"train_file": str(cfg.train_path), "train_rows": len(train),
              "heldout_file": str(cfg.heldout_path) if heldout else None, "heldout_rows": len(heldout),
              "source": preset.hub_id if preset else str(local), "licence": preset.licence if preset else None,
              "columns": cols, "left_out": {k: v for k, v in counter.counts.items() if k != "read"},
              "rows_read": counter.counts["read"], "config": asdict(cfg)}
    (out / "sft_data.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


# ---------------------------------------------------------------------------------------------------
# CLI: `halluguard data sft`
# ---------------------------------------------------------------------------------------------------
_FLAG = {"source": "--from"}


def _flag(name: str) -> str:
    return _FLAG.get(name, "--" + name.replace("_", "-"))


def config_from_args(args: argparse.Namespace) -> SFTDataConfig:
    """YAML (`--config`) first, then every flag given on the command line; unknown YAML keys fail."""
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        import yaml

        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"--config {path}: no such file")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of SFTDataConfig fields")
        known = {f.name for f in fields(SFTDataConfig)}
        unknown = sorted(set(loaded) - known)
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {unknown}; known: {sorted(known)}")
        values.update(loaded)
    for f in fields(SFTDataConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    return SFTDataConfig(**values)


def _cmd_sft(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.dry_run:
        cfg.validate()
        preset, local, cols = _resolve(cfg)
        print(json.dumps({"would_read": preset.hub_id if preset else str(local), "columns": cols,
                          "would_write": [str(cfg.train_path), str(cfg.heldout_path) if cfg.heldout_size else None],
                          "config": asdict(cfg)}, indent=2))
        return 0
    report = build_sft_data(cfg)
    left = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in report["left_out"].items() if v) or "none"
    print(f"{report['train_rows']} training rows -> {report['train_file']}; {report['heldout_rows']} held-out rows"
          f"{' -> ' + report['heldout_file'] if report['heldout_file'] else ''}; left out: {left}")
    print("next: python training/sft.py --config training/configs/sft_qwen7b_qlora.yaml"
          + ("" if cfg.out_dir == "data" else f" --train_file {report['train_file']}"))
    return 0


def register(data_subparsers: Any) -> None:
    """Add `halluguard data sft` to the `data` command's actions."""
    p = data_subparsers.add_parser(
        "sft", help="build stage-A SFT data (document, summary) from a public summarization set or a local file",
        description="Write data/sft_train.jsonl and data/heldout.jsonl for training/configs/*.yaml. Presets: "
                    + ", ".join(f"{k} ({v.hub_id}, {v.licence})" for k, v in PRESETS.items())
                    + ". A hub set needs internet; a local file does not.")
    p.add_argument("--config", default=None, help="YAML with SFTDataConfig fields; flags override it")
    for f in fields(SFTDataConfig):
        help_ = f.metadata.get("help", "")
        if f.type in (bool, "bool"):
            p.add_argument(_flag(f.name), dest=f.name, action="store_const", const=True, default=None, help=help_)
        elif f.type in (int, "int"):
            p.add_argument(_flag(f.name), dest=f.name, type=int, default=None, help=f"{help_} (default {f.default})")
        else:
            p.add_argument(_flag(f.name), dest=f.name, default=None,
                           help=help_ + (f" (default {f.default})" if f.default not in (None, "") else ""))
    p.add_argument("--dry-run", action="store_true", help="print what would be read and written, and stop")
    p.set_defaults(func=_cmd_sft)
