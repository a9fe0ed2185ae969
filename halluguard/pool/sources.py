"""What each set of the pool is, where it lives and whether a shipped model may learn from it.

The licence column follows `train_pool/README.md`: `ship_ok=True` only where the set's licence allows
training a model the project ships; the "analysis only" sets (no licence file) are loaded for
measurement and never enter a training table unless `include_analysis=True` is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from .records import PoolPair


@dataclass(frozen=True)
class SourceInfo:
    name: str
    folder: str  # owner+repo folder under train_pool/
    licence: str
    ship_ok: bool
    family: str  # nli | factcheck | dialogue | summary
    synthetic: bool = False  # template-built sets the README says to keep a small share of


SOURCES: dict[str, SourceInfo] = {s.name: s for s in [
    # general NLI
    SourceInfo("esnli", "OanaMariaCamburu+e-SNLI", "MIT; SNLI CC BY-SA 4.0", True, "nli"),
    SourceInfo("cad_snli", "acmi-lab+counterfactually-augmented-data", "Apache-2.0", True, "nli"),
    SourceInfo("taxinli", "microsoft+TaxiNLI", "Computational Use of Data Agreement", True, "nli"),
    SourceInfo("rte", "amrnag+Specialized-Transformers", "no clear licence (analysis only)", False, "nli"),
    SourceInfo("conjnli", "swarnaHub+ConjNLI", "MIT", True, "nli"),
    SourceInfo("breaking_nli", "BIU-NLP+Breaking_NLI", "CC BY-SA 4.0", True, "nli", synthetic=True),
    SourceInfo("med", "verypluming+MED", "CC BY-SA 4.0", True, "nli", synthetic=True),
    SourceInfo("help", "verypluming+HELP", "CC BY-SA 4.0", True, "nli", synthetic=True),
    # claim and evidence
    SourceInfo("fever", "asaakyan+covidfact", "FEVER CC BY-SA 3.0", True, "factcheck"),
    SourceInfo("covidfact", "asaakyan+covidfact", "no licence file (analysis only)", False, "factcheck"),
    SourceInfo("climate_fever", "tdiggelm+climate-fever-dataset", "no licence file (analysis only)", False,
               "factcheck"),
    SourceInfo("healthver", "sarrouti+HealthVer", "no licence file (analysis only)", False, "factcheck"),
    SourceInfo("factcheck_gpt", "yuxiaw+Factcheck-GPT", "Apache-2.0", True, "factcheck"),
    SourceInfo("wice", "ryokamoi+wice", "annotations ODC-BY, text CC BY-SA", True, "factcheck"),
    # grounded responses
    SourceInfo("begin", "google+BEGIN-dataset", "CC BY 4.0, CDLA-Sharing", True, "dialogue"),
    SourceInfo("faithdial", "McGill-NLP+FaithDial", "MIT", True, "dialogue"),
    SourceInfo("q2", "orhonovich+q-squared", "MIT", True, "dialogue"),
    # summary faithfulness
    SourceInfo("fib", "r-three+fib", "CC BY 4.0", True, "summary"),
    SourceInfo("summacoz", "NKWBTB+SummaCoz", "Apache-2.0", True, "summary"),
    SourceInfo("polytope", "tingofurro+summac", "Apache-2.0", True, "summary"),
    SourceInfo("aggrefact_cliff_goyal", "Liyan06+AggreFact", "no licence file (analysis only)", False, "summary"),
    SourceInfo("qags", "W4ngatang+qags", "no licence file (analysis only)", False, "summary"),
    SourceInfo("falke", "W4ngatang+qags", "no licence file (analysis only)", False, "summary"),
    SourceInfo("entfa", "mcao516+EntFA", "no licence file (analysis only)", False, "summary"),
]}


def make_pair(source: str, premise: str, hypothesis: str, label: int, **kw) -> PoolPair:
    """A PoolPair with the licence fields of `source` filled in from SOURCES."""
    info = SOURCES[source]
    return PoolPair(premise=premise, hypothesis=hypothesis, label=label, source_set=source,
                    licence=info.licence, ship_ok=info.ship_ok, synthetic=info.synthetic, **kw)
