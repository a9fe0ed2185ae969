"""`halluguard summarize | verify | evaluate` over JSONL, CSV, TSV or Parquet files.

    halluguard verify --backend lite --input pairs.jsonl --output flagged.jsonl
    halluguard summarize --backend extractive --input docs.jsonl --output summaries.jsonl --verify lite
    halluguard evaluate --backend lite --input labelled.csv --output scored.jsonl --report report.json
    halluguard evaluate --generate openai --gen-base-url http://localhost:8000/v1 --gen-model m \
        --input docs.jsonl --output eval.jsonl

Output (JSONL, one line per input row, the contract other tools rely on): the input fields, plus
`_row` (the 0-based input row index: the resume key), `score` (0-1, higher = more likely hallucinated,
null when undecided), `label` (hallucinated / faithful / unknown), `spans` ([{start, end, text, score,
reason}] character offsets into the summary), `sentences` (per-sentence verdicts with evidence),
`threshold` and `backend`. An input field whose name the output needs (e.g. a gold `label` column) is
kept as `input_<name>`. A row that cannot be processed is written too, with `error` (one line naming
the row and the problem), label "unknown" and score null, so every input row appears exactly once.

Runs resume: started again with the same `--output`, rows already written are skipped (rows that ended
in an error are retried unless `--keep-errors`) and the file ends in input order. `--overwrite` starts
fresh. Exit status: 0 every row done, 1 some rows failed (listed on stderr and in the output), 2 a user
error stopped the run before it started (bad flag, missing file or column, unknown backend) or an input
file broke part-way (a truncated .gz: the rows before it are written), 3 the run
stopped early because `--max-failures` rows in a row failed in the backend (a server down, say): what was
done is kept, run the same command again to resume.

A backend may also be your own class: `--backend my_pkg.module:MyVerifier` or
`--backend path/to/file.py:MyVerifier` (a `halluguard.verify.Verifier` subclass; for summarize/--generate
a class with `summarize(documents, progress=None) -> list[Summary]`); `--opt key=value` passes any
constructor argument (values parsed as JSON when they parse, else kept as text).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

CHUNK_SIZE = 32  # rows per verifier/summarizer call and per fsync of the output
REMOTE_CONCURRENCY = 8  # parallel requests per chunk for the openai backends (the client caps it too)
MAX_ERRORS_SHOWN = 20

VERIFY_FIELDS = ("_row", "score", "label", "threshold", "backend", "spans", "sentences", "error", "extra")
SUMMARY_FIELDS = ("summary", "summary_backend", "summary_model", "extractive", "chunks", "summary_extra")


# ----------------------------------------------------------------------------------- arguments


def _add_io_args(p: argparse.ArgumentParser, *, summary_col: bool = True, eval_cols: bool = False) -> None:
    g = p.add_argument_group("input and output")
    g.add_argument("--input", "-i", required=True, metavar="IN", help="JSONL, JSON, CSV, TSV or Parquet file")
    g.add_argument("--output", "-o", required=True, metavar="OUT.jsonl",
                   help="results, one JSON line per input row; an existing file is resumed")
    g.add_argument("--format", choices=["jsonl", "json", "csv", "tsv", "parquet"],
                   help="input format (default: from the extension)")
    g.add_argument("--source-col", metavar="COL",
                   help="column with the source document (default: source, or document/article/text/...)")
    if summary_col:
        g.add_argument("--summary-col", metavar="COL",
                       help="column with the summary to check (default: summary, or claim/response/...)")
    g.add_argument("--id-col", metavar="COL", help="column with a row id, kept and checked on resume (default: id)")
    if eval_cols:
        g.add_argument("--label-col", metavar="COL",
                       help="gold label column for metrics (default: label); 1/true/'hallucinated' = hallucinated")
        g.add_argument("--label-one-means", choices=["hallucinated", "faithful"], default="hallucinated",
                       help="what a numeric/boolean label 1 means (SummEdits and LLM-AggreFact use 1 = faithful)")
        g.add_argument("--reference-col", metavar="COL",
                       help="reference summary column for ROUGE and similarity (default: reference)")
    g.add_argument("--overwrite", action="store_true", help="start fresh instead of resuming an existing --output")
    g.add_argument("--keep-errors", action="store_true",
                   help="on resume, keep rows that failed before instead of retrying them")
    g.add_argument("--chunk-size", type=int, default=CHUNK_SIZE, metavar="N",
                   help=f"rows per backend call and per sync of the output (default {CHUNK_SIZE})")
    g.add_argument("--concurrency", type=int, default=None, metavar="N",
                   help=f"rows processed in parallel (default: {REMOTE_CONCURRENCY} for the openai backends "
                        "and --base-url, else 1 with batched calls)")
    g.add_argument("--max-failures", type=int, default=50, metavar="N",
                   help="stop (exit 3, resumable) after N rows in a row failed in the backend, e.g. a server that "
                        "is down (default 50; 0 = never stop)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _add_backend_args(p: argparse.ArgumentParser, prefix: str, what: str, *, backend_flag: str | None,
                      default: str | None, choices_hint: str) -> None:
    """The model/adapter/... flags of one backend, named `--{prefix}model` etc."""
    g = p.add_argument_group(f"{what} backend")
    if backend_flag:
        g.add_argument(backend_flag, dest=f"{prefix.replace('-', '_')}backend", default=default, metavar="NAME",
                       help=f"{what} backend: {choices_hint}, or module:Class (default: {default})")
    d = prefix.replace("-", "_")
    g.add_argument(f"--{prefix}model", dest=f"{d}model", metavar="ID_OR_PATH", help="hub id or local path of the model")
    if what == "verifier":
        g.add_argument(f"--{prefix}preset", dest=f"{d}preset", metavar="NAME",
                       help="a published detector's settings: span: lettucedetect-base, lettucedetect-large; nli: "
                            "hhem-2.1-open, minicheck-roberta-large, minicheck-deberta-v3-large (docs/verifiers.md)")
    g.add_argument(f"--{prefix}adapter", dest=f"{d}adapter", metavar="PATH", help="LoRA adapter (path or hub id)")
    g.add_argument(f"--{prefix}quantization", dest=f"{d}quantization", choices=["nf4", "int8", "none"],
                   help="load the model in 4-bit (nf4), 8-bit or unquantized")
    g.add_argument(f"--{prefix}dtype", dest=f"{d}dtype", choices=["auto", "bfloat16", "float16", "float32"],
                   help="compute/weights dtype (default: the backend's)")
    g.add_argument(f"--{prefix}allow-fallback", dest=f"{d}allow_fallback", action="store_true", default=None,
                   help="load unquantized when 4/8-bit is not possible here (off: such a load fails with the reason)")
    g.add_argument(f"--{prefix}trust-remote-code", dest=f"{d}trust_remote_code", action="store_true", default=None,
                   help="run the model repository's own code (needed by e.g. HHEM-2.1-open); off unless given")
    g.add_argument(f"--{prefix}base-url", dest=f"{d}base_url", metavar="URL",
                   help="OpenAI-compatible server (vLLM, llama.cpp, Ollama), e.g. http://localhost:8000/v1")
    g.add_argument(f"--{prefix}batch-size", dest=f"{d}batch_size", type=int, metavar="N",
                   help="the backend's own inference batch size")
    if what == "verifier":
        g.add_argument(f"--{prefix}threshold", dest=f"{d}threshold", type=float, metavar="T",
                       help="score >= T is labelled hallucinated (default: the backend's calibrated threshold)")
    else:
        g.add_argument(f"--{prefix}max-new-tokens", dest=f"{d}max_new_tokens", type=int, metavar="N",
                       help="longest summary to generate, in tokens")
    g.add_argument(f"--{prefix}opt", dest=f"{d}opt", action="append", default=[], metavar="KEY=VALUE",
                   help="any other constructor argument of the backend (repeatable; VALUE parsed as JSON if it can be)")


def register(subparsers: Any) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "verify", help="flag hallucinated summaries in a file of (source, summary) rows",
        description="Score every (source, summary) row and flag unsupported spans. Resumable.\n\n"
                    "  halluguard verify --backend lite --input pairs.jsonl --output flagged.jsonl",
        formatter_class=fmt)
    _add_io_args(p)
    _add_backend_args(p, "", "verifier", backend_flag="--backend", default="lite",
                      choices_hint="lite, nli, span, judge, dpo-reward")
    p.set_defaults(func=run_verify)

    p = subparsers.add_parser(
        "summarize", help="summarize every document of a file (optionally flag the summaries)",
        description="Summarize each row's source document; with --verify also flag each summary. Resumable.\n\n"
                    "  halluguard summarize --backend extractive --input docs.jsonl --output s.jsonl --verify lite",
        formatter_class=fmt)
    _add_io_args(p, summary_col=False)
    _add_backend_args(p, "", "summarizer", backend_flag="--backend", default="extractive",
                      choices_hint="extractive, hf, openai")
    _add_backend_args(p, "verify-", "verifier", backend_flag="--verify", default=None,
                      choices_hint="lite, nli, span, judge, dpo-reward (off unless given)")
    p.set_defaults(func=run_summarize)

    p = subparsers.add_parser(
        "evaluate", help="verify (optionally generate) a file and report metrics with confidence intervals",
        description="Optionally generate a summary per row (--generate), verify every summary, then report the "
                    "hallucination rate, the score distribution, ROUGE and similarity to references, and "
                    "detector metrics against gold labels, each with a bootstrap 95% CI. Resumable.\n\n"
                    "  halluguard evaluate --input labelled.jsonl --output scored.jsonl --report report.json",
        formatter_class=fmt)
    _add_io_args(p, eval_cols=True)
    p.add_argument("--report", metavar="REPORT.json", help="metrics JSON (default: OUT with .report.json)")
    p.add_argument("--gold-spans-col", metavar="COL",
                   help="column with gold hallucinated spans ([{start, end}] or [[start, end]]) for span P/R/F1")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for CIs (default 1000)")
    _add_backend_args(p, "", "verifier", backend_flag="--backend", default="lite",
                      choices_hint="lite, nli, span, judge, dpo-reward")
    _add_backend_args(p, "gen-", "summarizer", backend_flag="--generate", default=None,
                      choices_hint="extractive, hf, openai (off unless given: the input's summaries are checked)")
    p.set_defaults(func=run_evaluate)


# ----------------------------------------------------------------------------------- backends


def _parse_opts(opts: Sequence[str], flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for o in opts:
        key, sep, value = o.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} expects KEY=VALUE, got {o!r}")
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out


def _looks_like_path(value: str) -> bool:
    """A local path rather than a hub id ("org/name" has exactly one slash and no leading ./ ~ /)."""
    return (value.startswith(("/", "./", "../", "~", ".\\")) or "\\" in value or value.count("/") >= 2
            or value in (".", ".."))


def _check_model_path(value: str | None, flag: str, what: str = "model") -> None:
    if value and _looks_like_path(value) and not os.path.exists(os.path.expanduser(value)):
        raise FileNotFoundError(f"{flag}: {what} path does not exist: {value}")


def _backend_kwargs(args: argparse.Namespace, prefix: str, flag_prefix: str) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    for name in ("model", "preset", "adapter", "quantization", "dtype", "allow_fallback", "trust_remote_code",
                 "base_url", "batch_size", "threshold", "max_new_tokens"):
        v = getattr(args, f"{prefix}{name}", None)
        if v is not None:
            kw[name] = v
    _check_model_path(kw.get("model"), f"--{flag_prefix}model")
    _check_model_path(kw.get("adapter"), f"--{flag_prefix}adapter", "adapter")
    kw.update(_parse_opts(getattr(args, f"{prefix}opt", []) or [], f"--{flag_prefix}opt"))
    return kw


def _load_custom(spec: str) -> type:
    """`module:Class` or `path/to/file.py:Class` -> the class."""
    import importlib
    import importlib.util

    mod_name, _, cls_name = spec.rpartition(":")
    if not mod_name or not cls_name:
        raise ValueError(f"custom backend must be module:Class or file.py:Class, got {spec!r}")
    if mod_name.endswith(".py"):
        if not os.path.isfile(mod_name):
            raise FileNotFoundError(f"backend file not found: {mod_name}")
        name = "halluguard_custom_" + os.path.splitext(os.path.basename(mod_name))[0]
        if name in sys.modules:
            module = sys.modules[name]
        else:
            s = importlib.util.spec_from_file_location(name, mod_name)
            module = importlib.util.module_from_spec(s)
            sys.modules[name] = module
            s.loader.exec_module(module)  # type: ignore[union-attr]
    else:
        try:
            module = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            raise ValueError(f"cannot import backend module {mod_name!r} ({e})") from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise ValueError(f"backend module {mod_name!r} has no {cls_name!r}")
    return cls


def _check_kwargs(cls: Any, kw: dict[str, Any], what: str, name: str) -> None:
    """Unknown constructor arguments become one clear line instead of a TypeError from deep inside."""
    import inspect

    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return
    params = sig.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    accepted = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    bad = [k for k in kw if k not in accepted]
    if bad:
        shown = ", ".join(sorted(accepted)) or "no options"
        raise ValueError(f"{what} backend {name!r} does not take {', '.join(repr(b) for b in bad)} "
                         f"(it takes: {shown})")


def build_verifier(name: str, kwargs: dict[str, Any]):
    """A verifier by registry name (via `halluguard.verify.get_verifier`) or `module:Class`."""
    from halluguard import verify as registry
    from halluguard.verify.base import Verifier

    if ":" in name:
        cls = _load_custom(name)
        if not (isinstance(cls, type) and issubclass(cls, Verifier)):
            raise ValueError(f"{name} is not a halluguard.verify.Verifier subclass")
        _check_kwargs(cls, kwargs, "verifier", name)
        return cls(**kwargs)
    key = (name or "").strip().lower().replace("_", "-")
    target = registry.BACKENDS.get(key)
    if target is None:
        raise ValueError(f"unknown verifier backend {name!r}; choose one of: {', '.join(registry.BACKENDS)}")
    if isinstance(target, str):
        import importlib

        mod, _, cls_name = target.partition(":")
        try:
            cls = getattr(importlib.import_module(mod), cls_name)
        except ModuleNotFoundError as e:
            if e.name and (e.name == mod or mod.startswith(e.name + ".")):
                raise ValueError(f"verifier backend {name!r} is not available in this install ({mod} is missing)") from None
            raise ValueError(f"verifier backend {name!r} needs the package {e.name!r}: pip install {e.name}") from None
        _check_kwargs(cls, kwargs, "verifier", name)
    return registry.get_verifier(key, **kwargs)


def build_summarizer(name: str, kwargs: dict[str, Any]):
    """A summarizer by name (via `halluguard.summarize.get_summarizer`) or `module:Class`."""
    if ":" in name:
        cls = _load_custom(name)
        if not callable(getattr(cls, "summarize", None)):
            raise ValueError(f"{name} has no summarize(documents, progress=None) method")
        _check_kwargs(cls, kwargs, "summarizer", name)
        return cls(**kwargs)
    try:
        from halluguard.summarize import get_summarizer
    except ModuleNotFoundError as e:
        if e.name == "halluguard.summarize":
            raise ValueError("summarization is not available in this install (halluguard.summarize is missing)") from None
        raise ValueError(f"summarization needs the package {e.name!r}: pip install {e.name}") from None
    if (name or "").strip().lower() in ("hf", "transformers") and isinstance(kwargs.get("adapter"), str):
        # the hf summarizer loads adapters by name (several can share one base); --adapter PATH is one
        kwargs = dict(kwargs)
        path = kwargs.pop("adapter")
        kwargs["adapters"] = {**(kwargs.get("adapters") or {}), "adapter": path}
        kwargs["adapter"] = "adapter"
    if (name or "").strip().lower() in ("openai", "vllm") and "max_new_tokens" in kwargs:
        kwargs = dict(kwargs)
        kwargs["max_tokens"] = kwargs.pop("max_new_tokens")  # the OpenAI API's name for it
    try:
        return get_summarizer(name, **kwargs)
    except TypeError as e:  # an option this backend does not take
        if "argument" in str(e):
            raise ValueError(f"summarizer backend {name!r}: {e}") from None
        raise


def _is_remote(name: str | None, kwargs: dict[str, Any]) -> bool:
    return bool(name) and (str(name).lower() in ("openai", "vllm") or bool(kwargs.get("base_url")))


def _summarizer_kwargs(args: argparse.Namespace, prefix: str, flag_prefix: str, name: str) -> dict[str, Any]:
    kw = _backend_kwargs(args, prefix, flag_prefix)
    if args.concurrency and str(name).lower() in ("openai", "vllm"):
        kw.setdefault("concurrency", args.concurrency)  # the client's cap on requests in flight
    return kw


# ----------------------------------------------------------------------------------- steps


class _Step:
    """One stage of the per-row pipeline (generate, verify). `many` processes a list of rows in one
    backend call and returns, per row, its output fields or the exception that row raised; `one` does a
    single row (used to isolate a failing row, and for concurrent remote calls)."""

    name = "step"
    concurrent_inside = False  # True when the backend already runs rows concurrently in `many`

    def many(self, ctx: list[dict[str, Any]],
             progress: Callable[[int, int], None] | None) -> list[dict[str, Any] | BaseException]:
        return [self.one(c) for c in ctx]

    def one(self, c: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


def _score_value(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"backend returned a non-numeric score {x!r}") from None
    if f != f:
        return None
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"backend returned a score outside 0-1: {f}")
    return f


def report_fields(report: Any) -> dict[str, Any]:
    """The output fields of one `Report`: score, label, threshold, backend, spans, sentences (+ extra)."""
    from halluguard.types import label_for

    score = _score_value(getattr(report, "score", None))
    threshold = float(getattr(report, "threshold", 0.5))
    label = getattr(report, "label", None) or label_for(score, threshold)
    if score is None:
        label = "unknown"  # an undecided score is never "faithful"
    out = {
        "score": score,
        "label": label,
        "threshold": threshold,
        "backend": getattr(report, "backend", ""),
        "spans": [s.to_dict() if hasattr(s, "to_dict") else dict(s) for s in (report.spans or [])],
        "sentences": [s.to_dict() if hasattr(s, "to_dict") else dict(s) for s in (report.sentences or [])],
    }
    if getattr(report, "extra", None):
        out["extra"] = report.extra
    return out


def _safe(fn: Callable[[Any], Any], x: Any) -> Any:
    try:
        return fn(x)
    except Exception as e:  # noqa: BLE001 - a malformed result fails its row only
        return e


class _VerifyStep(_Step):
    name = "verification"

    def __init__(self, verifier: Any):
        self.v = verifier

    def many(self, ctx, progress):
        reports = self.v.verify_batch([c["source"] for c in ctx], [c["summary"] for c in ctx], progress=progress)
        if len(reports) != len(ctx):
            raise RuntimeError(f"backend returned {len(reports)} reports for {len(ctx)} rows")
        return [_safe(report_fields, r) for r in reports]

    def one(self, c):
        return report_fields(self.v.verify(c["source"], c["summary"]))


class _SummarizeStep(_Step):
    name = "summarization"

    def __init__(self, summarizer: Any):
        self.s = summarizer
        # halluguard summarizers yield per-row results (the openai one concurrently, under its client's cap)
        self.concurrent_inside = callable(getattr(summarizer, "summarize_iter", None))

    @staticmethod
    def _fields(s: Any) -> dict[str, Any]:
        text = getattr(s, "text", s if isinstance(s, str) else None)
        if not isinstance(text, str):
            raise ValueError(f"summarizer returned {type(s).__name__}, not a Summary")
        out = {"summary": text, "summary_backend": getattr(s, "backend", ""), "summary_model": getattr(s, "model", ""),
               "extractive": bool(getattr(s, "extractive", False)), "chunks": int(getattr(s, "chunks", 1))}
        if getattr(s, "extra", None):
            out["summary_extra"] = s.extra
        return out

    def _safe_fields(self, s: Any) -> dict[str, Any] | BaseException:
        try:
            return self._fields(s)
        except Exception as e:  # noqa: BLE001
            return e

    def many(self, ctx, progress):
        docs = [c["source"] for c in ctx]
        if self.concurrent_inside:
            out: list[Any] = [None] * len(docs)
            for i, r in self.s.summarize_iter(docs, progress=progress):
                out[i] = r if isinstance(r, BaseException) else self._safe_fields(r)
            return [RuntimeError("the summarizer returned nothing for this row") if o is None else o for o in out]
        try:
            summaries = self.s.summarize(docs, progress=progress)
        except Exception as e:  # a halluguard BatchError keeps the good rows: use them
            results, errors = getattr(e, "results", None), getattr(e, "errors", None)
            if not isinstance(results, list) or len(results) != len(docs) or not isinstance(errors, dict):
                raise
            return [ValueError(errors.get(i, "failed")) if r is None else self._safe_fields(r)
                    for i, r in enumerate(results)]
        if len(summaries) != len(ctx):
            raise RuntimeError(f"summarizer returned {len(summaries)} summaries for {len(ctx)} documents")
        return [self._safe_fields(s) for s in summaries]

    def one(self, c):
        (r,) = self.many([c], None)
        if isinstance(r, BaseException):
            raise r
        return r


def _one_line(e: BaseException, limit: int = 300) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def _apply_step(step: _Step, ctx: list[dict[str, Any]],
                progress: Callable[[int, int], None] | None) -> list[dict[str, Any] | BaseException]:
    """Run a step on a chunk in one backend call; a failure is pinned on its row, never on the chunk."""
    if not ctx:
        return []
    try:
        out = list(step.many(ctx, progress))
        if len(out) != len(ctx):
            raise RuntimeError(f"{step.name} returned {len(out)} results for {len(ctx)} rows")
        return out
    except Exception as batch_error:  # noqa: BLE001 - retry row by row to find the bad one(s)
        if len(ctx) == 1:
            return [batch_error]
        out = []
        for c in ctx:
            try:
                out.append(step.one(c))
            except Exception as e:  # noqa: BLE001
                out.append(e)
        return out


# ----------------------------------------------------------------------------------- the run loop


@dataclass
class _Job:
    command: str
    build_steps: Callable[[], list[_Step]]  # called once the output is open, so a busy output fails first
    required: tuple[str, ...]
    reserved: tuple[str, ...]  # output field names; input fields with these names become input_<name>
    error_fields: dict[str, Any]  # what an error row carries besides _row and error
    concurrency: int
    extra_fields: Callable[[Any], dict[str, Any]] | None = None  # per-row fields from the input (gold label)


def _rename(data: dict[str, Any], reserved: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = k
        while key in reserved or (key != k and key in data):
            key = "input_" + key
        out[key] = v
    return out


def _out_key(col: str | None, reserved: tuple[str, ...], present: Sequence[str] = ()) -> str | None:
    if col is None:
        return None
    return next(iter(_rename({col: None, **dict.fromkeys(c for c in present if c != col)}, reserved)))


class _Progress:
    def __init__(self, total: int | None, desc: str, disable: bool):
        self.bar = None
        if not disable:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=desc, unit="row", file=sys.stderr, dynamic_ncols=True,
                                mininterval=0.5)
            except ImportError:
                self.bar = None
        self._within = 0

    def chunk_callback(self, n_stages: int) -> Callable[[int, int], None]:
        """progress(done, total) from a backend, counted toward the chunk's rows (last stage only)."""
        self._within = 0

        def cb(done: int, total: int) -> None:
            if self.bar is not None and n_stages == 1 and done > self._within:
                self.bar.update(done - self._within)
                self._within = done

        return cb

    def finish_chunk(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(max(0, n - self._within))
        self._within = 0

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run(args: argparse.Namespace, job: _Job, rows, mapping: dict[str, str | None], present: list[str]) -> dict[str, Any]:
    """Process every input row not yet in the output; return counts. Rows go out in input order."""
    from halluguard.io import ROW_KEY, ResumableWriter, Row, RowError, jsonable

    id_key = _out_key(mapping.get("id"), job.reserved, present)
    out_path = args.output
    existed = os.path.exists(out_path)
    writer = ResumableWriter(out_path, overwrite=args.overwrite, retry_errors=not args.keep_errors, id_field=id_key,
                             track=("backend", "threshold", "summary_backend", "summary_model"))
    try:
        try:
            steps = job.build_steps()  # loading models can take minutes: only after the output is known good
        except (ValueError, OSError, ImportError, RuntimeError) as e:
            # loaders (transformers, hub) raise multi-line messages: the CLI promises one line
            raise ValueError(_one_line(e, 800)) from e
    except BaseException:
        writer.close()
        if not existed and os.path.exists(out_path) and os.path.getsize(out_path) == 0:
            os.unlink(out_path)  # leave nothing behind for a run that never started
        raise
    _warn_if_mixing(job.command, writer, steps)
    errors: list[str] = []
    seen = 0
    max_row = -1
    from halluguard.io import count_rows

    total = count_rows(args.input, args.format)
    prog = _Progress(total, f"halluguard {job.command}", args.no_progress)
    if writer.resumed or writer.dropped_errors or writer.dropped_partial:
        prog.update(writer.resumed)
        print(f"halluguard {job.command}: resuming {out_path}: {writer.resumed} rows already done"
              + (f", {writer.dropped_errors} failed rows to retry" if writer.dropped_errors else "")
              + (", dropped a cut-off last line" if writer.dropped_partial else ""), file=sys.stderr)
    chunk: list[Any] = []
    streak = {"n": 0, "last": ""}  # consecutive rows the backend failed on (input errors do not count)
    limit = max(0, getattr(args, "max_failures", 0) or 0)
    stopped = False

    def error_record(index: int, message: str, data: dict[str, Any] | None) -> dict[str, Any]:
        rec = {ROW_KEY: index, **_rename(data or {}, job.reserved)}
        rec.update(job.error_fields)
        rec["error"] = message
        return rec

    def failure_message(it: Any, step: _Step, e: BaseException) -> str:
        where = f"row {it.index}" + (f" (line {it.line}" if it.line else "")
        if it.id is not None:
            where += (", " if it.line else " (") + f"id {jsonable(it.id)!r}"
        where += ")" if (it.line or it.id is not None) else ""
        return f"{where}: {step.name} failed: {type(e).__name__}: {_one_line(e)}"

    def emit(it: Any, fields: dict[str, Any] | None = None, failure: str | None = None) -> None:
        """Write the output record of one input item (a RowError, a failed row, or a done row)."""
        if isinstance(it, RowError):
            rec = error_record(it.index, it.message, it.data)
            errors.append(it.message)
        else:
            streak["n"] = streak["n"] + 1 if failure else 0
            if failure:
                streak["last"] = failure
                rec = error_record(it.index, failure, it.data)
            else:
                rec = {ROW_KEY: it.index, **_rename(it.data, job.reserved)}
            if job.extra_fields:
                rec.update(job.extra_fields(it))
            rec.update(fields or {})  # on a failed row: what earlier steps made (a generated summary) is kept
            if failure:
                rec["error"] = failure
                errors.append(failure)
        writer.write(rec)
        if len(errors) <= MAX_ERRORS_SHOWN and "error" in rec:
            _print_above(prog, f"halluguard {job.command}: {rec['error']}")

    def flush() -> None:
        """Batched mode: every step on the whole chunk (one backend call each), then write the chunk."""
        nonlocal chunk
        if not chunk:
            return
        good = [it for it in chunk if isinstance(it, Row)]
        ctx = {it.index: {"source": it.get("source"), "summary": it.get("summary")} for it in good}
        fields: dict[int, dict[str, Any]] = {it.index: {} for it in good}
        failed: dict[int, str] = {}
        for k, step in enumerate(steps):
            todo = [it for it in good if it.index not in failed]
            cb = prog.chunk_callback(len(steps)) if k == len(steps) - 1 else None
            results = _apply_step(step, [ctx[it.index] for it in todo], cb)
            for it, res in zip(todo, results):
                if isinstance(res, BaseException):
                    failed[it.index] = failure_message(it, step, res)
                else:
                    fields[it.index].update(res)
                    ctx[it.index].update({k2: v for k2, v in res.items() if k2 == "summary"})
        for it in chunk:
            emit(it, fields.get(it.index), failed.get(it.index))
        writer.sync()  # one fsync per chunk: a kill loses at most the rows not yet written
        prog.finish_chunk(len(chunk))
        chunk = []

    def row_task(it: Any) -> tuple[dict[str, Any], str | None]:
        """Concurrent mode: every step on one row, in a worker thread."""
        ctx = {"source": it.get("source"), "summary": it.get("summary")}
        fields: dict[str, Any] = {}
        for step in steps:
            try:
                res = step.one(ctx)
            except Exception as e:  # noqa: BLE001 - pinned on this row
                return fields, failure_message(it, step, e)
            fields.update(res)
            if "summary" in res:
                ctx["summary"] = res["summary"]
        return fields, None

    # Concurrent mode (remote backends): a sliding window of rows in flight, written in input order as
    # the oldest finishes, so one slow request never holds back a whole chunk.
    pool = None
    window: deque[tuple[Any, Any]] = deque()
    since_sync = 0
    if job.concurrency > 1:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=job.concurrency, thread_name_prefix="halluguard-row")
    max_window = max(args.chunk_size, 4 * job.concurrency)

    def drain(until: int) -> None:
        """Write finished rows from the head of the window until at most `until` remain."""
        nonlocal since_sync
        while window and (len(window) > until or window[0][1] is None or window[0][1].done()):
            if limit and streak["n"] >= limit:
                return
            it, fut = window.popleft()
            if fut is None:
                emit(it)
            else:
                fields, failure = fut.result()
                emit(it, fields, failure)
            prog.update(1)
            since_sync += 1
            if since_sync >= args.chunk_size:
                writer.sync()
                since_sync = 0

    read_error: ValueError | None = None
    it = iter(rows)
    try:
        while True:
            try:
                item = next(it)
            except StopIteration:
                break
            except ValueError as e:  # the file broke mid-way: finish the rows read so far, then report it
                read_error = e
                break
            seen += 1
            max_row = max(max_row, item.index)
            if item.index in writer.done:
                prev_id = writer.done[item.index]
                if prev_id is not None and item.id is not None and jsonable(prev_id) != jsonable(item.id):
                    raise ValueError(
                        f"{out_path} row {item.index} has id {prev_id!r} but row {item.index} of {args.input} has id "
                        f"{jsonable(item.id)!r}: the output was written from another input; pass --overwrite or "
                        f"choose another --output")
                continue
            if pool is not None:
                window.append((item, pool.submit(row_task, item) if isinstance(item, Row) else None))
                drain(max_window)
                if limit and streak["n"] >= limit:
                    stopped = True
                    break
                continue
            chunk.append(item)
            if len(chunk) >= max(1, args.chunk_size):
                flush()
                if limit and streak["n"] >= limit:
                    stopped = True
                    break
        if not stopped:
            flush()
            drain(0)
            stopped = bool(window)  # the failure limit was hit while draining
        if pool is not None:
            for _, fut in window:  # rows not written are redone by the next run
                if fut is not None:
                    fut.cancel()
            pool.shutdown(wait=True)
            window.clear()
            pool = None
        writer.sync()
        if stopped:
            _print_above(prog, f"halluguard {job.command}: stopped after {streak['n']} rows in a row failed (last: "
                               f"{streak['last']}); fix the backend and run the same command again to resume")
        if read_error is not None:
            writer.sync()
            raise read_error
        extra_rows = [r for r in writer.done if r > max_row] if not stopped else []
        if extra_rows:
            raise ValueError(f"{out_path} has results for row {min(extra_rows)} but {args.input} has only "
                             f"{max_row + 1} rows: the output was written from another input; pass --overwrite "
                             f"or choose another --output")
        writer.sort_by_row()
    finally:
        if pool is not None:  # after an error: do not wait for rows nobody will write
            pool.shutdown(wait=False, cancel_futures=True)
        prog.close()
        writer.close()
    n_err = len(errors) + writer.kept_errors
    if len(errors) > MAX_ERRORS_SHOWN:
        print(f"halluguard {job.command}: ... and {len(errors) - MAX_ERRORS_SHOWN} more failed rows "
              f"(each has an \"error\" field in {out_path})", file=sys.stderr)
    print(f"halluguard {job.command}: {len(writer.done)} rows in {out_path} ({writer.written} written now, "
          f"{writer.resumed} from an earlier run); {n_err} failed", file=sys.stderr)
    clients = _client_stats(steps)
    for name, st in clients.items():
        print(f"halluguard {job.command}: {name} server: {st.get('requests', 0)} requests, {st.get('retries', 0)} "
              f"retries, {st.get('failures', 0)} failures, at most {st.get('max_in_flight', 0)} in flight",
              file=sys.stderr)
    return {"rows": len(writer.done), "written": writer.written, "resumed": writer.resumed, "failed": n_err,
            "input_rows": seen, "stopped": stopped, **({"clients": clients} if clients else {})}


