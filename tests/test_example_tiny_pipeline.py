"""examples/tiny_pipeline: each stage's YAML is parsed by that stage's own parser (unknown keys fail), each
stage reads what the one before it writes, and its data step runs. The chain itself is trained end to end
by tests/test_training.py through the real recipes; `bash examples/tiny_pipeline/run.sh` runs this one."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from halluguard.cli import main

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples" / "tiny_pipeline"
STAGES = {"sft": "halluguard.train.sft", "triplets": "halluguard.train.triplets", "dpo": "halluguard.train.preference",
          "scorer": "halluguard.train.scorer", "verdict": "halluguard.train.verdict"}


@pytest.fixture(scope="module")
def parsed() -> dict:
    pytest.importorskip("trl")
    out = {}
    for stage, module in STAGES.items():
        args = importlib.import_module(module).make_parser().parse_args_and_config(["--config", str(EX / f"{stage}.yaml")])
        out[stage] = {k: v for a in args for k, v in vars(a).items()}
    return out


def test_every_stage_config_parses_and_runs_on_a_cpu(parsed):
    for stage, cfg in parsed.items():
        assert cfg["quantization"] == "none", stage  # no bitsandbytes kernels needed
        assert cfg["model_name_or_path"] == "outputs/tiny_pipeline/model", stage
        assert str(cfg["output_dir"]).startswith("outputs/tiny_pipeline/"), stage  # .gitignore covers outputs/
        if "bf16" in cfg:
            assert cfg["bf16"] is False and cfg["max_steps"] <= 5, stage


def test_each_stage_reads_what_the_previous_one_writes(parsed):
    import yaml

    data = yaml.safe_load((EX / "data.yaml").read_text())
    train, held = f"{data['out_dir']}/sft_train.jsonl", f"{data['out_dir']}/heldout.jsonl"
    sft, trip, dpo, scorer, verdict = (parsed[s] for s in STAGES)
    assert sft["train_file"] == trip["input_file"] == train
    assert trip["adapter"] == dpo["sft_adapter"] == verdict["sft_adapter"] == sft["output_dir"]
    assert dpo["train_file"] == scorer["train_file"] == f"{trip['output_dir']}/train.jsonl"
    assert dpo["eval_file"] == scorer["calibration_file"] == verdict["preference_file"] == f"{trip['output_dir']}/val.jsonl"
    assert verdict["dpo_adapter"] == dpo["output_dir"] and verdict["eval_file"] == held
    assert set(verdict["train_files"]) == {train, f"{trip['output_dir']}/train.jsonl"}
    # run.sh runs them in this order, with these configs
    lines = [ln for ln in (EX / "run.sh").read_text().splitlines() if "--config" in ln]
    assert [ln.split("--config")[1].split()[0].rsplit("/", 1)[-1] for ln in lines] == [
        "data.yaml", "sft.yaml", "triplets.yaml", "dpo.yaml", "scorer.yaml", "verdict.yaml"]


def test_the_data_step_builds_disjoint_train_and_heldout(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the example's paths are relative to the repository root, as run.sh runs it
    assert main(["data", "sft", "--config", str(EX / "data.yaml"), "--out-dir", str(tmp_path)]) == 0
    assert "12 training rows" in capsys.readouterr().out
    train = [json.loads(x) for x in (tmp_path / "sft_train.jsonl").read_text().splitlines()]
    held = [json.loads(x) for x in (tmp_path / "heldout.jsonl").read_text().splitlines()]
    assert len(train) == 12 and len(held) == 4
    assert not {r["document"] for r in train} & {r["document"] for r in held}
    assert all(r["summary"].endswith(".") and "\n" not in r["summary"] for r in train + held)


def test_make_model_builds_a_loadable_tiny_model(tmp_path):
    pytest.importorskip("torch")
    import runpy

    build = runpy.run_path(str(EX / "make_model.py"))["build"]
    out = build(tmp_path / "model")
    from halluguard.loading import load_model

    model, tok = load_model(str(out), quantization="none", dtype="float32", device_map=None)
    assert model.num_parameters() < 5_000_000 and tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True).endswith("<|assistant|>")
