"""Training on a tiny in-process model, a few steps per stage, through the real recipes (the YAML files in
training/configs, shrunk by command-line overrides, as a user would):
SFT -> triplets -> DPO (from the SFT adapter) -> 3B-style scorer -> `halluguard verify --backend dpo-reward`,
plus resume after a kill, OOM reporting, ablations, and the triplet rules (perturbations, no leakage).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from halluguard.train import common, preference, scorer, sft, triplets

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "training" / "configs"
NAMES = ["Alice Moreau", "Bruno Diaz", "Chen Wei", "Dana Okafor", "Erik Lund", "Fatima Noor"]
CITIES = ["Lyon", "Oslo", "Lima", "Porto"]

# What every tiny training run changes in the GPU recipes: no 4-bit, fp32, no paged/8-bit optimizer,
# no checkpointing, a high rate so 2 steps visibly move the LoRA weights.
SHORT = ["--instruction", "Summarize."]
CPU_TRAIN = ["--quantization", "none", "--model_dtype", "float32", "--bf16", "false", "--optim", "adamw_torch",
             "--gradient_checkpointing", "false", "--gradient_accumulation_steps", "1", "--warmup_steps", "0",
             "--learning_rate", "5e-3", "--logging_steps", "1", "--save_steps", "1", "--max_length", "256",
             "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "16", "--lora_r", "4",
             "--eval_strategy", "no", "--report_to", "none", "--dataloader_num_workers", "0"]


class OverlapVerifier:
    """A transparent stand-in verifier: P(hallucinated) = share of summary words absent from the source."""

    threshold = 0.5

    def score(self, sources, summaries):
        out = []
        for s, m in zip(sources, summaries):
            src, words = set(s.lower().split()), m.lower().split()
            out.append(sum(w not in src for w in words) / max(1, len(words)))
        return out


def write_docs(path: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            name, city, year, k = rng.choice(NAMES), rng.choice(CITIES), 1990 + i, rng.randint(10, 90)
            doc = f"{name} opened a bakery in {city} in {year}. It hired {k} workers. Sales rose in March."
            f.write(json.dumps({"id": f"doc{i}", "document": doc,
                                "summary": f"{name} opened a bakery in {city} in {year} that hired {k} workers."}) + "\n")
    return path


def lora_tensors(adapter_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(adapter_dir / "adapter_model.safetensors"))


# ---------------------------------------------------------------------------------------------------
# The chain, one stage per fixture (module scope: each stage runs once and feeds the next)
# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def work(tmp_path_factory):
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("chain")
    write_docs(root / "docs.jsonl", 8)
    return root


@pytest.fixture(scope="module")
def sft_run(work, tiny_llama_path):
    return sft.main(["--config", str(CONFIGS / "sft_qwen7b_qlora.yaml"), *CPU_TRAIN,
                     "--model_name_or_path", tiny_llama_path, "--train_file", str(work / "docs.jsonl"),
                     "--eval_fraction", "0", "--output_dir", str(work / "sft"), "--max_steps", "2", *SHORT])


@pytest.fixture(scope="module")
def triplet_run(work, sft_run, tiny_llama_path):
    (args,) = triplets.make_parser().parse_args_and_config([
        "--config", str(CONFIGS / "triplets_qwen7b_lite.yaml"), "--input_file", str(work / "docs.jsonl"),
        "--output_dir", str(work / "triplets"), "--model_name_or_path", tiny_llama_path, "--adapter", sft_run["output_dir"],
        "--quantization", "none", "--k", "2", "--max_new_tokens", "6", "--batch_size", "8", "--min_margin", "0",
        "--val_fraction", "0.25", *SHORT])
    # the recipe's own verifier (`lite`, offline) scores the samples, as for a user
    return triplets.run(args)


@pytest.fixture(scope="module")
def dpo_run(work, sft_run, triplet_run, tiny_llama_path):
    argv = ["--config", str(CONFIGS / "dpo_qwen7b_qlora.yaml"), *CPU_TRAIN, "--model_name_or_path", tiny_llama_path,
            "--sft_adapter", sft_run["output_dir"], "--train_file", str(work / "triplets/train.jsonl"),
            "--eval_file", str(work / "triplets/val.jsonl"), "--output_dir", str(work / "dpo")]
    first = preference.main(argv + ["--max_steps", "2"])
    second = preference.main(argv + ["--max_steps", "3"])  # the same command with more steps: resumes
    return first, second


@pytest.fixture(scope="module")
def scorer_run(work, triplet_run, tiny_llama_path):
    return scorer.main(["--config", str(CONFIGS / "scorer_smollm3b_qlora.yaml"), *CPU_TRAIN,
                        "--model_name_or_path", tiny_llama_path, "--train_file", str(work / "triplets/train.jsonl"),
                        "--calibration_file", str(work / "triplets/val.jsonl"), "--output_dir", str(work / "scorer"),
                        "--max_steps", "1"])


def test_sft_trains_the_adapter_on_the_summary_only(sft_run, work):
    out = Path(sft_run["output_dir"])
    assert sft_run["global_step"] == 2 and sft_run["lora_changed"]
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    rows = common.read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]
    assert (out / "metrics.csv").is_file() and (out / "metrics.png").is_file() and (out / "metrics.svg").is_file()
    # loss on the summary only: the collator masks every prompt token
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from halluguard.train.common import ModelArguments, load_policy

    tok = AutoTokenizer.from_pretrained(out)
    ds = sft.to_prompt_completion(common.read_table(work / "docs.jsonl", ["document", "summary"]).select(range(1)),
                                  sft.SFTArguments())
    cfg = SFTConfig(output_dir=str(work / "probe"), completion_only_loss=True, max_length=256, bf16=False,
                    report_to="none")
    model, _, peft_cfg = load_policy(ModelArguments(model_name_or_path=str(json.loads(
        (out / "run_info.json").read_text())["base_model"]), quantization="none"), adapter=None)
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok, peft_config=peft_cfg)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    labels = batch["labels"][0]
    prompt_ids, completion_ids = common.chat_token_ids(tok, ds[0]["prompt"], ds[0]["completion"][0]["content"])
    assert (labels[:len(prompt_ids)] == -100).all()
    assert (labels[len(prompt_ids):len(prompt_ids) + len(completion_ids)] != -100).sum() >= len(completion_ids) - 1


def test_triplets_are_written_in_trl_format_and_split_by_document(triplet_run, work):
    train = common.read_jsonl(work / "triplets/train.jsonl")
    val = common.read_jsonl(work / "triplets/val.jsonl")
    assert train and val and triplet_run["pairs"] == len(train) + len(val)
    assert triplet_run["sampled_kept"] > 0 and triplet_run["perturbed"] > 0
    row = train[0]
    assert row["prompt"][0]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    assert {r["doc_key"] for r in train}.isdisjoint({r["doc_key"] for r in val})
    assert all(r["perturbation"] in triplets.PERTURBATIONS for r in train + val if r["origin"] == "perturbed")
    assert set(triplets.load_preferences(str(work / "triplets/train.jsonl")).column_names) == {"prompt", "chosen", "rejected"}


def test_dpo_starts_from_the_sft_adapter_with_it_as_reference_and_resumes(dpo_run, sft_run):
    first, second = dpo_run
    assert "ref" in first["reference"] and first["lora_changed"] and first["global_step"] == 2
    out = Path(first["output_dir"])
    sft_w, dpo_w = lora_tensors(Path(sft_run["output_dir"])), lora_tensors(out)
    assert sft_w.keys() == dpo_w.keys()
    assert any(not torch.equal(sft_w[k], dpo_w[k]) for k in sft_w)  # trained further, from the SFT weights
    assert "eval_rewards/accuracies" in first["eval"] and "eval_rewards/margins" in first["eval"]
    rows = common.read_jsonl(out / "metrics.jsonl")
    assert any("rewards/margins" in r for r in rows) and any("rewards/accuracies" in r for r in rows)
    # resumed run: continues from checkpoint-2 up to step 3, each step logged once
    assert second["resumed_from"].endswith("checkpoint-2") and second["global_step"] == 3
    steps = [r["step"] for r in common.read_jsonl(out / "metrics.jsonl") if "loss" in r]
    assert steps == [1, 2, 3]


def test_stage_b_on_a_4bit_base_keeps_one_model(work, sft_run, triplet_run, tiny_llama_path):
    """QLoRA stage B as on a GPU: NF4 base (bitsandbytes' CPU kernels), SFT adapter trained, 'ref' copy,
    reference log-probs precomputed once (the precompute recipe)."""
    info = preference.main([
        "--config", str(CONFIGS / "dpo_qwen7b_precompute.yaml"), *CPU_TRAIN, "--quantization", "nf4",
        "--max_train_samples", "4",
        "--gradient_checkpointing", "true", "--model_name_or_path", tiny_llama_path, "--sft_adapter",
        sft_run["output_dir"], "--train_file", str(work / "triplets/train.jsonl"), "--eval_file", "",
        "--output_dir", str(work / "dpo4"),
        "--max_steps", "1"])
    assert info["quantized_base"] and sorted(info["adapters"]) == ["default", "ref"]
    assert info["lora_changed"] and info["global_step"] == 1 and info["precompute_ref_log_probs"]


def test_scorer_writes_a_calibration_the_dpo_reward_backend_reads(scorer_run):
    from halluguard.verify._common import load_scorer_calibration

    out = Path(scorer_run["output_dir"])
    assert scorer_run["lora_changed"] and "adapter disabled" in scorer_run["reference"]
    cal = load_scorer_calibration(out)
    assert cal.beta == 0.1 and cal.scale > 0 and 0 <= cal.threshold <= 1
    assert cal.fitted_on.endswith("val.jsonl") and cal.notes["n"] == 2 * scorer_run["calibration_pairs"]
    assert len(common.read_jsonl(out / "calibration_rewards.jsonl")) == cal.notes["n"]


def test_verify_cli_with_the_trained_scorer(scorer_run, work, tiny_llama_path):
    pytest.importorskip("halluguard.verify.dpo_reward")
    pytest.importorskip("halluguard.commands.batch")
    from halluguard import cli

    src = json.loads((work / "docs.jsonl").read_text().splitlines()[0])["document"]
    pairs = work / "pairs.jsonl"
    pairs.write_text(json.dumps({"id": "a", "source": src, "summary": src.split(".")[0] + "."}) + "\n"
                     + json.dumps({"id": "b", "source": src, "summary": "The bakery closed in 1950."}) + "\n")
    out = work / "flagged.jsonl"
    rc = cli.main(["verify", "--backend", "dpo-reward", "--model", tiny_llama_path, "--adapter",
                   scorer_run["output_dir"], "--quantization", "none", "--input", str(pairs), "--output", str(out),
                   "--no-progress"])
    assert rc == 0
    rows = common.read_jsonl(out)
    assert [r["id"] for r in rows] == ["a", "b"]
    assert all(0 <= r["score"] <= 1 and r["label"] in ("hallucinated", "faithful", "unknown") for r in rows)
    assert all("spans" in r and "sentences" in r for r in rows)


def test_calibration_rewards_are_the_rewards_the_verifier_computes(scorer_run, work, tiny_llama_path):
    """The calibration is fitted on the same reward scale the `dpo-reward` backend maps to a probability."""
    pytest.importorskip("halluguard.verify.dpo_reward")
    from halluguard.verify import get_verifier

    v = get_verifier("dpo-reward", model=tiny_llama_path, adapter=scorer_run["output_dir"], quantization="none")
    row = common.read_jsonl(work / "triplets/val.jsonl")[0]
    fitted = common.read_jsonl(Path(scorer_run["output_dir"]) / "calibration_rewards.jsonl")[0]  # its chosen side
    reward = v.verify(row["document"], row["chosen"][0]["content"]).extra["reward"]
    assert abs(fitted["reward"]) > 1e-6
    assert reward == pytest.approx(fitted["reward"], rel=1e-3, abs=1e-6)


# ---------------------------------------------------------------------------------------------------
# Faults: a killed run resumes; out of memory is reported with advice
# ---------------------------------------------------------------------------------------------------
def _sft_argv(work: Path, tiny: str, out: str, steps: int) -> list[str]:
    return ["--config", str(CONFIGS / "sft_qwen7b_qlora.yaml"), *CPU_TRAIN, "--model_name_or_path", tiny,
            "--train_file", str(work / "docs.jsonl"), "--eval_fraction", "0", "--output_dir", str(work / out),
            "--max_steps", str(steps), "--save_steps", "2", *SHORT]


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint(work, tiny_llama_path):
    """SIGKILL a real `training/sft.py` process mid-run; the same command then resumes where it stopped."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = work / "sft_killed"
    argv = _sft_argv(work, tiny_llama_path, "sft_killed", 200)  # far more steps than it gets to run
    proc = subprocess.Popen([sys.executable, str(ROOT / "training/sft.py"), *argv], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (out / "checkpoint-2/trainer_state.json").exists():
            assert proc.poll() is None, "training exited before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    last = common.last_complete_checkpoint(out)
    done = int(last.rsplit("-", 1)[1])
    assert done >= 2 and not (out / "adapter_model.safetensors").exists()  # killed: never finished
    info = sft.main([*argv, "--max_steps", str(done + 2)])  # the same command (2 more steps: a bounded test)
    assert info["resumed_from"] == last and info["global_step"] == done + 2
    steps = [r["step"] for r in common.read_jsonl(out / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, done + 3))  # rows the killed run logged after its checkpoint are replaced


def test_an_incomplete_checkpoint_is_skipped(tmp_path):
    for step in (2, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}/trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-6").mkdir()  # killed while saving: no trainer_state.json yet
    assert common.resolve_checkpoint(str(tmp_path), None, True).endswith("checkpoint-4")


def test_out_of_memory_is_reported_with_what_to_change(work, tiny_llama_path, capsys, monkeypatch):
    pytest.importorskip("halluguard.planner")
    monkeypatch.setattr(common, "_gpu_gb", lambda: 6.0)  # as if on a 6 GiB GPU: the planner is consulted
    from transformers import TrainerCallback

    class Oom(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    args, cfg = sft.make_parser().parse_args_and_config(_sft_argv(work, tiny_llama_path, "sft_oom", 2))
    with pytest.raises(common.TrainingOOMError) as e:
        sft.run(args, cfg, callbacks=[Oom()])
    msg = str(e.value)
    assert "out of memory" in msg and "what to change" in msg and "  - planner: Estimated peak" in msg
    assert "gradient_checkpointing" in msg  # the generic levers follow the planner's estimate
    assert common.script_main(lambda argv: (_ for _ in ()).throw(common.TrainingOOMError(msg)), []) == 3
    assert "what to change" in capsys.readouterr().err


def test_resolve_checkpoint(tmp_path):
    assert common.resolve_checkpoint(str(tmp_path), None, True) is None
    for step in (5, 12):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}/trainer_state.json").write_text("{}")
    assert common.resolve_checkpoint(str(tmp_path), None, True).endswith("checkpoint-12")
    assert common.resolve_checkpoint(str(tmp_path), None, False) is None
    assert common.resolve_checkpoint(str(tmp_path), "last", False).endswith("checkpoint-12")
    with pytest.raises(FileNotFoundError):
        common.resolve_checkpoint(str(tmp_path), str(tmp_path / "nope"), True)


# ---------------------------------------------------------------------------------------------------
# Ablations
# ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ablation_table_and_plots(work, triplet_run, tiny_llama_path, tmp_path):
    from halluguard.train import ablate

    base = tmp_path / "dpo_tiny_cpu.yaml"
    base.write_text("\n".join([
        f"model_name_or_path: {tiny_llama_path}", "quantization: none", "model_dtype: float32",
        f"train_file: {work / 'triplets/train.jsonl'}", "max_train_samples: 4",
        f"output_dir: {tmp_path / 'unused'}", "beta: 0.1", "max_steps: 1", "bf16: false", "optim: adamw_torch",
        "learning_rate: 5.0e-3", "lora_r: 4", "max_length: 256", "per_device_train_batch_size: 2",
        "per_device_eval_batch_size: 4", "logging_steps: 1", "report_to: none", ""]))
    (args,) = ablate.make_parser().parse_args_and_config([
        "--base_config", str(base), "--output_dir", str(tmp_path / "abl"), "--betas", "0.1", "--quantizations", "int8",
        "--eval_file", str(work / "docs.jsonl"), "--max_documents", "2", "--max_new_tokens", "6",
        "--preference_file", str(work / "triplets/val.jsonl"), "--max_pairs", "2", *SHORT])
    rows = ablate.run(args, verifier=OverlapVerifier())
    # beta 0.1 is the baseline's own value: not run twice; 8-bit vs the baseline's unquantized base
    assert [r["variant"] for r in rows] == ["baseline", "quantization=int8"]
    assert [r["quantization"] for r in rows] == ["none", "int8"] and [r["beta"] for r in rows] == [0.1, 0.1]
    assert all(r["global_step"] == 1 and 0 <= r["hallucination_rate"] <= 100 for r in rows)
    assert all(0 <= r["preference_accuracy"] <= 1 and r["mean_margin"] is not None for r in rows)
    assert (tmp_path / "abl/results.csv").read_text().count("\n") == 3
    assert "| quantization=int8 |" in (tmp_path / "abl/results.md").read_text()
    assert (tmp_path / "abl/ablation_quantization.png").is_file() and (tmp_path / "abl/ablation_quantization.svg").is_file()
    assert json.loads((tmp_path / "abl/results.json").read_text())["rows"] == json.loads(json.dumps(rows, default=str))
    again = ablate.run(args, verifier=OverlapVerifier())  # finished variants are reused: not retrained or remeasured
    assert again == rows


def test_ablation_variants_one_at_a_time_and_grid():
    from halluguard.train.ablate import AblationArguments, variants

    base = {"beta": 0.1, "learning_rate": 5e-6, "quantization": "nf4", "train_size": None}
    a = AblationArguments(base_config="x", betas=[0.1, 0.3], quantizations=["int8"], train_sizes=[100])
    assert [v[0] for v in variants(a, base)] == ["baseline", "beta=0.3", "quantization=int8", "train_size=100"]
    a.mode = "grid"
    assert len(variants(a, base)) == 1 + 2 * 1 * 1  # baseline + (0.1|0.3) x int8 x 100
    with pytest.raises(ValueError, match="quantization"):
        AblationArguments(base_config="x", quantizations=["fp4"])


# ---------------------------------------------------------------------------------------------------
# Triplet rules
# ---------------------------------------------------------------------------------------------------
DOC = ("Maria Lopez became mayor of Porto in March 2019. The council approved 45 new buses, "
       "and the city hired 120 drivers on Monday.")
REF = "Maria Lopez became mayor of Porto in March 2019 and the council approved 45 new buses."


@pytest.mark.parametrize("kind", triplets.PERTURBATIONS)
def test_each_perturbation_changes_the_reference_and_says_how(kind):
    out = triplets.perturb_reference(REF, DOC, [kind], 1, seed=7, key="k")
    assert len(out) == 1
    k, text, edit = out[0]
    assert k == kind and text != REF and edit
    if kind == "swap_number":
        assert "45" not in text
    if kind == "swap_date":
        assert ("March" not in text) or ("2019" not in text)
    if kind == "swap_entity":
        assert "Maria Lopez" not in text or "Porto" not in text
    if kind == "negate":
        assert "rejected" in text or " not" in text
    if kind == "add_unsupported":
        assert text.startswith(REF) and len(text) > len(REF)


def test_perturbations_are_deterministic_given_the_seed():
    a = triplets.perturb_reference(REF, DOC, triplets.PERTURBATIONS, 3, seed=1, key="doc")
    b = triplets.perturb_reference(REF, DOC, triplets.PERTURBATIONS, 3, seed=1, key="doc")
    assert a == b and len(a) == 3 and len({t for _, t, _ in a}) == 3
    assert triplets.perturb_reference("no numbers here.", "x", ["swap_number"], 1, 1, "k") == []


def _pair(doc: str, chosen: str, rejected: str, doc_id: str) -> dict:
    return {"prompt": common.summary_messages(doc), "chosen": chosen, "rejected": rejected,
            "doc_key": triplets.doc_key(doc), "doc_id": doc_id}


def test_split_by_document_never_leaks_even_with_duplicate_documents_under_new_ids():
    pairs = []
    for i in range(20):
        doc = f"Document number {i} talks about topic {i}."
        pairs += [_pair(doc, "good", f"bad {j}", f"id{i}") for j in range(3)]
        pairs.append(_pair("  " + doc.upper() + " ", "good", "other", f"dup{i}"))  # same text, new ID
    train, val = triplets.split_by_document(pairs, 0.25, seed=3)
    assert len(train) + len(val) == len(pairs) and val and train
    assert {p["doc_key"] for p in train}.isdisjoint({p["doc_key"] for p in val})
    assert len({p["doc_key"] for p in val}) == 5
    assert triplets.split_by_document(pairs, 0.25, seed=3) == (train, val)  # seeded
    with pytest.raises(ValueError, match="leakage"):
        triplets.check_no_leakage(train, train[:1])


def test_dedupe_and_margin_rule():
    p = [_pair("d", "A summary.", "B summary.", "1"), _pair("d", "a  summary.", "b summary.", "1"),
         _pair("d", "same", "SAME", "1")]
    assert len(triplets.dedupe(p)) == 1
    assert triplets.sampled_pair(["x", "y", "z"], [0.1, 0.9, 0.5], 0.5) == {
        "chosen": "x", "rejected": "y", "chosen_score": 0.1, "rejected_score": 0.9}
    assert triplets.sampled_pair(["x", "y"], [0.4, 0.5], 0.2) is None  # margin too small
    assert triplets.sampled_pair(["x", "X "], [0.1, 0.9], 0.0) is None  # one distinct summary


def test_read_table_drops_bad_rows_and_names_missing_columns(tmp_path, caplog):
    p = tmp_path / "d.jsonl"
    p.write_text('{"document": "a doc", "summary": "s"}\n{"document": "", "summary": "s"}\n'
                 '{"document": "b doc", "summary": "t"}\n')
    ds = common.read_table(p, ["document", "summary"])
    assert list(ds["document"]) == ["a doc", "b doc"]
    assert "rows [2]" in caplog.text
    with pytest.raises(ValueError, match="no column"):
        common.read_table(p, ["source"])
    with pytest.raises(FileNotFoundError):
        common.read_table(tmp_path / "missing.jsonl", [])


def test_training_curves_are_written_as_png_and_svg(tmp_path):
    common.write_jsonl(tmp_path / "metrics.jsonl", [{"step": 1, "loss": 2.0, "learning_rate": 1e-4},
                                                    {"step": 2, "loss": 1.0, "eval_loss": 1.5, "learning_rate": 5e-5}])
    paths = common.write_metric_files(str(tmp_path))
    assert [p.name for p in paths] == ["metrics.csv", "metrics.png", "metrics.svg"]
    assert (tmp_path / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (tmp_path / "metrics.svg").read_text()
    assert "<svg" in svg and all(k in svg for k in ("loss", "eval_loss", "learning_rate"))


# ---------------------------------------------------------------------------------------------------
# Scorer data and calibration
# ---------------------------------------------------------------------------------------------------
def test_scorer_reads_labelled_rows_as_pairs_of_the_same_source(tmp_path, caplog):
    p = tmp_path / "labelled.jsonl"
    rows = [{"source": "S1", "summary": "good 1", "label": 0}, {"source": "S1", "summary": "bad 1", "label": 1},
            {"source": "S1", "summary": "bad 2", "label": "hallucinated"}, {"source": "S2", "summary": "x", "label": 1},
            {"source": "S3", "summary": "y", "label": "maybe"}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pairs = scorer.read_pairs(str(p), scorer.ScorerArguments())
    # S2 has no faithful summary to pair with; S3's label is unreadable (row 5, reported)
    assert pairs == [{"source": "S1", "chosen": "good 1", "rejected": "bad 1"},
                     {"source": "S1", "chosen": "good 1", "rejected": "bad 2"}]
    assert "[5]" in caplog.text
    train, held = scorer.split_by_source(pairs * 3 + [{"source": "S9", "chosen": "a", "rejected": "b"}], 0.5, 0)
    assert {p["source"] for p in train}.isdisjoint({p["source"] for p in held}) and held


def test_calibration_fit_recovers_a_known_logistic_relation():
    import numpy as np

    rng = np.random.default_rng(0)
    r = rng.normal(0, 2, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp((r - 0.5) / 0.8))).astype(int)  # bias 0.5, scale 0.8
    cal = scorer.fit_calibration(r.tolist(), y.tolist())
    assert cal["bias"] == pytest.approx(0.5, abs=0.1) and cal["scale"] == pytest.approx(0.8, rel=0.15)
    assert cal["auc"] > 0.8 and 0 < cal["threshold"] < 1 and "fallback" not in cal
    bad = scorer.fit_calibration([1.0, 2.0, 3.0, 0.0], [1, 1, 1, 0])  # higher reward = MORE hallucinated
    assert bad["fallback"] == 1.0 and bad["scale"] > 0
    with pytest.raises(ValueError, match="both"):
        scorer.fit_calibration([1.0, 2.0], [0, 0])


def test_a_document_too_long_to_sample_is_left_out_visibly(tmp_path, tiny_llama_path):
    p = tmp_path / "docs.jsonl"
    long_doc = " ".join(f"Item {i} cost {i} dollars in May." for i in range(300))  # >> the tiny model's 512 positions
    rows = [{"id": "long", "document": long_doc, "summary": "Item 3 cost 3 dollars in May."},
            {"id": "short", "document": DOC, "summary": REF}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (args,) = triplets.make_parser().parse_args_and_config([
        "--input_file", str(p), "--output_dir", str(tmp_path / "out"), "--model_name_or_path", tiny_llama_path,
        "--quantization", "none", "--k", "2", "--max_new_tokens", "4", "--min_margin", "0", "--val_fraction", "0"])
    m = triplets.run(args, verifier=OverlapVerifier())
    assert m["too_long_for_sampling"] == 1 and m["sampled_kept"] == 1  # only the short one was sampled
    rows = common.read_jsonl(tmp_path / "out/train.jsonl")
    assert {r["doc_id"] for r in rows if r["origin"] == "perturbed"} == {"long", "short"}  # references still used


def test_sft_eval_split_keeps_each_document_on_one_side():
    from datasets import Dataset

    ds = Dataset.from_list([{"document": f"Doc {i // 2}", "summary": f"s{i}"} for i in range(20)])  # 2 per doc
    train, ev = common.split_train_eval(ds, 0.3, seed=1, group_column="document")
    assert len(train) + len(ev) == 20 and len(ev) == 6
    assert set(train["document"]).isdisjoint(ev["document"])


# ---------------------------------------------------------------------------------------------------
# Stage A's long-document levers: the same loss and LoRA gradients as stock TRL's SFTTrainer
# ---------------------------------------------------------------------------------------------------
def test_sft_long_levers_match_stock_trl(tiny_llama_path, tokenizer, tmp_path):
    """Tiled MLP (5-token tiles: each 40-60-token row runs many tiles, the last one short) + the input
    embedding in CPU memory + gradient checkpointing, against stock TRL on the same batch (fp32, CPU)."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from halluguard.train import tiling
    from halluguard.train.tiling import _TiledForward

    torch.set_num_threads(1)
    docs = [("The council approved a new bridge over the river on Monday after a long debate.", "A bridge was approved."),
            ("Sales at the bakery rose in March because tourists returned to the old town.", "Bakery sales rose.")]
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": d}],
                             "completion": [{"role": "assistant", "content": s}]} for d, s in docs])
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM",
                      init_lora_weights=False)
    kw = dict(per_device_train_batch_size=2, max_length=128, report_to=[], bf16=False, use_cpu=True, seed=0,
              completion_only_loss=True, save_strategy="no", disable_tqdm=True, optim="adamw_torch")

    def loss_and_grads(trainer):
        if trainer.args.gradient_checkpointing:  # the Trainer turns it on in train(), not in __init__
            trainer.model.activation_checkpointing_enable(
                activation_checkpointing_kwargs=trainer.args.activation_checkpointing_kwargs)
        trainer.model.train()
        inputs = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
        loss = trainer.compute_loss(trainer.model, inputs)
        loss.backward()
        return float(loss.detach()), {n: p.grad.clone() for n, p in trainer.model.named_parameters()
                                      if p.requires_grad and "lora" in n}

    tok = tokenizer
    if not tok.chat_template:
        tok.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                             "{% if add_generation_prompt %}assistant: {% endif %}")
    stock = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_llama_path),
                       args=SFTConfig(output_dir=str(tmp_path / "a"), gradient_checkpointing=False, **kw),
                       train_dataset=ds, processing_class=tok, peft_config=lora)
    ref_loss, ref_grads = loss_and_grads(stock)
    long = sft.HalluguardSFTConfig(output_dir=str(tmp_path / "p"), memory_profile="long", **kw)
    assert long.gradient_checkpointing and long.activation_offloading and long.embeddings_on_cpu
    assert long.mlp_tile_tokens == 2048 and long.offload_stash_size == 2 and long.optim == "adamw_torch"  # an explicit value wins over the profile
    # The long profile's levers but activation offloading (TRL's needs an accelerator) and a tiny tile.
    cfg = sft.HalluguardSFTConfig(output_dir=str(tmp_path / "b"), gradient_checkpointing=True, embeddings_on_cpu=True,
                                  mlp_tile_tokens=5, **kw)
    ours = sft.HalluguardSFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_llama_path), args=cfg,
                                    train_dataset=ds, processing_class=tok, peft_config=lora)
    assert ours.embeddings_offloaded
    assert all(isinstance(layer.mlp.__dict__.get("forward"), _TiledForward)
               for layer in ours.model.get_base_model().model.layers)
    tiling.CALLS.clear()
    loss, grads = loss_and_grads(ours)
    assert tiling.CALLS["tiled_mlp_recompute_skipped"] > 0, tiling.CALLS  # the checkpoint recompute skipped the tiles
    assert abs(loss - ref_loss) <= 1e-5
    assert grads.keys() == ref_grads.keys() and len(grads) == 2 * 7 * 2
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    with pytest.raises(ValueError, match="memory_profile"):
        sft.HalluguardSFTConfig(output_dir=str(tmp_path / "c"), use_cpu=True, bf16=False, memory_profile="huge")
