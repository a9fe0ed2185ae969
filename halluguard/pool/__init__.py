"""The labelled training pool (`shared/data/train_pool/`): one loader per set, one record type.

    from halluguard.pool import load_pool, ship_only, dedup, drop_eval_documents
    pairs = load_pool()                      # every set the README lists, analysis-only ones included
    pairs = ship_only(pairs)                 # licence filter: what a shipped model may learn from
    pairs, stats = dedup(pairs)
    pairs, dropped = drop_eval_documents(pairs)   # documents of FRANK / SummEdits / XSumFaith / FaithBench / own set

Label: 1 = not supported, 0 = supported; each loader module states its mapping in a table
(nli.py, factcheck.py, dialogue.py, summaries.py). Building the training table and the GPU export
lives in `halluguard.pool.build`; (window, sentence) premises in `halluguard.pool.windows`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from . import dialogue, factcheck, nli, summaries
from .filters import EvalDocIndex, cap_sources, dedup, drop_eval_documents, ship_only
from .records import PoolPair, doc_key, fold, pair_key
from .sources import SOURCES, SourceInfo

LOADERS: dict[str, Callable[[Path], list[PoolPair]]] = {
    "esnli": nli.load_esnli,
    "cad_snli": nli.load_cad_snli,
    "taxinli": nli.load_taxinli,
    "rte": nli.load_rte,
    "conjnli": nli.load_conjnli,
    "breaking_nli": nli.load_breaking_nli,
    "med": nli.load_med,
    "help": nli.load_help,
    "fever": factcheck.load_fever,
    "covidfact": factcheck.load_covidfact,
    "climate_fever": factcheck.load_climate_fever,
    "healthver": factcheck.load_healthver,
    "factcheck_gpt": factcheck.load_factcheck_gpt,
    "wice": factcheck.load_wice,
    "begin": dialogue.load_begin,
    "faithdial": dialogue.load_faithdial,
    "q2": dialogue.load_q2,
    "fib": summaries.load_fib,
    "summacoz": summaries.load_summacoz,
    "polytope": summaries.load_polytope,
    "aggrefact_cliff_goyal": summaries.load_aggrefact_cliff_goyal,
    "qags": summaries.load_qags,
    "falke": summaries.load_falke,
    "entfa": summaries.load_entfa,
}
if set(LOADERS) != set(SOURCES):  # every set needs both a loader and its licence row
    raise RuntimeError(f"pool sets without a loader or licence: {sorted(set(LOADERS) ^ set(SOURCES))}")


def find_pool_dir() -> Path:
    """`$HALLUGUARD_TRAIN_POOL`, else `train_pool/` in the first data folder that has one."""
    env = os.environ.get("HALLUGUARD_TRAIN_POOL")
    if env:
        return Path(env).expanduser()
    from ..datasets import find_data_dirs

    for root in find_data_dirs():
        if (root / "train_pool").is_dir():
            return root / "train_pool"
    raise FileNotFoundError("no train_pool/ under the data folders (shared/data, $HALLUGUARD_DATA); "
                            "set HALLUGUARD_TRAIN_POOL to its path")


def load_source(name: str, root: str | os.PathLike | None = None) -> list[PoolPair]:
    """All pairs of one set (see SOURCES for names)."""
    if name not in LOADERS:
        raise ValueError(f"unknown pool set {name!r}; known: {', '.join(LOADERS)}")
    base = Path(root) if root is not None else find_pool_dir()
    folder = base / SOURCES[name].folder
    if not folder.is_dir():
        raise FileNotFoundError(f"{name}: folder {folder} not found")
    return LOADERS[name](folder)


def load_pool(root: str | os.PathLike | None = None, sources: Iterable[str] | None = None,
              include_analysis: bool = True, skip_missing: bool = False) -> list[PoolPair]:
    """Pairs of the named sets (default: all). `include_analysis=False` leaves out the sets whose
    licence does not allow training a shipped model; `skip_missing` ignores absent folders."""
    names = list(sources) if sources is not None else list(LOADERS)
    out: list[PoolPair] = []
    for name in names:
        if name not in SOURCES:
            raise ValueError(f"unknown pool set {name!r}; known: {', '.join(SOURCES)}")
        if not include_analysis and not SOURCES[name].ship_ok:
            continue
        try:
            out += load_source(name, root)
        except FileNotFoundError:
            if not skip_missing:
                raise
    return out


__all__ = [
    "LOADERS", "SOURCES", "EvalDocIndex", "PoolPair", "SourceInfo", "cap_sources", "dedup", "doc_key",
    "drop_eval_documents", "find_pool_dir", "fold", "load_pool", "load_source", "pair_key", "ship_only",
]
