"""Batch input and output: readers that never lose a good row, and a JSONL writer that resumes.

Reading::

    from halluguard.io import read_rows, Row, RowError

    for item in read_rows("pairs.csv", columns={"source": "document"}, required=("source", "summary"),
                          optional=("id", "label", "reference")):
        if isinstance(item, RowError):
            print(item.message)          # one line: names the row, the line and the problem
        else:
            item.get("source"), item.get("summary"), item.data   # mapped values / the whole record

Formats: JSONL/NDJSON, a JSON array, CSV, TSV (each optionally gzipped: ``.jsonl.gz``), Parquet.
`read_rows` checks the header first and raises `MissingColumnError` (a `ValueError`) before any row is
processed when a required column is absent. After that, every problem is a per-row `RowError` and the
rows around it still come through: a line that is not JSON, bytes that are not UTF-8 (the byte offset
and line are named), a row with a missing or empty value, a CSV row with too many fields.

Rows are numbered from 0 in input order (``Row.index``, written to the output as ``_row``), like a
DataFrame index; lines are numbered from 1, like an editor. Blank JSONL lines are not rows.

Writing::

    with ResumableWriter("out.jsonl", overwrite=False) as w:
        for row in rows:
            if row.index in w.done:      # already written by an earlier (killed) run
                continue
            w.write({"_row": row.index, ...})
        w.sync()

Each record is one ``write()`` of one line, flushed at once, and ``sync()`` fsyncs (the batch command
calls it after every chunk), so a SIGKILL loses at most the line being written. On reopening, a
truncated last line is dropped, rows that ended in an ``error`` are dropped too so that they are retried
(``retry_errors=False`` keeps them), and ``done`` holds the ``_row`` of every row already written.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet")
_EXTENSIONS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
    ".parquet": "parquet", ".pq": "parquet",
}

# Column names tried, in order, for each role when the user did not name a column. "label" is read as
# 1/true = hallucinated unless told otherwise (see `parse_label`).
COLUMN_CANDIDATES: dict[str, tuple[str, ...]] = {
    "source": ("source", "document", "doc", "article", "text", "context", "premise"),
    "summary": ("summary", "claim", "response", "output", "hypothesis", "generated_summary"),
    "id": ("id", "_id", "doc_id", "uid", "example_id"),
    "label": ("label", "hallucinated", "is_hallucinated", "gold_label"),
    "reference": ("reference", "reference_summary", "ref", "highlights", "target", "gold_summary"),
}

ROW_KEY = "_row"  # the output field that ties an output line to its input row (0-based index)
_JSONL_PEEK = 64  # JSONL has no header: the first this-many object rows stand in for one


class MissingColumnError(ValueError):
    """A required column is absent from the input's header (raised before any row is processed)."""

    def __init__(self, role: str, column: str, present: list[str], path: str):
        self.role, self.column, self.present, self.path = role, column, present, path
        shown = ", ".join(repr(c) for c in present[:30]) + (" ..." if len(present) > 30 else "")
        super().__init__(
            f"{path}: missing column {column!r} (the {role} column); the input has: {shown or 'no columns'}"
        )


@dataclass
class Row:
    """One good input row. `data` is the record as read; `values` maps roles (source, summary, ...) to
    the values of their columns (None for an optional role whose column is absent)."""

    index: int
    data: dict[str, Any]
    values: dict[str, Any] = field(default_factory=dict)
    line: int | None = None

    def get(self, role: str, default: Any = None) -> Any:
        v = self.values.get(role)
        return default if v is None else v

    @property
    def id(self) -> Any:
        return self.values.get("id")


@dataclass
class RowError:
    """A row that could not be used. `message` is one line naming the row, its line and the problem;
    `data` holds whatever could be read (so an `id` can still be carried to the output)."""

    index: int
    message: str
    line: int | None = None
    data: dict[str, Any] | None = None
    id: Any = None