def _warn_if_mixing(command: str, writer: Any, steps: list[_Step]) -> None:
    """Resuming with another backend or threshold mixes two kinds of rows in one file: say so."""
    now: dict[str, Any] = {}
    for step in steps:
        v = getattr(step, "v", None)
        if v is not None:
            now["backend"] = getattr(v, "name", None)
            now["threshold"] = getattr(v, "threshold", None)
        sm = getattr(step, "s", None)
        if sm is not None:
            now["summary_backend"] = getattr(sm, "name", None)
    for field, value in now.items():
        before = writer.tracked.get(field) or set()
        if value is not None and before and before != {value}:
            shown = ", ".join(sorted(map(str, before)))
            print(f"halluguard {command}: warning: {writer.path} has rows made with {field} {shown}; this run uses "
                  f"{value}, so the file will mix them (pass --overwrite to redo every row)", file=sys.stderr)


def _client_stats(steps: list[_Step]) -> dict[str, dict[str, Any]]:
    """Request/retry counters of the OpenAI-compatible clients the backends used (halluguard.openai_client)."""
    out = {}
    for step in steps:
        backend = getattr(step, "s", None) or getattr(step, "v", None)
        stats = getattr(getattr(backend, "client", None), "stats", None)
        as_dict = getattr(stats, "as_dict", None)
        if callable(as_dict):
            out[step.name] = as_dict()
    return out


