"""App settings: one dataclass, loadable from YAML (`--config app.yaml`), overridden by CLI flags.

    cfg = AppConfig.from_args(["--verifier", "lite", "--max-upload-mb", "20"])
    cfg = AppConfig.from_args(["--config", "app.yaml", "--port", "7861"])

Unknown YAML keys fail loudly (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

GENERATORS = ("extractive", "hf", "openai")
VERIFIERS = ("lite", "entail", "nli", "span", "judge", "dpo-reward")


@dataclass
class AppConfig:
    """Everything `python app.py` can be told. Field comments are the flag help."""

    generator: str = "extractive"  # summarizer backend: extractive (offline default) | hf | openai
    model: str = ""  # hf: hub id or path of the causal LM; openai: the served model name
    quantization: str = "nf4"  # hf generator: nf4 | int8 | none
    allow_fallback: bool = False  # hf: load unquantized when 4-bit is unavailable (never silently)
    adapters: dict[str, str] = field(default_factory=dict)  # name -> LoRA path, all on one base
    base_url: str = ""  # openai: the server's /v1 URL (vLLM, llama.cpp, Ollama)
    verifier: str = "lite"  # lite (offline default) | nli | span | judge | dpo-reward
    verifier_model: str = ""  # nli/span/judge/dpo-reward: the model id or path
    verifier_preset: str = ""  # span/nli: a published detector, e.g. lettucedetect-base (docs/verifiers.md)
    verifier_trust_remote_code: bool = False  # run the verifier repository's own code (HHEM-2.1-open)
    verifier_adapter: str = ""  # dpo-reward: the DPO scorer adapter
    threshold: float | None = None  # override the verifier's own decision threshold
    host: str = "127.0.0.1"  # 0.0.0.0 exposes the app to the network: set --auth then
    port: int = 7860
    share: bool = False  # a public gradio.live link; off unless asked
    auth: str = ""  # "user:pass" (or env HALLUGUARD_AUTH); empty = no login
    max_upload_mb: float = 20.0  # uploads above this are refused by the server and by the handlers
    max_rows: int = 5000  # batch tab: refuse larger files (the CLI handles big runs)
    max_doc_chars: int = 600_000  # one pasted/uploaded document or summary (~100k words); longer is refused
    output_dir: str = ""  # where uploads are copied and batch results written; default under the temp dir
    model_concurrency: int = 1  # events that run a model at once (one GPU queue, shared concurrency_id)
    batch_concurrency: int = 1  # batch jobs running at once; rows interleave with interactive events

    def __post_init__(self) -> None:
        if self.generator not in GENERATORS:
            raise ValueError(f"unknown generator {self.generator!r}; choose one of: {', '.join(GENERATORS)}")
        key = self.verifier.strip().lower().replace("_", "-")
        if key not in VERIFIERS:
            raise ValueError(f"unknown verifier {self.verifier!r}; choose one of: {', '.join(VERIFIERS)}")
        self.verifier = key
        if self.verifier_preset:
            from halluguard.verify.presets import get_preset

            get_preset(self.verifier_preset, self.verifier)  # wrong name or backend: fail at start, not on use
        if self.max_upload_mb <= 0:
            raise ValueError(f"max_upload_mb must be > 0, got {self.max_upload_mb}")
        if self.auth and ":" not in self.auth:
            raise ValueError("auth must look like user:password")
        if self.generator == "hf" and not self.model:
            raise ValueError("--generator hf needs --model (a hub id or a local path)")
        if self.adapters and self.generator != "hf":
            raise ValueError("--adapters needs --generator hf (adapters sit on one loaded base model)")
        if not self.output_dir:
            self.output_dir = str(Path(tempfile.gettempdir()) / "halluguard-app")

    # ------------------------------------------------------------------ derived

    @property
    def auth_pair(self) -> tuple[str, str] | None:
        """(user, password) for `launch(auth=...)`, or None when no login is required."""
        if not self.auth:
            return None
        user, _, password = self.auth.partition(":")
        if not user or not password:
            raise ValueError("auth must look like user:password (both non-empty)")
        return user, password

    @property
    def max_file_size(self) -> int:
        """Upload limit in bytes, for `launch(max_file_size=...)` and the handlers' own check."""
        return int(self.max_upload_mb * 1024 * 1024)

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> AppConfig:
        known = {f.name for f in fields(cls)}
        norm = {k.replace("-", "_"): v for k, v in (data or {}).items()}
        unknown = sorted(set(norm) - known)
        if unknown:
            raise ValueError(f"unknown app config key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**norm)

    @classmethod
    def from_yaml(cls, path: str | Path) -> AppConfig:
        import yaml

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"app config not found: {p}")
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{p}: expected a mapping of settings at the top level")
        return cls.from_mapping(data)

    @classmethod
    def from_args(cls, argv: list[str] | None = None, env: dict[str, str] | None = None) -> AppConfig:
        """Parse `python app.py` flags: YAML from --config, then Gradio's GRADIO_SERVER_NAME /
        GRADIO_SERVER_PORT (set by Hugging Face Spaces and container images), then flags; env for auth."""
        env = os.environ if env is None else env
        args = build_parser().parse_args(argv)
        data: dict[str, Any] = {}
        if args.config:
            data = {f.name: getattr(cls.from_yaml(args.config), f.name) for f in fields(cls)}
        data.update(server_env(env))
        for f in fields(cls):
            value = getattr(args, f.name, None)
            if value is not None:
                data[f.name] = value
        if "adapters" in data and isinstance(data["adapters"], list):
            data["adapters"] = parse_adapters(data["adapters"])
        if not data.get("auth") and env.get("HALLUGUARD_AUTH"):
            data["auth"] = env["HALLUGUARD_AUTH"]
        return cls.from_mapping(data)


