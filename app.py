"""halluguard web app: summarize, verify, compare and batch-evaluate with hallucination flags.

    python app.py                                   # offline default: extractive + lite, 127.0.0.1:7860
    python app.py --generator hf --model Qwen/Qwen2.5-7B-Instruct --adapters sft=runs/sft dpo=runs/dpo
    python app.py --verifier dpo-reward --verifier-model HuggingFaceTB/SmolLM3-3B --verifier-adapter runs/scorer
    python app.py --config app.yaml --auth user:pass --max-upload-mb 50

`demo` is built at import with the settings from HALLUGUARD_APP_ARGS (for `gradio app.py` reload mode,
tests, and hosts that run `python app.py` without flags, such as Hugging Face Spaces); flags given on
the command line come after them and win. Gradio's GRADIO_SERVER_NAME / GRADIO_SERVER_PORT set the
address unless --host / --port do. No model loads until an event needs one.
"""

from __future__ import annotations

import os
import shlex
import sys

from halluguard.app import AppConfig, build_demo, launch_kwargs

ENV_ARGS = shlex.split(os.environ.get("HALLUGUARD_APP_ARGS", ""))
config = AppConfig.from_args(ENV_ARGS)
demo = build_demo(config)


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = AppConfig.from_args(ENV_ARGS + (sys.argv[1:] if argv is None else argv))
    except (ValueError, FileNotFoundError) as e:  # a bad flag or config: one line, no traceback
        print(f"app.py: error: {e}", file=sys.stderr)
        return 2
    if cfg.host not in ("127.0.0.1", "localhost", "::1") and not cfg.auth:
        print(f"app.py: warning: listening on {cfg.host} without --auth; anyone who can reach it can use it",
              file=sys.stderr)
    app = demo if cfg == config else build_demo(cfg)
    app.launch(**launch_kwargs(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
