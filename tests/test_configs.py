"""Every YAML file in the repository is parsed, so configs cannot drift from the code.

- training/configs/<stage>_<model>_<variant>.yaml: parsed by that stage's TrlParser; unknown keys fail.
- training/accelerate/*.yaml: accelerate's own config class (unknown keys fail) and launch options.
- any other YAML: must load as YAML (a mapping or a list).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", "node_modules", ".venv", "venv", "__pycache__", ".pytest_cache", "runs", "build", "dist"}
STAGES = {  # config prefix -> module with make_parser()
    "sft": "halluguard.train.sft",
    "triplets": "halluguard.train.triplets",
    "dpo": "halluguard.train.preference",
    "scorer": "halluguard.train.scorer",
    "verdict": "halluguard.train.verdict",
    "ablate": "halluguard.train.ablate",
    "entail": "halluguard.train.entail",
}
# Stages whose config includes TRL's TrainingArguments: the recipes ask for bf16 (GPU); the test runs on CPU.
CPU_OVERRIDES = {"sft": ["--bf16", "false"], "dpo": ["--bf16", "false"], "scorer": ["--bf16", "false"]}
NAME = re.compile(r"^(?P<stage>[a-z]+)_(?P<model>[a-z0-9.]+)_(?P<variant>[a-z0-9_]+)\.ya?ml$")


def all_yaml() -> list[Path]:
    out = []
    for p in sorted(ROOT.rglob("*")):
        if p.suffix in (".yaml", ".yml") and p.is_file() and not (set(p.relative_to(ROOT).parts) & SKIP_DIRS):
            out.append(p)
    return out


def training_configs() -> list[Path]:
    return sorted((ROOT / "training" / "configs").glob("*.y*ml"))


def parse_stage_config(path: Path, extra: list[str] | None = None):
    m = NAME.match(path.name)
    if not m or m["stage"] not in STAGES:
        raise ValueError(f"{path.name}: name must be <stage>_<model>_<variant>.yaml with stage in {sorted(STAGES)}")
    parser = importlib.import_module(STAGES[m["stage"]]).make_parser()
    return m["stage"], parser.parse_args_and_config(["--config", str(path), *CPU_OVERRIDES.get(m["stage"], []),
                                                     *(extra or [])])


def test_the_glob_finds_the_training_configs():
    found = {p.relative_to(ROOT).as_posix() for p in all_yaml()}
    assert len(training_configs()) >= 7
    assert all(p.relative_to(ROOT).as_posix() in found for p in training_configs())
    assert {"training/accelerate/ddp.yaml", "training/accelerate/zero3.yaml", "training/accelerate/fsdp.yaml"} <= found


@pytest.mark.parametrize("path", all_yaml(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_yaml_parses(path: Path):
    rel = path.relative_to(ROOT).as_posix()
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, (dict, list)), f"{rel}: expected a mapping or a list"
    if rel.startswith("training/configs/"):
        _stage, parsed = parse_stage_config(path)
        assert all(parsed), rel
        assert path.read_text().lstrip().startswith("#"), f"{rel}: start with a comment saying what it is for"
    elif rel.startswith("training/accelerate/"):
        check_accelerate_config(path, data)


def check_accelerate_config(path: Path, data: dict) -> None:
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import launch_command_parser

    cfg = ClusterConfig.from_yaml_file(str(path))  # raises on unknown top-level keys
    assert cfg.distributed_type in ("MULTI_GPU", "DEEPSPEED", "FSDP")
    dests = {a.dest for a in launch_command_parser()._actions}
    for section in ("fsdp_config", "deepspeed_config"):
        for key in (data.get(section) or {}):
            flag = key if section != "fsdp_config" or key.startswith("fsdp") else f"fsdp_{key}"
            assert flag in dests, f"{path.name}: unknown {section} key {key!r}"


def test_stage_configs_carry_the_values_their_comments_promise():
    _, (sargs, scfg) = parse_stage_config(ROOT / "training/configs/sft_qwen7b_qlora.yaml")
    assert scfg.completion_only_loss is True and sargs.quantization == "nf4"
    _, (dargs, dcfg) = parse_stage_config(ROOT / "training/configs/dpo_qwen7b_qlora.yaml")
    assert dargs.sft_adapter == "runs/sft_qwen7b" and dcfg.beta == 0.1 and not dcfg.precompute_ref_log_probs
    _, (_, pcfg) = parse_stage_config(ROOT / "training/configs/dpo_qwen7b_precompute.yaml")
    assert pcfg.precompute_ref_log_probs is True
    _, (_, fcfg) = parse_stage_config(ROOT / "training/configs/dpo_qwen7b_fit.yaml")
    assert fcfg.memory_profile == "fit"  # H7's HalluguardDPOConfig is the stage-B config class
    _, (aargs,) = parse_stage_config(ROOT / "training/configs/ablate_qwen7b_grid.yaml")
    assert (ROOT / aargs.base_config).is_file()


def test_cli_overrides_win_over_the_yaml():
    _, (_, cfg) = parse_stage_config(ROOT / "training/configs/dpo_qwen7b_qlora.yaml", ["--beta", "0.3"])
    assert cfg.beta == 0.3


def test_unknown_key_fails(tmp_path: Path):
    bad = tmp_path / "dpo_qwen7b_typo.yaml"
    bad.write_text((ROOT / "training/configs/dpo_qwen7b_qlora.yaml").read_text() + "\nbetta: 0.2\n")
    with pytest.raises(ValueError, match="betta"):
        parse_stage_config(bad)
    bad_acc = tmp_path / "acc.yaml"
    bad_acc.write_text((ROOT / "training/accelerate/ddp.yaml").read_text() + "\nnum_gpus: 2\n")
    with pytest.raises(ValueError, match="num_gpus"):
        check_accelerate_config(bad_acc, yaml.safe_load(bad_acc.read_text()))


def test_badly_named_config_fails(tmp_path: Path):
    p = tmp_path / "train.yaml"
    p.write_text("beta: 0.1\n")
    with pytest.raises(ValueError, match="<stage>_<model>_<variant>"):
        parse_stage_config(p)


def test_every_stage_config_field_has_help():
    import dataclasses

    from halluguard.train import ablate, entail, preference, scorer, sft, triplets, verdict

    for cls in (sft.SFTArguments, triplets.TripletArguments, preference.DPOStageArguments, scorer.ScorerArguments,
                verdict.VerdictArguments, ablate.AblationArguments, entail.EntailConfig):
        missing = [f.name for f in dataclasses.fields(cls) if not f.metadata.get("help")]
        assert not missing, f"{cls.__name__}: fields without help: {missing}"