def server_env(env: dict[str, str]) -> dict[str, Any]:
    """host / port from Gradio's own environment variables, where set (empty values are ignored)."""
    out: dict[str, Any] = {}
    if env.get("GRADIO_SERVER_NAME", "").strip():
        out["host"] = env["GRADIO_SERVER_NAME"].strip()
    port = env.get("GRADIO_SERVER_PORT", "").strip()
    if port:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"GRADIO_SERVER_PORT must be a port number (1-65535), got {port!r}")
        out["port"] = int(port)
    return out


def parse_adapters(items: list[str]) -> dict[str, str]:
    """["sft=runs/sft", "dpo=runs/dpo"] -> {"sft": "runs/sft", "dpo": "runs/dpo"}."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"adapter {item!r}: expected NAME=PATH, e.g. dpo=runs/dpo")
        out[name.strip()] = path.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python app.py",
        description="halluguard web app: summarize, verify, compare and batch-evaluate with hallucination flags.",
    )
    p.add_argument("--config", help="YAML file with any of the settings below (flags override it)")
    p.add_argument("--generator", choices=GENERATORS, default=None, help="summarizer backend (default extractive, offline)")
    p.add_argument("--model", default=None, help="generator model: hub id / local path (hf) or served name (openai)")
    p.add_argument("--quantization", choices=("nf4", "int8", "none"), default=None, help="hf generator quantization (default nf4)")
    p.add_argument("--allow-fallback", action="store_true", default=None, help="hf: load unquantized when 4-bit is unavailable")
    p.add_argument("--adapters", nargs="+", metavar="NAME=PATH", default=None, help="LoRA adapters on one base, e.g. sft=runs/sft dpo=runs/dpo")
    p.add_argument("--base-url", default=None, help="openai: server URL, e.g. http://localhost:8000/v1")
    p.add_argument("--verifier", choices=VERIFIERS, default=None, help="verifier backend (default lite, offline)")
    p.add_argument("--verifier-model", default=None, help="nli/span/judge/dpo-reward: model id or path")
    p.add_argument("--verifier-preset", default=None, metavar="NAME",
                   help="span: lettucedetect-base | lettucedetect-large; nli: hhem-2.1-open | minicheck-roberta-large "
                        "| minicheck-deberta-v3-large (model, threshold, input format; docs/verifiers.md)")
    p.add_argument("--verifier-trust-remote-code", action="store_true", default=None,
                   help="let the verifier's repository run its own code (HHEM-2.1-open needs it); off by default")
    p.add_argument("--verifier-adapter", default=None, help="dpo-reward: the DPO scorer adapter path")
    p.add_argument("--threshold", type=float, default=None, help="override the verifier's decision threshold")
    p.add_argument("--host", default=None, help="bind address (default $GRADIO_SERVER_NAME or 127.0.0.1; 0.0.0.0 exposes it: set --auth)")
    p.add_argument("--port", type=int, default=None, help="port (default $GRADIO_SERVER_PORT or 7860)")
    p.add_argument("--share", action="store_true", default=None, help="create a public gradio.live link (off by default)")
    p.add_argument("--auth", default=None, help="require login user:pass (or set HALLUGUARD_AUTH)")
    p.add_argument("--max-upload-mb", type=float, default=None, help="largest accepted upload in MB (default 20)")
    p.add_argument("--max-rows", type=int, default=None, help="largest batch file in rows (default 5000)")
    p.add_argument("--max-doc-chars", type=int, default=None, help="longest document or summary in characters (default 600000)")
    p.add_argument("--output-dir", default=None, help="uploads and batch results go here (default: <tmp>/halluguard-app)")
    p.add_argument("--model-concurrency", type=int, default=None, help="model events running at once (default 1: one GPU queue)")
    p.add_argument("--batch-concurrency", type=int, default=None, help="batch jobs running at once (default 1)")
    return p