def detect_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The input format: `fmt` when given, else from the file extension."""
    if fmt:
        f = fmt.lower().lstrip(".")
        f = {"ndjson": "jsonl", "pq": "parquet"}.get(f, f)
        if f not in FORMATS:
            raise ValueError(f"unknown input format {fmt!r}; choose one of: {', '.join(FORMATS)}")
        return f
    name = str(path).lower()
    if name.endswith(".gz"):
        name = name[:-3]
    ext = os.path.splitext(name)[1]
    if ext == ".parquet" and str(path).lower().endswith(".gz"):
        raise ValueError(f"{path}: Parquet is compressed inside; read the .parquet file, not a .gz of it")
    if ext not in _EXTENSIONS:
        raise ValueError(
            f"{path}: cannot tell the format from the extension {ext or '(none)'!r}; "
            f"use .jsonl, .csv, .tsv, .json (each optionally .gz) or .parquet, or pass --format"
        )
    return _EXTENSIONS[ext]


def _where(index: int, line: int | None) -> str:
    return f"row {index}" + (f" (line {line})" if line is not None else "")


def _short(value: Any, n: int = 60) -> str:
    s = repr(value)
    return s if len(s) <= n else s[: n - 3] + "..."


def _check_exists(path: str | os.PathLike) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"input file not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory, not an input file")


# ---------------------------------------------------------------- raw record readers (format level)


def _bad_utf8(raw: bytes) -> tuple[int, int] | None:
    """(offset within `raw`, byte value) of the first byte that is not valid UTF-8, or None."""
    try:
        raw.decode("utf-8")
        return None
    except UnicodeDecodeError as e:
        return e.start, raw[e.start]


def _open_bytes(path: str):
    """Binary file object; `.gz` files are decompressed on the fly (offsets then count decompressed bytes)."""
    if path.lower().endswith(".gz"):
        import gzip

        return gzip.open(path, "rb")
    return open(path, "rb")  # noqa: SIM115 - the caller closes it


def _open_text(path: str):
    """Text for the csv module: UTF-8 (BOM dropped); bad bytes kept as lone surrogates to report per row."""
    return io.TextIOWrapper(_open_bytes(path), encoding="utf-8-sig", errors="surrogateescape", newline="")


def _iter_jsonl(path: str) -> Iterator[Row | RowError]:
    index = 0
    offset = 0
    with _open_bytes(path) as f:
        for lineno, raw in enumerate(f, start=1):
            start = offset
            offset += len(raw)
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
                start += len(codecs.BOM_UTF8)
            if not raw.strip():
                continue  # blank lines (a trailing newline, a gap) are not rows
            bad = _bad_utf8(raw)
            if bad is not None:
                yield RowError(index, f"{_where(index, lineno)}: not valid UTF-8 (byte 0x{bad[1]:02x} at byte "
                                      f"offset {start + bad[0]} of the file)", lineno)
                index += 1
                continue
            text = raw.decode("utf-8")
            try:
                rec = json.loads(text)
            except (json.JSONDecodeError, RecursionError) as e:
                msg = getattr(e, "msg", "nested too deeply")
                col = getattr(e, "colno", None)
                yield RowError(index, f"{_where(index, lineno)}: not valid JSON ({_json_msg(msg, col=col)})", lineno)
                index += 1
                continue
            if not isinstance(rec, dict):
                yield RowError(index, f"{_where(index, lineno)}: expected a JSON object, got "
                                      f"{_json_type(rec)}", lineno)
            else:
                yield Row(index, rec, line=lineno)
            index += 1


def _json_msg(msg: str, line: int | None = None, col: int | None = None) -> str:
    """json's message with its position; "Unterminated string starting at" already ends in "at"."""
    where = ", ".join(f"{k} {v}" for k, v in (("line", line), ("column", col)) if v)
    if not where:
        return msg
    return f"{msg} {where}" if msg.endswith(" at") else f"{msg} at {where}"


