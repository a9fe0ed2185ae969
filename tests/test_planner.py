"""Memory planner (halluguard.planner): hand-computed cases, the measured H100 peaks, suggestions, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from halluguard import planner as P
from halluguard.cli import main

GIB = 2**30
RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "gpu_dpo_h100.jsonl"
LONG_RESULTS = RESULTS.with_name("gpu_long_h100.jsonl")


def test_llama3_8b_shape_by_hand():
    s = P.load_shape("llama3-8b")
    # q, o: 4096x4096; k, v: 4096x1024; gate, up, down: 4096x14336 -- times 32 layers
    linear = 32 * (2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336)
    assert s.linear_params == linear == 6_979_321_856
    assert s.total_params == linear + 2 * 128256 * 4096 == 8_029_995_008
    # LoRA r=16 on the 7 linears: r * (in + out) each
    assert s.lora_params(16) == 32 * 16 * (2 * 8192 + 2 * 5120 + 3 * 18432) == 41_943_040


def test_stage_b_parts_by_hand():
    s = P.load_shape("llama3-8b")
    stock = P.estimate_train_step(s, 2048, 1, P.StageBSettings()).parts
    assert stock["linear_weights"] == pytest.approx(6_979_321_856 * (0.5 + 1 / 64 + 4 / 16384) / GIB)
    assert stock["embed"] == stock["lm_head"] == pytest.approx(128256 * 4096 * 2 / GIB)
    assert stock["lora_params_grads"] == pytest.approx(41_943_040 * 2 * 2 / GIB)  # bf16 params + grads
    assert stock["optimizer"] == pytest.approx(41_943_040 * 4 / GIB)  # two bf16 Adam moments
    assert stock["checkpoints"] == pytest.approx(32 * (2 * 2048) * 4096 * 2 / GIB) == pytest.approx(1.0)

    fit = P.estimate_train_step(s, 2048, 1, P.StageBSettings.profile("fit")).parts
    assert fit["embed"] == 0.0  # embeddings on the CPU
    assert fit["optimizer"] == pytest.approx(41_943_040 * 2 / GIB)  # 8-bit moments
    # shared prompt: one row of 2048 + 512 tokens; offloading keeps a stash of 6.5 layer inputs
    assert fit["checkpoints"] == pytest.approx(P.CAL["offload_stash_layers"] * 2560 * 4096 * 2 / GIB)
    assert fit["attention_mask"] == pytest.approx(2560 * 2560 * P.CAL["mask_bytes"] / GIB)  # bool + bf16 copy


def test_tied_embeddings_cannot_leave_the_gpu():
    s = P.load_shape("qwen2.5-3b")
    assert s.tied
    a = P.estimate_train_step(s, 2048, 1, P.StageBSettings(embeddings_on_cpu=True)).parts
    assert a["embed_and_head"] == pytest.approx(151936 * 2048 * 2 / GIB)


def test_seed_two_models_counts_the_reference_and_full_logits():
    s = P.load_shape("llama3-8b")
    seed = P.estimate_train_step(s, 1024, 1, P.StageBSettings.profile("seed"))
    stock = P.estimate_train_step(s, 1024, 1, P.StageBSettings())
    ref = seed.parts["reference_model"]
    assert ref == pytest.approx(stock.parts["linear_weights"] + stock.parts["embed"] + stock.parts["lm_head"])
    assert seed.parts["embed"] == pytest.approx(2 * stock.parts["embed"])  # fp32 upcast
    assert seed.peak_gib > 2 * stock.peak_gib
    cached = P.estimate_train_step(s, 1024, 1, P.StageBSettings.profile("seed", cached_reference=True))
    assert "reference_model" not in cached.parts


def test_monotone_and_micro_batch_sizing():
    s = P.load_shape("llama3-8b")
    fast = P.StageBSettings.profile("fast")
    peaks = [P.estimate_train_step(s, q, 1, fast).peak_gib for q in (512, 1024, 2048, 4096)]
    assert peaks == sorted(peaks)
    k = P.max_pairs_per_step(s, 2048, 12.0, fast)
    assert k >= 2
    assert P.estimate_train_step(s, 2048, k, fast).peak_gib <= 12.0 - 0.5
    assert P.estimate_train_step(s, 2048, k + 1, fast).peak_gib > 12.0 - 0.5
    longest = P.max_seq_that_fits(s, 6.0, 1, P.StageBSettings.profile("fit"))
    assert longest and P.estimate_train_step(s, longest, 1, P.StageBSettings.profile("fit")).peak_gib <= 6.0


def _settings_of(row: dict) -> P.StageBSettings:
    if row["mode"] in ("stock_trl", "sft_stock"):
        return P.StageBSettings()
    if row["mode"] == "two_model":
        return P.StageBSettings.profile("seed")
    st = row["settings"]
    return P.StageBSettings(
        cached_reference=bool(st["precompute_ref_log_probs"]), gradient_checkpointing=bool(st["gradient_checkpointing"]),
        activation_offloading=bool(st["activation_offloading"]), embeddings_on_cpu=bool(st["embeddings_on_cpu"]),
        sequences_per_forward=st["sequences_per_forward"], share_prompt=bool(st["share_prompt"]),
        optimizer="adamw_8bit" if "8bit" in st["optim"] else "adamw",
        expandable_segments=bool(st["expandable_segments"]), logp_chunk_size=st["logp_chunk_size"],
        mlp_tile_tokens=st.get("mlp_tile_tokens"), segmented_attention=bool(st.get("segmented_attention")),
        offload_stash_size=st.get("offload_stash_size"))


def test_within_15_percent_of_the_h100_measurements():
    """Every valid peak measured on the H100 (benchmarks/results, docs/memory.md) vs the planner."""
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines()]
    assert len(rows) >= 40
    alias = {"llama3_8b": "llama3-8b", "qwen25_3b": "qwen2.5-3b", "qwen25_7b": "qwen2.5-7b"}
    assert any(r["arch"] == "qwen25_7b" for r in rows)  # held out of the calibration
    worst = 0.0
    for r in rows:
        est = P.estimate_train_step(P.load_shape(alias[r["arch"]]), r["seq"], int(r["pairs"]), _settings_of(r))
        err = abs(est.peak_gib - r["peak_reserved_gib"]) / r["peak_reserved_gib"]
        worst = max(worst, err)
        assert err <= 0.15, (r["arch"], r["mode"], r["seq"], r["pairs"], r["peak_reserved_gib"], est.peak_gib)
    assert worst > 0  # the comparison really ran


def test_load_shape_from_paths(tmp_path):
    cfg = json.loads((Path(P.__file__).parent / "resources" / "model_configs" / "qwen2.5-7b.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert P.load_shape(str(tmp_path)).hidden == 3584
    assert P.load_shape(str(tmp_path / "config.json")).layers == 28
    with pytest.raises(FileNotFoundError):
        P.load_shape(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="cache"):
        P.load_shape("nobody/not-a-cached-model")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        P.load_shape(str(bad))
    bad.write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="lacks"):
        P.load_shape(str(bad))


def test_suggest_for_oom():
    text = P.suggest_for_oom("llama3-8b", seq=2048, gpu_gb=6.0, stage="dpo")
    assert "memory_profile='fit'" in text and "GiB" in text
    hopeless = P.suggest_for_oom("llama3-8b", seq=4096, gpu_gb=4.0, stage="dpo")
    assert "smaller model" in hopeless
    sft = P.suggest_for_oom("llama3-8b", seq=2048, gpu_gb=7.0, stage="sft")
    assert "SFT" in sft


def test_plan_report_and_cli(capsys):
    report = P.plan("llama3-8b", gpu_gb=12, seq=2048)
    stages = {s["stage"]: s for s in report["stages"]}
    assert not stages["B: DPO, two 4-bit models (seed)"]["fits"]
    assert stages["B: DPO, halluguard fit"]["peak_gib"] < stages["B: DPO, stock TRL 1.16"]["peak_gib"]
    options = {o["option"]: o for o in report["options"]}
    assert options["embeddings on CPU"]["saves_gib"] > 0.9  # ~1 GiB table at 128k vocab
    assert options["8-bit base instead of 4-bit"]["saves_gib"] < 0  # computed honestly: 8-bit costs more
    assert "Recommendation" not in report  # the dict carries it under "recommendation"
    assert report["recommendation"]

    assert main(["plan", "--model", "llama3-8b", "--gpu-gb", "12", "--seq", "2048"]) == 0
    out = capsys.readouterr().out
    assert "B: DPO, halluguard fit" in out and "What to change" in out
    assert main(["plan", "--model", "qwen2.5-3b", "--gpu-gb", "3", "--seq", "2048", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tied_embeddings"] is True and data["seq"] == 2048
    assert main(["plan", "--model", "llama3-8b", "--gpu-gb", "0"]) == 2
    assert "gpu-gb" in capsys.readouterr().err
    assert main(["plan", "--model", "/no/such/config.json"]) == 2
    assert "no such file" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------
# The registry: every causal LM the docs name is known, under its alias and its hub id.
ROOT = Path(__file__).resolve().parents[1]
# Hub organisations whose ids in the docs are models a user may pass to `plan` / `--model`.
HUB_OWNERS = ("Qwen", "HuggingFaceTB", "meta-llama", "mistralai", "microsoft", "google", "lytang", "vectara")
# Named in the docs but not causal LMs the planner sizes: encoder / T5 classifiers for the `nli` backend
# (MiniCheck-RoBERTa/DeBERTa, DeBERTa-MNLI, HHEM-2.1-open) and HHEM's T5 tokenizer.
NOT_CAUSAL_LM = re.compile(r"(?i)roberta|deberta|bert-|minilm|flan-t5|hallucination_evaluation_model")


def _hub_ids_in_docs() -> dict[str, str]:
    files = [ROOT / "README.md", ROOT / "app.py", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "training" / "configs").glob("*.yaml")), *sorted((ROOT / "examples").rglob("*.md")),
             *sorted((ROOT / "examples").rglob("*.yaml"))]
    owners = "|".join(re.escape(o) for o in HUB_OWNERS)
    pattern = re.compile(rf"(?<![\w./-])((?:{owners})/[A-Za-z0-9][\w.-]*[\w])")
    found: dict[str, str] = {}
    for f in files:
        for m in pattern.finditer(f.read_text(encoding="utf-8")):
            found.setdefault(m.group(1), str(f.relative_to(ROOT)))
    return found


def test_every_model_the_docs_name_is_known_to_the_planner():
    from halluguard.loading import DEFAULT_GENERATOR, DEFAULT_VERIFIER_BASE

    named = _hub_ids_in_docs()
    assert "HuggingFaceTB/SmolLM3-3B" in named and "Qwen/Qwen2.5-7B-Instruct" in named  # the scan sees the docs
    unknown = []
    for hub_id, where in sorted({**named, DEFAULT_GENERATOR: "loading.py", DEFAULT_VERIFIER_BASE: "loading.py"}.items()):
        if NOT_CAUSAL_LM.search(hub_id):
            continue
        try:
            P.load_shape(hub_id)
        except (FileNotFoundError, ValueError) as e:
            unknown.append(f"{hub_id} ({where}): {e}")
    assert not unknown, "add a config JSON and aliases in halluguard/planner.py for:\n" + "\n".join(unknown)


def test_the_3b_scorer_base_is_one_choice():
    """The planner's default scorer is the loader's verifier base (SmolLM3-3B), with its real shape."""
    from halluguard.loading import DEFAULT_VERIFIER_BASE

    default = P.load_shape(P.DEFAULT_SCORER)
    assert default == P.load_shape(DEFAULT_VERIFIER_BASE) == P.load_shape(DEFAULT_VERIFIER_BASE.upper())
    assert (default.hidden, default.layers, default.heads, default.kv_heads, default.intermediate, default.vocab,
            default.tied) == (2048, 36, 16, 4, 11008, 128256, True)
    assert default.total_params == 36 * (2048 * 2048 * 2 + 2048 * 512 * 2 + 3 * 2048 * 11008) + 128256 * 2048
    # transformers counts 3,075,098,624 for this config on the meta device; the planner leaves out the norms
    assert default.total_params == pytest.approx(3_075_098_624, rel=1e-4)
    scorer_row = next(s for s in P.plan("llama3-8b")["stages"] if s["stage"].startswith("scorer"))
    assert "SmolLM3-3B" in scorer_row["stage"] and scorer_row["peak_gib"] > 0


def test_every_shipped_config_has_an_alias_and_a_hub_id():
    files = {p.name for p in (ROOT / "halluguard" / "resources" / "model_configs").glob("*.json")}
    assert files == set(P.ALIASES.values())
    for name in files:
        keys = [k for k, v in P.ALIASES.items() if v == name]
        assert any("/" in k for k in keys) and any("/" not in k for k in keys), name
        hub_id = json.loads((ROOT / "halluguard" / "resources" / "model_configs" / name).read_text())["_name_or_path"]
        assert hub_id.lower() in P.ALIASES, f"{name}: its own hub id {hub_id} is not an alias"


def test_cli_accepts_a_hub_id_and_names_the_aliases_when_unknown(capsys):
    assert main(["plan", "--model", "HuggingFaceTB/SmolLM3-3B", "--gpu-gb", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "HuggingFaceTB/SmolLM3-3B"
    assert main(["plan", "--model", "nobody/NoSuchModel-3B"]) == 2
    err = capsys.readouterr().err
    assert "smollm3-3b" in err and "config.json" in err


def test_within_15_percent_of_the_long_document_measurements():
    """Issue 12's run (Llama-3.1-8B, 8k-16k tokens, stage B and stage A). Rows of code that has changed since
    (`*_v1`: the long profile before its tiled MLP stopped going through the offloading hooks) are kept in the
    file for the record and skipped here, as is the SDPA kernel probe."""
    rows = [json.loads(line) for line in LONG_RESULTS.read_text().splitlines()]
    checked = 0
    for r in rows:
        if r["mode"] == "sdpa_probe" or r["mode"].endswith("_v1") or "error" in r:
            continue
        est = P.estimate_train_step(P.load_shape("llama3-8b"), r["seq"], int(r["pairs"]), _settings_of(r),
                                    preference=not r["mode"].startswith("sft_"))
        err = abs(est.peak_gib - r["peak_reserved_gib"]) / r["peak_reserved_gib"]
        assert err <= 0.15, (r["mode"], r["seq"], r["peak_reserved_gib"], round(est.peak_gib, 2))
        checked += 1
    assert checked >= 4


def test_long_profile_by_hand_and_recommended_past_fit():
    s = P.load_shape("llama3-8b")
    long = P.StageBSettings.profile("long")
    assert long.mlp_tile_tokens == 2048 and long.segmented_attention and long.offload_stash_size == 2
    fit_parts = P.estimate_train_step(s, 32768, 1, P.StageBSettings.profile("fit")).parts
    long_parts = P.estimate_train_step(s, 32768, 1, long).parts
    assert fit_parts["attention_mask"] == pytest.approx(40960**2 * P.CAL["mask_bytes"] / GIB)  # O(n^2)
    assert long_parts["attention_mask"] == 0.0
    # tiled: the intermediate-sized part is one 2048-token tile, not 40,960 tokens
    tiled_i = 2048 * P.CAL["work_i"] * s.intermediate * 2 / GIB
    h_part = 40960 * (P.CAL["work_h_tiled"] + P.CAL["segmented_h"]) * s.hidden * 2 / GIB
    assert long_parts["layer_working_set"] == pytest.approx(tiled_i + h_part + s.largest_linear() * 2 / GIB)
    assert long_parts["checkpoints"] == pytest.approx((2 + P.CAL["offload_stash_extra"]) * 40960 * 4096 * 2 / GIB)

    report = P.plan("llama3-8b", gpu_gb=16, seq=32768)
    stages = {x["stage"]: x for x in report["stages"]}
    assert not stages["B: DPO, halluguard fit"]["fits"] and stages["B: DPO, halluguard long"]["fits"]
    assert "long" in report["recommendation"]
    assert stages["A: SFT, halluguard long"]["peak_gib"] < stages["A: QLoRA SFT"]["peak_gib"]
    assert "long" not in P.plan("llama3-8b", gpu_gb=12, seq=2048)["recommendation"]  # fit/fast fit there
    assert "memory_profile='long'" in P.suggest_for_oom("llama3-8b", seq=32768, gpu_gb=16, stage="dpo")
    assert "memory_profile='long'" in P.suggest_for_oom("llama3-8b", seq=65536, gpu_gb=24, stage="sft")


# The table of issue 12 (H200, device run of an earlier session; its raw lines are not in this repository):
# (model, seq, profile, peak reserved GiB). The fit profile's 32k row was 21 % above the planner before the
# dense mask's bf16 copy was counted.
ISSUE_12_H200 = [("llama3-8b", 8192, "stock", 15.26), ("llama3-8b", 8192, "fit", 8.39),
                 ("qwen2.5-7b", 16384, "stock", 22.43), ("qwen2.5-7b", 16384, "fit", 12.94),
                 ("qwen2.5-7b", 32768, "fit", 24.30)]


@pytest.mark.parametrize("model,seq,profile,measured", ISSUE_12_H200)
def test_within_15_percent_of_issue_12s_h200_table(model, seq, profile, measured):
    est = P.estimate_train_step(P.load_shape(model), seq, 1, P.StageBSettings.profile(profile)).peak_gib
    assert abs(est - measured) / measured <= 0.15, (model, seq, profile, measured, round(est, 2))