def _exit_code(stats: dict[str, Any]) -> int:
    """0 every row done; 1 some rows failed; 3 stopped early (--max-failures), rerun to resume."""
    if stats.get("stopped"):
        return 3
    return 1 if stats["failed"] else 0


def _print_above(prog: _Progress, msg: str) -> None:
    if prog.bar is not None:
        prog.bar.write(msg, file=sys.stderr)
    else:
        print(msg, file=sys.stderr)


def _check_paths(args: argparse.Namespace) -> None:
    from halluguard.io import detect_format

    if not os.path.exists(args.input):
        raise FileNotFoundError(f"input file not found: {args.input}")
    detect_format(args.input, args.format)
    ext = os.path.splitext(args.output)[1].lower()
    if ext not in (".jsonl", ".ndjson"):
        raise ValueError(f"--output must be a .jsonl file (results are JSON lines), got {args.output}")
    parent = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"output directory does not exist: {parent}")
    if os.path.exists(args.output) and os.path.realpath(args.output) == os.path.realpath(args.input):
        raise ValueError("--output is the same file as --input; choose another --output")
    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be >= 1, got {args.chunk_size}")
    if args.concurrency is not None and args.concurrency < 1:
        raise ValueError(f"--concurrency must be >= 1, got {args.concurrency}")