def _json_type(v: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _iter_json_array(path: str) -> Iterator[Row | RowError]:
    with _open_bytes(path) as f:
        raw = f.read()
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    bad = _bad_utf8(raw)
    if bad is not None:
        line = raw[: bad[0]].count(b"\n") + 1
        raise ValueError(f"{path}: not valid UTF-8 (byte 0x{raw[bad[0]]:02x} at byte offset {bad[0]}, line {line}); "
                         f"a .json file is read whole, use JSONL to keep the good rows of a damaged file")
    try:
        data = json.loads(raw.decode("utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({_json_msg(e.msg, e.lineno, e.colno)})") from None
    if isinstance(data, dict):  # {"data": [...]} or a single record
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else [data]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON array of objects, got {_json_type(data)}")
    for i, rec in enumerate(data):
        if isinstance(rec, dict):
            yield Row(i, rec)
        else:
            yield RowError(i, f"row {i}: expected a JSON object, got {_json_type(rec)}")


def _csv_header(path: str, delimiter: str) -> list[str]:
    with _open_bytes(path) as f:
        first = f.readline()
    if first.startswith(codecs.BOM_UTF8):
        first = first[len(codecs.BOM_UTF8):]
    bad = _bad_utf8(first)
    if bad is not None:
        raise ValueError(f"{path}: the header (line 1) is not valid UTF-8 (byte 0x{bad[1]:02x} at byte offset "
                         f"{bad[0]}); save the file as UTF-8")
    with _open_text(path) as f:
        try:
            header = next(csv.reader(f, delimiter=delimiter), None)
        except csv.Error as e:
            raise ValueError(f"{path}: cannot read the CSV header: {e}") from None
    if not header or not any(h.strip() for h in header):
        raise ValueError(f"{path}: the file is empty or has no header row")
    names = [h.strip() for h in header]
    seen: set[str] = set()
    for n in names:
        if n and n in seen:
            raise ValueError(f"{path}: the header names column {n!r} twice")
        seen.add(n)
    return names


def _utf8_errors_by_line(path: str, limit: int = 10_000) -> dict[int, tuple[int, int]]:
    """line -> (byte offset in the file, byte) of the first invalid UTF-8 byte on that line."""
    out: dict[int, tuple[int, int]] = {}
    offset = 0
    with _open_bytes(path) as f:
        for lineno, raw in enumerate(f, start=1):
            bad = _bad_utf8(raw)
            if bad is not None:
                out[lineno] = (offset + bad[0], bad[1])
                if len(out) >= limit:
                    break
            offset += len(raw)
    return out


# errors="surrogateescape" turns each byte that is not UTF-8 into one of these lone surrogates
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def _iter_csv(path: str, delimiter: str) -> Iterator[Row | RowError]:
    header = _csv_header(path, delimiter)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long documents are normal here
    bad_lines: dict[int, tuple[int, int]] | None = None  # computed on the first bad row only
    with _open_text(path) as f:
        reader = csv.reader(f, delimiter=delimiter)
        next(reader, None)  # header
        index = 0
        prev_end = reader.line_num
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                line = prev_end + 1
                yield RowError(index, f"{_where(index, line)}: malformed CSV ({e})", line)
                index += 1
                prev_end = reader.line_num
                continue
            first_line, prev_end = prev_end + 1, reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # blank line
            if any(_ESCAPED_BYTE.search(v) for v in fields):
                # errors="surrogateescape" kept the undecodable bytes as lone surrogates; find where.
                if bad_lines is None:
                    bad_lines = _utf8_errors_by_line(path)
                hit = next((bad_lines[n] for n in range(first_line, reader.line_num + 1) if n in bad_lines), None)
                where = f" (byte 0x{hit[1]:02x} at byte offset {hit[0]} of the file)" if hit else ""
                yield RowError(index, f"{_where(index, first_line)}: not valid UTF-8{where}", first_line)
                index += 1
                continue
            if len(fields) > len(header):
                yield RowError(index, f"{_where(index, first_line)}: {len(fields)} fields but the header has "
                                      f"{len(header)} (an unquoted delimiter or quote?)", first_line)
                index += 1
                continue
            rec = {h: v for h, v in zip(header, fields) if h}
            for h in header[len(fields):]:
                if h:
                    rec[h] = None  # a short row: the missing cells are absent values, reported per role
            yield Row(index, rec, line=first_line)
            index += 1


def _open_parquet(path: str):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as e:  # ArrowInvalid and friends: the file is not Parquet or is damaged
        raise ValueError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def _iter_parquet(path: str) -> Iterator[Row | RowError]:
    pf = _open_parquet(path)
    index = 0
    try:
        batches = pf.iter_batches(batch_size=1024)
        for batch in batches:
            try:
                records = batch.to_pylist()
            except Exception:  # one bad value (e.g. invalid UTF-8 in a string column) spoils the batch
                records = None
            if records is not None:
                for rec in records:
                    yield Row(index, rec)
                    index += 1
                continue
            for i in range(batch.num_rows):  # isolate the bad rows, keep the good ones
                try:
                    yield Row(index, batch.slice(i, 1).to_pylist()[0])
                except Exception as e:  # noqa: BLE001
                    yield RowError(index, f"row {index}: cannot read the values ({type(e).__name__}: "
                                          f"{str(e).splitlines()[0] if str(e) else ''})")
                index += 1
    except OSError as e:  # a damaged row group: everything before it was yielded already
        raise ValueError(f"{path}: damaged Parquet data after row {index}: {e}") from None


def read_records(path: str | os.PathLike, fmt: str | None = None) -> Iterator[Row | RowError]:
    """Every record of the file, in order, as `Row` (values not yet mapped) or `RowError`."""
    _check_exists(path)
    kind = detect_format(path, fmt)
    p = str(path)
    if kind == "jsonl":
        it = _iter_jsonl(p)
    elif kind == "json":
        it = _iter_json_array(p)
    elif kind in ("csv", "tsv"):
        it = _iter_csv(p, "\t" if kind == "tsv" else ",")
    else:
        it = _iter_parquet(p)
    return _guard(it, p)


def _guard(it: Iterator[Row | RowError], path: str) -> Iterator[Row | RowError]:
    """A file that breaks mid-way (a truncated .gz, a disk error) ends the read with one clear error;
    the rows before it were already yielded (and, in a batch run, written)."""
    import zlib

    last = -1
    try:
        for item in it:
            last = item.index
            yield item
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: cannot read past row {last} ({type(e).__name__}: {e}); the rows before it "
                         f"were read") from None


def count_rows(path: str | os.PathLike, fmt: str | None = None, max_bytes: int = 200_000_000) -> int | None:
    """How many rows `read_records` will yield (for progress bars); None when unknown or too costly."""
    try:
        kind = detect_format(path, fmt)
        p = str(path)
        if kind == "parquet":
            return _open_parquet(p).metadata.num_rows
        if kind == "jsonl":
            with _open_bytes(p) as f:
                n, first = 0, True
                for line in f:
                    if first and line.startswith(codecs.BOM_UTF8):
                        line = line[len(codecs.BOM_UTF8):]
                    first = False
                    n += bool(line.strip())
                return n
        if os.path.getsize(p) > max_bytes:
            return None
        return sum(1 for _ in read_records(p, kind))
    except (OSError, ValueError, EOFError):
        return None


def input_columns(path: str | os.PathLike, fmt: str | None = None) -> list[str]:
    """The input's columns: the header of a CSV/TSV, the schema of a Parquet file, or for JSON(L) the
    keys of the first rows (in first-seen order). Raises ValueError when the file cannot be read."""
    _check_exists(path)
    kind = detect_format(path, fmt)
    p = str(path)
    if kind in ("csv", "tsv"):
        return [h for h in _csv_header(p, "\t" if kind == "tsv" else ",") if h]
    if kind == "parquet":
        return list(_open_parquet(p).schema_arrow.names)
    cols: dict[str, None] = {}
    seen = 0
    for item in read_records(p, kind):
        if isinstance(item, Row):
            cols.update(dict.fromkeys(item.data))
            seen += 1
            if seen >= _JSONL_PEEK:
                break
    return list(cols)


def resolve_columns(
    present: Iterable[str],
    columns: Mapping[str, str | None] | None = None,
    required: Iterable[str] = (),
    optional: Iterable[str] = (),
    path: str = "input",
) -> dict[str, str | None]:
    """Map each role to a column: the one the user named (which must exist when the role is required),
    else the first of `COLUMN_CANDIDATES[role]` that is present. Required roles with no column raise
    `MissingColumnError`; optional ones map to None."""
    present = list(present)
    have = set(present)
    columns = dict(columns or {})
    out: dict[str, str | None] = {}
    required = tuple(required)
    for role in list(required) + [r for r in optional if r not in required]:
        named = columns.get(role)
        if named:
            if named not in have:  # a column the user named is a promise, required or not
                raise MissingColumnError(role, named, present, path)
            out[role] = named
            continue
        found = next((c for c in COLUMN_CANDIDATES.get(role, (role,)) if c in have), None)
        if found is None and role in set(required):
            raise MissingColumnError(role, role, present, path)
        out[role] = found
    return out


def _validate(row: Row, mapping: dict[str, str | None], required: tuple[str, ...]) -> Row | RowError:
    values: dict[str, Any] = {}
    for role, col in mapping.items():
        if col is None:
            values[role] = None
            continue
        if col not in row.data:
            if role in required:
                keys = ", ".join(repr(k) for k in list(row.data)[:20])
                return RowError(row.index, f"{_where(row.index, row.line)}: missing column {col!r} (row has: "
                                           f"{keys or 'no columns'})", row.line, **_carry(row, mapping))
            values[role] = None
            continue
        values[role] = row.data[col]
    for role in required:
        col, v = mapping[role], values.get(role)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return RowError(row.index, f"{_where(row.index, row.line)}: column {col!r} is empty", row.line,
                            **_carry(row, mapping))
        if not isinstance(v, str):
            return RowError(row.index, f"{_where(row.index, row.line)}: column {col!r} must be text, got "
                                       f"{_json_type(v)} {_short(v, 30)}", row.line, **_carry(row, mapping))
        if not v.strip():
            return RowError(row.index, f"{_where(row.index, row.line)}: column {col!r} is empty", row.line,
                            **_carry(row, mapping))
    row.values = values
    return row


def _carry(row: Row, mapping: dict[str, str | None]) -> dict[str, Any]:
    """What a bad row still contributes: keyword arguments for RowError (its fields and its id)."""
    idc = mapping.get("id")
    return {"data": dict(row.data), "id": row.data.get(idc) if idc else None}


def read_rows(
    path: str | os.PathLike,
    *,
    fmt: str | None = None,
    columns: Mapping[str, str | None] | None = None,
    required: Iterable[str] = ("source", "summary"),
    optional: Iterable[str] = ("id", "label", "reference"),
) -> Iterator[Row | RowError]:
    """Rows of a JSONL/JSON/CSV/TSV/Parquet file with their roles mapped and checked.

    Raises (at call time, before any row is read) FileNotFoundError / ValueError when the file is
    missing, its format unknown, its header unreadable, or a required column absent. Then yields, in
    input order, a `Row` for every usable row and a `RowError` for every other one.
    """
    required = tuple(required)
    mapping = column_mapping(path, fmt=fmt, columns=columns, required=required, optional=optional)

    def gen() -> Iterator[Row | RowError]:
        for item in read_records(path, fmt):
            if isinstance(item, RowError):
                yield item
            else:
                yield _validate(item, mapping, required)

    return gen()


def column_mapping(
    path: str | os.PathLike,
    *,
    fmt: str | None = None,
    columns: Mapping[str, str | None] | None = None,
    required: Iterable[str] = ("source", "summary"),
    optional: Iterable[str] = ("id", "label", "reference"),
) -> dict[str, str | None]:
    """Which column `read_rows` uses for each role (same arguments); for messages and UIs."""
    present = input_columns(path, fmt)
    if not present and detect_format(path, fmt) in ("jsonl", "json"):
        # No readable object in the first rows (all broken, or no rows): nothing to check against, so
        # take the names as given and let each row report its own problem.
        required = tuple(required)
        return {r: (dict(columns or {}).get(r) or r) for r in list(required) + [o for o in optional if o not in required]}
    return resolve_columns(present, columns, tuple(required), optional, str(path))


def parse_label(value: Any, one_means: str = "hallucinated") -> int | None:
    """A gold label as 1 (hallucinated) / 0 (faithful) / None (missing or unreadable).

    Words are read by meaning (hallucinated, unfaithful, inconsistent, unsupported, yes... = 1;
    faithful, consistent, supported, correct, no... = 0). Numbers and booleans are read through
    `one_means`: datasets differ (SummEdits and LLM-AggreFact use 1 = consistent), so say which.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("hallucinated", "hallucination", "unfaithful", "inconsistent", "unsupported", "not_supported",
                 "incorrect", "contradiction", "factual_error", "error"):
            return 1
        if v in ("faithful", "consistent", "supported", "correct", "entailment", "factual", "ok"):
            return 0
        if v in ("true", "yes", "1", "1.0", "false", "no", "0", "0.0"):
            value = v in ("true", "yes", "1", "1.0")
        else:
            return None
    if isinstance(value, bool | int | float):
        if value not in (0, 1):
            return None
        one = int(bool(value))
        return one if one_means == "hallucinated" else 1 - one
    return None


# ---------------------------------------------------------------- output


def jsonable(value: Any) -> Any:
    """A value json.dumps can write as strict JSON: NaN/inf -> None, numpy/pyarrow/datetime -> plain."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", errors="replace")
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return jsonable(item())
        except Exception:  # noqa: BLE001
            pass
    tolist = getattr(value, "tolist", None)  # numpy arrays
    if callable(tolist):
        return jsonable(tolist())
    iso = getattr(value, "isoformat", None)  # datetime, date, pandas Timestamp
    if callable(iso):
        return iso()
    return str(value)


