"""The README as a newcomer reads it: every `halluguard` command it shows parses with today's CLI, files it
writes land in git-ignored folders, a command that needs a downloaded set comes after the download, and
the paths it names exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from halluguard.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def bash_commands(text: str) -> list[str]:
    """Commands in ```bash blocks, continuation lines joined, comments and blank lines dropped."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
            if line:
                out.append(line)
    return out


COMMANDS = bash_commands(README)
HALLUGUARD = [c for c in COMMANDS if c.startswith("halluguard ")]


def test_the_readme_has_commands():
    assert len(HALLUGUARD) >= 8 and any(c.startswith("python training/") for c in COMMANDS)


@pytest.mark.parametrize("command", HALLUGUARD)
def test_every_halluguard_command_parses(command):
    argv = shlex.split(command)[1:]
    args = build_parser().parse_args(argv)  # argparse exits (SystemExit) on an unknown flag or action
    assert getattr(args, "func", None), command


def _ignored(path: str) -> bool:
    patterns = [ln.strip() for ln in (ROOT / ".gitignore").read_text().splitlines() if ln.strip()]
    first = path.split("/", 1)[0]
    return any(p.strip("/") == first and p.endswith("/") for p in patterns)


@pytest.mark.parametrize("command", [c for c in HALLUGUARD if re.search(r"--(output|report|out-dir)\b", c)
                                     or " data sft " in c])
def test_outputs_go_to_git_ignored_folders(command):
    argv = shlex.split(command)
    outs = [argv[i + 1] for i, a in enumerate(argv) if a in ("--output", "--report", "--out-dir")]
    if " data sft " in command and "--out-dir" not in argv:
        outs.append("data/sft_train.jsonl")  # its default
    if argv[1] == "bench" and "--output" not in argv:
        outs.append("runs/bench")
    for out in outs:
        assert "/" in out and _ignored(out), f"{command}: {out} is not under a git-ignored folder"


def test_training_outputs_are_git_ignored():
    import yaml

    for cfg in sorted((ROOT / "training" / "configs").glob("*.yaml")):
        out = yaml.safe_load(cfg.read_text()).get("output_dir")
        if out:
            assert _ignored(out), f"{cfg.name}: output_dir {out} is not git-ignored"


def test_public_sets_are_downloaded_before_they_are_used():
    from halluguard.datasets import SETS, parse_set_name

    downloaded: set[str] = set()
    for c in HALLUGUARD:
        argv = shlex.split(c)
        if argv[1:3] == ["data", "download"]:
            downloaded.add(argv[3])
        if "--set" in argv:
            name, _ = parse_set_name(argv[argv.index("--set") + 1])
            if name in SETS and "--model" not in argv:  # model lines say "weights you downloaded" themselves
                assert SETS[name].download_key in downloaded, f"{c}: run `halluguard data download` first"


def test_paths_the_readme_names_exist():
    for rel in sorted(set(re.findall(r"(?<![\w/])((?:examples|eval_sets|training|docs|benchmarks)/[\w./-]+\.\w+)",
                                     README))):
        assert (ROOT / rel).exists(), rel
    for c in COMMANDS:
        for tok in shlex.split(c):
            if tok.startswith(("examples/", "eval_sets/", "training/configs/")):
                assert (ROOT / tok).exists(), f"{c}: {tok} does not exist"