def _open_rows(args: argparse.Namespace, required: tuple[str, ...], extra_optional: tuple[str, ...] = ()):
    """Header check first (fails fast, naming the missing column and the flag that picks another)."""
    from halluguard.io import MissingColumnError, column_mapping, input_columns, read_rows

    columns = {"source": args.source_col, "summary": getattr(args, "summary_col", None), "id": args.id_col,
               "label": getattr(args, "label_col", None), "reference": getattr(args, "reference_col", None)}
    optional = ("id", "label", "reference") + extra_optional
    if "gold_spans" in extra_optional:
        columns["gold_spans"] = getattr(args, "gold_spans_col", None)  # else a column named gold_spans, if any
    try:
        mapping = column_mapping(args.input, fmt=args.format, columns=columns, required=required, optional=optional)
    except MissingColumnError as e:
        raise ValueError(f"{e} (pick the column with --{e.role.replace('_', '-')}-col)") from None
    present = input_columns(args.input, args.format)
    if mapping.get("label") == "label" and not getattr(args, "label_col", None) and {"_row", "score", "sentences"} <= set(present):
        # The input is a halluguard result file: its "label" is a prediction, not a gold label.
        mapping["label"] = None
        print(f"halluguard: {args.input} looks like halluguard output; its 'label' column is a prediction and is "
              f"not used as gold (name a gold column with --label-col)", file=sys.stderr)
    rows = read_rows(args.input, fmt=args.format, columns={k: v for k, v in mapping.items() if v}, required=required,
                     optional=tuple(r for r in optional if mapping.get(r)))
    first = next(rows, None)
    if first is None:
        raise ValueError(f"{args.input} has no rows")
    return itertools.chain([first], rows), mapping, present