# Characters str.splitlines() treats as line breaks that json.dumps(ensure_ascii=False) leaves raw; they can
# only occur inside strings, so escaping them keeps one record per line for every reader.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def dumps_line(record: Mapping[str, Any]) -> bytes:
    """One JSONL line (UTF-8, strict JSON, ends with a newline, no other line break of any kind)."""
    try:  # the common case: plain JSON types already, no need to walk the record
        text = json.dumps(record, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):  # numpy/pyarrow values, NaN, datetimes, ...
        text = json.dumps(jsonable(record), ensure_ascii=False, allow_nan=False)
    text = text.translate(_LINE_BREAKS)
    return (text + "\n").encode("utf-8")


class ResumableWriter:
    """Append-only JSONL results keyed by `_row`, safe to SIGKILL and to start again.

    `done` maps the `_row` of every row already written (by this or an earlier run) to its `id` value
    (or None), so a caller can skip those rows and check that the input is the same one. A second
    process writing the same file at the same time is refused (an advisory lock, where the OS has one).
    """

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False, retry_errors: bool = True,
                 id_field: str | None = None, track: Iterable[str] = ()):
        self.path = str(path)
        self.id_field = id_field
        # field -> the values the kept rows of an earlier run had (e.g. "backend"), to warn about mixing
        self.tracked: dict[str, set[Any]] = {f: set() for f in track}
        self.done: dict[int, Any] = {}
        self.resumed = 0  # rows found from an earlier run
        self.dropped_partial = False  # a truncated last line was dropped
        self.dropped_errors = 0  # error rows dropped so they are retried
        self.kept_errors = 0  # error rows from an earlier run kept (retry_errors=False)
        self.written = 0
        self._last_row = -1
        self.in_order = True
        self._index: list[tuple[int, int, int]] = []  # (row, byte offset, length without newline) per line
        self._size = 0
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"output directory does not exist: {parent}")
        if os.path.isdir(self.path):
            raise ValueError(f"output {self.path} is a directory")
        if overwrite or not os.path.exists(self.path) or os.path.getsize(self.path) == 0:
            self._f = open(self.path, "wb")
            self._lock()
        else:
            self._f = open(self.path, "ab")
            self._lock()
            self._load(retry_errors)

    # -- set-up
    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; running twice on one file is the user's risk
            return
        try:
            fcntl.flock(self._f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._f.close()
            raise ValueError(f"another halluguard run is writing {self.path}; wait for it or pick another --output") from None

    def _load(self, retry_errors: bool) -> None:
        """Read an existing output line by line (never whole: result files can be large)."""
        changed = False
        pending_bad: int | None = None  # an unreadable line: fine as the last line, fatal in the middle
        offset = 0
        with open(self.path, "rb") as f:
            for n, line in enumerate(f, start=1):
                start, offset = offset, offset + len(line)
                if pending_bad is not None:
                    raise ValueError(
                        f"{self.path} exists but line {pending_bad} is not a halluguard result (no integer "
                        f"{ROW_KEY!r}); pass --overwrite to replace it or choose another --output")
                complete = line.endswith(b"\n")
                body = line.rstrip(b"\r\n")
                if not body.strip():
                    changed = True
                    continue
                try:
                    rec = json.loads(body.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                    rec = None
                row = rec.get(ROW_KEY) if isinstance(rec, dict) else None
                if not isinstance(row, int) or isinstance(row, bool):
                    if rec is None:  # cut short by a kill (or damaged): redo that row if it is the last line
                        pending_bad = n
                        changed = True
                        continue
                    raise ValueError(
                        f"{self.path} exists but line {n} is not a halluguard result (no integer {ROW_KEY!r}); "
                        f"pass --overwrite to replace it or choose another --output")
                if not complete:
                    changed = True  # a whole record whose newline was lost: keep it, add the newline
                if row in self.done:
                    changed = True  # a duplicate cannot come from this writer, but never keep two
                    continue
                if rec.get("error"):
                    if retry_errors:
                        self.dropped_errors += 1
                        changed = True
                        continue
                    self.kept_errors += 1
                self.done[row] = rec.get(self.id_field) if self.id_field else None
                for f, values in self.tracked.items():
                    if not rec.get("error") and f in rec and isinstance(rec[f], str | int | float | bool):
                        values.add(rec[f])
                self._index.append((row, start, len(body)))
                if row < self._last_row:
                    self.in_order = False
                self._last_row = max(self._last_row, row)
        self.dropped_partial = pending_bad is not None
        self._size = offset
        self.resumed = len(self.done)
        if changed:
            self._replace(self._index)

    def _replace(self, index: list[tuple[int, int, int]]) -> None:
        """Atomically rewrite the file as the lines `index` points at ((row, offset, length), in that
        order); a kill mid-way leaves the old file whole."""
        parent = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".halluguard-", suffix=".tmp", dir=parent)
        new_index: list[tuple[int, int, int]] = []
        pos = 0
        try:
            with os.fdopen(fd, "wb") as t, open(self.path, "rb") as src:
                for row, off, length in index:
                    src.seek(off)
                    t.write(src.read(length) + b"\n")
                    new_index.append((row, pos, length))
                    pos += length + 1
                t.flush()
                os.fsync(t.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        _fsync_dir(parent)
        self._index, self._size = new_index, pos
        self._f.close()  # the lock held the old inode; take it on the new one
        self._f = open(self.path, "ab")
        self._lock()

    # -- writing
    def write(self, record: Mapping[str, Any]) -> None:
        """Append one result; it must carry an integer `_row` not written before."""
        r = record.get(ROW_KEY)
        if not isinstance(r, int):
            raise ValueError(f"a result needs an integer {ROW_KEY!r}, got {_short(r)}")
        if r in self.done:
            raise ValueError(f"row {r} was already written to {self.path}")
        line = dumps_line(record)
        self._f.write(line)  # one write of one whole line
        self._f.flush()  # into the OS now: a SIGKILL of this process cannot lose it any more
        self._index.append((r, self._size, len(line) - 1))
        self._size += len(line)
        self.done[r] = record.get(self.id_field) if self.id_field else None
        if r < self._last_row:
            self.in_order = False
        self._last_row = max(self._last_row, r)
        self.written += 1

    def sync(self) -> None:
        """fsync: what was written survives a power cut, not only a killed process."""
        self._f.flush()
        os.fsync(self._f.fileno())

    def sort_by_row(self) -> None:
        """Rewrite the file in `_row` order (after a resume that retried rows out of order)."""
        if self.in_order:
            return
        self.sync()
        self._replace(sorted(self._index))
        self.in_order = True

    def close(self) -> None:
        if not self._f.closed:
            try:
                self.sync()
            finally:
                self._f.close()

    def __enter__(self) -> ResumableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def iter_results(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The records of a results JSONL one at a time; a cut-off or unreadable line is skipped."""
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n") or not raw.strip():
                continue
            try:
                rec = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                continue
            if isinstance(rec, dict):
                yield rec


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a results JSONL (e.g. to compute metrics after a run); see `iter_results`."""
    return list(iter_results(path))


__all__ = [
    "COLUMN_CANDIDATES", "FORMATS", "MissingColumnError", "ROW_KEY", "ResumableWriter", "Row", "RowError",
    "column_mapping", "count_rows", "detect_format", "dumps_line", "input_columns", "jsonable", "parse_label",
    "iter_results", "read_records", "read_results", "read_rows", "resolve_columns",
]
