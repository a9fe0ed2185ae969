"""The app's Results tab: load a verdict.json (training/verdict.py) or an ablation results.json
(training/ablate.py) and show its table and figures, drawn by halluguard.plots.

    view = load_results("runs/verdict/verdict.json", cfg.output_dir)
    view.markdown, view.figures          # markdown table; PNG paths under output_dir/results/
    view.files, view.figures_html()      # PNG + SVG paths to download; the PNGs as inline <img> for gr.HTML
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_BYTES = 20 * 1024 * 1024  # a verdict or ablation JSON is a few KB; anything near this is the wrong file


@dataclass
class ResultsView:
    kind: str  # "verdict" or "ablation"
    markdown: str
    files: list[str] = field(default_factory=list)  # PNG and SVG of every figure

    @property
    def figures(self) -> list[str]:
        return [f for f in self.files if f.endswith(".png")]

    def figures_html(self) -> str:
        """The PNGs inline (data URLs): shown whole at the page's width, nothing for the browser to fetch."""
        imgs = []
        for f in self.figures:
            data = base64.b64encode(Path(f).read_bytes()).decode()
            imgs.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(Path(f).stem)}" '
                        'style="max-width:100%;height:auto;display:block;margin:0 0 1rem">')
        return "".join(imgs)


def load_results(path: str | Path, output_dir: str | Path) -> ResultsView:
    """Read a results JSON, draw its figures into output_dir/results/<name>-<hash>/ and return them."""
    data = _read_json(Path(path))
    digest = hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:10]
    out = Path(output_dir) / "results" / f"{Path(path).stem}-{digest}"
    if isinstance(data, dict) and "verdict" in data and "hallucination_rate" in data:
        return _verdict_view(data, out)
    rows = data.get("rows") if isinstance(data, dict) and data.get("kind") == "ablation" else data
    if isinstance(rows, list) and rows and all(isinstance(r, dict) and "factor" in r for r in rows):
        return _ablation_view(rows, out)
    raise ValueError(f"{Path(path).name} is neither a verdict.json (training/verdict.py) nor an ablation "
                     "results.json (training/ablate.py)")


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.stat().st_size > MAX_BYTES:
        raise ValueError(f"{path.name} is over {MAX_BYTES // 2**20} MB: not a results file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path.name} is not a JSON file: {e}") from None


def _verdict_view(report: dict[str, Any], out: Path) -> ResultsView:
    from halluguard import plots
    from halluguard.train.verdict import to_markdown

    try:
        md = to_markdown(report)
        figures = plots.save_figure(plots.verdict_figure(report), out / "verdict")
    except (KeyError, TypeError, IndexError) as e:
        raise ValueError(f"this verdict.json lacks a field the figure needs ({e!r}); rerun training/verdict.py") from None
    return ResultsView("verdict", md, [str(p) for p in figures])


def _ablation_view(rows: list[dict[str, Any]], out: Path) -> ResultsView:
    from halluguard.train.ablate import plot_results, results_markdown

    figures = plot_results(rows, out)
    md = results_markdown(rows)
    if not figures:
        md += "\nNo factor has two measured values yet: no figure to draw."
    return ResultsView("ablation", md, [str(p) for p in figures])