# ----------------------------------------------------------------------------------- commands


def _error_fields_verify() -> dict[str, Any]:
    return {"score": None, "label": "unknown", "spans": [], "sentences": []}


def run_verify(args: argparse.Namespace) -> int:
    _check_paths(args)
    rows, mapping, present = _open_rows(args, ("source", "summary"))
    kw = _backend_kwargs(args, "", "")
    concurrency = args.concurrency or (REMOTE_CONCURRENCY if _is_remote(args.backend, kw) else 1)
    job = _Job("verify", lambda: [_VerifyStep(build_verifier(args.backend, kw))], ("source", "summary"),
               VERIFY_FIELDS, _error_fields_verify(), concurrency)
    stats = _run(args, job, rows, mapping, present)
    return _exit_code(stats)


def run_summarize(args: argparse.Namespace) -> int:
    _check_paths(args)
    rows, mapping, present = _open_rows(args, ("source",))
    gkw = _summarizer_kwargs(args, "", "", args.backend)
    vkw = _backend_kwargs(args, "verify_", "verify-") if args.verify_backend else {}
    reserved = ("_row", "error") + SUMMARY_FIELDS
    err: dict[str, Any] = {"summary": None}
    if args.verify_backend:
        reserved = tuple(dict.fromkeys(reserved + VERIFY_FIELDS))
        err.update(_error_fields_verify())
    remote = _is_remote(args.backend, gkw) or _is_remote(args.verify_backend, vkw)

    def build() -> list[_Step]:
        steps: list[_Step] = [_SummarizeStep(build_summarizer(args.backend, gkw))]
        if args.verify_backend:
            steps.append(_VerifyStep(build_verifier(args.verify_backend, vkw)))
        return steps

    job = _Job("summarize", build, ("source",), reserved, err, args.concurrency or (REMOTE_CONCURRENCY if remote else 1))
    stats = _run(args, job, rows, mapping, present)
    return _exit_code(stats)


def run_evaluate(args: argparse.Namespace) -> int:
    from halluguard.io import parse_label

    _check_paths(args)
    generate = bool(args.gen_backend)
    required = ("source",) if generate else ("source", "summary")
    rows, mapping, present = _open_rows(args, required, ("gold_spans",))
    gkw = _summarizer_kwargs(args, "gen_", "gen-", args.gen_backend) if generate else {}
    vkw = _backend_kwargs(args, "", "")
    remote = _is_remote(args.gen_backend, gkw) or _is_remote(args.backend, vkw)

    def build() -> list[_Step]:
        steps: list[_Step] = [_SummarizeStep(build_summarizer(args.gen_backend, gkw))] if generate else []
        return steps + [_VerifyStep(build_verifier(args.backend, vkw))]

    reserved = VERIFY_FIELDS + ("gold_label", "gold_spans") + (SUMMARY_FIELDS if generate else ())
    label_col = mapping.get("label")
    spans_col = mapping.get("gold_spans")

    def extra(row: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if label_col:
            y = parse_label(row.get("label"), args.label_one_means)
            out["gold_label"] = None if y is None else ("hallucinated" if y else "faithful")
        if spans_col:
            out["gold_spans"] = row.get("gold_spans")
        return out

    err = _error_fields_verify()
    if generate:
        err["summary"] = None
    job = _Job("evaluate", build, required, reserved, err,
               args.concurrency or (REMOTE_CONCURRENCY if remote else 1), extra)
    stats = _run(args, job, rows, mapping, present)

    ref_key = _out_key(mapping.get("reference"), reserved, present)
    summary_key = "summary" if generate else _out_key(mapping.get("summary"), reserved, present)
    report = compute_report(args.output, reference_key=ref_key, summary_key=summary_key or "summary",
                            n_boot=args.bootstrap)
    report["run"] = {"input": args.input, "output": args.output, "backend": args.backend,
                     "generate": args.gen_backend, "columns": mapping, **stats}
    report_path = args.report or (os.path.splitext(args.output)[0] + ".report.json")
    from halluguard.io import jsonable

    tmp = report_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(_rounded(jsonable(report)), f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, report_path)
    print(format_report(report))
    print(f"halluguard evaluate: report saved to {report_path}", file=sys.stderr)
    return _exit_code(stats)


# ----------------------------------------------------------------------------------- metrics report


def _rounded(value: Any, digits: int = 6) -> Any:
    """Floats rounded for report.json: 0.49155, not 0.49155000000000004 (bootstrap means and sums)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    return value


def _ci(fn: Callable[..., float], *arrays: Sequence[Any], n: int) -> dict[str, float | None]:
    from halluguard import metrics

    point, low, high = metrics.bootstrap_ci(fn, *arrays, n=n)
    f = lambda x: None if x != x else float(x)  # noqa: E731 - NaN -> null in JSON
    return {"value": f(point), "ci_low": f(low), "ci_high": f(high)}


def compute_report(output: str, *, reference_key: str | None = None, summary_key: str = "summary",
                   n_boot: int = 1000) -> dict[str, Any]:
    """Metrics over every row of a results file written by `verify`/`evaluate` (resumed rows included).

    Returns {"rows", "failed", "scored", "hallucination_rate", "score_distribution", and when the data
    allow: "reference" (ROUGE-1/2/Lsum, semantic similarity), "detection" (balanced accuracy, F1,
    ROC-AUC, ... against gold labels), "spans" (character-overlap P/R/F1 against gold spans)}; each
    headline value as {"value", "ci_low", "ci_high"} (bootstrap 95 %).
    """
    import math

    import numpy as np

    from halluguard import metrics
    from halluguard.io import iter_results

    keep = ("score", "label", "threshold", "gold_label", "gold_spans", "spans", summary_key, reference_key)
    n_rows = 0
    ok: list[dict[str, Any]] = []
    for r in iter_results(output):  # one record at a time: keep only what the metrics need
        n_rows += 1
        if not r.get("error"):
            ok.append({k: r.get(k) for k in keep if k})
    scored = [r for r in ok if isinstance(r.get("score"), int | float)]
    labels = [r.get("label") or "unknown" for r in ok]
    rep: dict[str, Any] = {"rows": n_rows, "failed": n_rows - len(ok), "scored": len(scored)}
    thresholds = sorted({float(r["threshold"]) for r in ok if isinstance(r.get("threshold"), int | float)})
    threshold = thresholds[0] if len(thresholds) == 1 else (float(np.median(thresholds)) if thresholds else 0.5)
    rep["threshold"] = threshold
    if len(thresholds) > 1:
        rep["warning"] = f"rows were scored with different thresholds {thresholds} (resumed with other flags?)"
    rep["hallucination_rate"] = _ci(metrics.hallucination_rate, labels, n=n_boot) if labels else None
    if scored:
        s = np.array([float(r["score"]) for r in scored])
        q = np.percentile(s, [10, 25, 50, 75, 90])
        hist, edges = np.histogram(s, bins=10, range=(0.0, 1.0))
        rep["score_distribution"] = {
            "mean": float(s.mean()), "std": float(s.std()), "min": float(s.min()), "p10": float(q[0]),
            "p25": float(q[1]), "median": float(q[2]), "p75": float(q[3]), "p90": float(q[4]), "max": float(s.max()),
            "histogram": {"edges": [round(float(e), 2) for e in edges], "counts": [int(c) for c in hist]},
        }
    if reference_key:
        pairs = [(r[summary_key], r[reference_key]) for r in ok
                 if isinstance(r.get(summary_key), str) and isinstance(r.get(reference_key), str)
                 and r[reference_key].strip() and r[summary_key].strip()]
        if pairs:
            preds, refs = [p for p, _ in pairs], [t for _, t in pairs]
            ro = metrics.rouge_per_example(preds, refs)
            sim = metrics.similarity_per_example(preds, refs)
            mean = lambda v: float(np.mean(v)) if len(v) else math.nan  # noqa: E731
            rep["reference"] = {"n": len(pairs), **{k: _ci(mean, v, n=n_boot) for k, v in ro.items()},
                                "semantic_similarity": _ci(mean, sim, n=n_boot)}
    gold = [(1 if r["gold_label"] == "hallucinated" else 0, r.get("score")) for r in ok
            if r.get("gold_label") in ("hallucinated", "faithful")]
    if gold:
        y = [g for g, _ in gold]
        sc = [float("nan") if s is None else float(s) for _, s in gold]
        cm = metrics.classification_metrics(y, sc, threshold)
        det = {k: v for k, v in cm.items() if k not in ("balanced_accuracy", "f1", "roc_auc")}
        det["balanced_accuracy"] = _ci(lambda a, b: metrics.balanced_accuracy(a, b, threshold), y, sc, n=n_boot)
        det["f1"] = _ci(lambda a, b: metrics.f1_hallucinated(a, b, threshold), y, sc, n=n_boot)
        det["roc_auc"] = _ci(metrics.roc_auc, y, sc, n=n_boot) if len(set(y)) == 2 else \
            {"value": None, "ci_low": None, "ci_high": None}
        det["unlabelled_rows"] = len(ok) - len(gold)
        rep["detection"] = det
    span_rows = [r for r in ok if isinstance(r.get("gold_spans"), list) and isinstance(r.get(summary_key), str)]
    if span_rows:
        pred = [[(s["start"], s["end"]) for s in r.get("spans") or [] if isinstance(s, dict)] for r in span_rows]
        gold_sp = [r["gold_spans"] for r in span_rows]
        try:
            counts = metrics.span_counts(pred, gold_sp, [r[summary_key] for r in span_rows])
            overlap, n_pred, n_gold = (int(x) for x in counts.sum(axis=0))
            rep["spans"] = {"n": len(span_rows),
                            "precision": overlap / n_pred if n_pred else (1.0 if not n_gold else 0.0),
                            "recall": overlap / n_gold if n_gold else (1.0 if not n_pred else 0.0),
                            "f1": _ci(metrics.span_f1_from_counts, counts, n=n_boot)}
        except ValueError as e:
            rep["spans"] = {"error": f"gold spans unreadable: {_one_line(e)}"}
    return rep


def format_report(rep: dict[str, Any]) -> str:
    """A small plain-text table of the headline numbers."""

    def cell(v: Any) -> tuple[str, str]:
        if isinstance(v, dict) and "value" in v:
            if v["value"] is None:
                return "n/a", ""
            ci = "" if v.get("ci_low") is None else f"[{v['ci_low']:.3f}, {v['ci_high']:.3f}]"
            return f"{v['value']:.3f}", ci
        if isinstance(v, float):
            return f"{v:.3f}", ""
        return str(v), ""

    rows: list[tuple[str, Any]] = [("rows", rep["rows"]), ("failed rows", rep["failed"]),
                                   ("threshold", rep.get("threshold")),
                                   ("hallucination rate", rep.get("hallucination_rate"))]
    if rep.get("score_distribution"):
        d = rep["score_distribution"]
        rows += [("score mean", d["mean"]), ("score median", d["median"])]
    if rep.get("reference"):
        r = rep["reference"]
        rows += [(f"ROUGE-1 (n={r['n']})", r.get("rouge1")), ("ROUGE-2", r.get("rouge2")),
                 ("ROUGE-Lsum", r.get("rougeLsum")), ("semantic similarity", r.get("semantic_similarity"))]
    if rep.get("detection"):
        d = rep["detection"]
        rows += [(f"balanced accuracy (n={d['n']})", d["balanced_accuracy"]), ("F1 hallucinated", d["f1"]),
                 ("ROC-AUC", d["roc_auc"])]
    if rep.get("spans") and "f1" in rep["spans"]:
        rows += [(f"span F1 (n={rep['spans']['n']})", rep["spans"]["f1"])]
    lines = [f"{'metric':<28} {'value':>8}  95% CI", "-" * 56]
    for name, v in rows:
        if v is None:
            continue
        val, ci = cell(v)
        lines.append(f"{name:<28} {val:>8}  {ci}")
    return "\n".join(lines)

