"""The SFT-vs-DPO verdict: the rule at and between its boundaries, the paired tests on constructed
inputs with hand-computed answers, and one run on a tiny model with two adapters on one base."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from halluguard.train.verdict import (
    NOT_SUPPORTED,
    PARTIAL,
    SUPPORTED,
    compare,
    consistency,
    decide,
    mcnemar_exact,
    to_markdown,
)


@pytest.mark.parametrize("diff,p,expected", [
    (2.5, 0.01, SUPPORTED),      # DPO better by > 2 points and significant
    (2.5, 0.20, PARTIAL),        # > 2 points but could be noise
    (2.0, 0.001, PARTIAL),       # exactly 2 is not "more than 2"
    (1.5, 0.001, PARTIAL),       # the gap band between 1 and 2 points
    (1.0, 0.5, PARTIAL),         # the +/-1 tie band, edges included
    (0.0, 1.0, PARTIAL),
    (-0.5, 0.5, PARTIAL),        # SFT ahead by under a point: still a tie
    (-1.0, 0.5, PARTIAL),
    (-1.01, 0.9, NOT_SUPPORTED), # SFT ahead by more than a point (significant or not)
    (-8.0, 0.001, NOT_SUPPORTED),
])
def test_verdict_rule(diff, p, expected):
    verdict, reason = decide(diff, p, alpha=0.05)
    assert verdict == expected and reason


def test_verdict_rule_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        decide(math.nan, 0.5)


def test_mcnemar_exact_by_hand():
    # 10 documents only SFT hallucinated, 0 only DPO: p = 2 * 0.5**10
    sft = [True] * 10 + [False] * 5 + [True] * 3
    dpo = [False] * 10 + [False] * 5 + [True] * 3
    r = mcnemar_exact(sft, dpo)
    assert (r["b"], r["c"]) == (10, 0) and r["p_value"] == pytest.approx(2 * 0.5 ** 10)
    # 6 vs 2 discordant: p = 2 * P(X <= 2 | n=8) = 2 * (1 + 8 + 28) / 256
    r = mcnemar_exact([True] * 6 + [False] * 2, [False] * 6 + [True] * 2)
    assert r["p_value"] == pytest.approx(2 * 37 / 256)
    assert mcnemar_exact([True, False], [True, False])["p_value"] == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact([True], [True, False])


def test_consistency_by_hand():
    # doc 1: all agree (1.0); doc 2: flags T,T,F -> pairs (TT, TF, TF) -> 1/3
    assert consistency([[True, True, True], [True, True, False]]) == pytest.approx((1 + 1 / 3) / 2)
    assert math.isnan(consistency([[True]]))


def _paired(n: int, rate_sft: float, rate_dpo: float, seed: int = 0):
    rng = random.Random(seed)
    sft = [rng.random() < rate_sft for _ in range(n)]
    # DPO fixes some of SFT's hallucinations (or adds some), item by item: a paired design
    dpo = [(s and rng.random() < rate_dpo / max(rate_sft, 1e-9)) if rate_dpo <= rate_sft else
           (s or rng.random() < (rate_dpo - rate_sft)) for s in sft]
    return sft, dpo


def test_compare_supported_when_dpo_clearly_hallucinates_less():
    sft, dpo = _paired(400, 0.6, 0.3)
    r = compare({"flags": sft, "rouge1": [0.3] * 400}, {"flags": dpo, "rouge1": [0.32] * 400}, n_bootstrap=500)
    h = r["hallucination_rate"]
    assert h["sft"] == pytest.approx(100 * sum(sft) / 400) and h["dpo"] == pytest.approx(100 * sum(dpo) / 400)
    assert h["diff_points"] > 20 and h["mcnemar"]["p_value"] < 1e-6
    assert h["ci_points"][0] > 0  # the CI of SFT - DPO excludes 0
    assert r["verdict"] == SUPPORTED
    assert r["metrics"]["rouge1"]["diff_dpo_minus_sft"] == pytest.approx(0.02)
    assert "| hallucination rate (%) |" in to_markdown(r)


def test_compare_not_supported_when_sft_wins_and_partial_on_a_tie():
    sft, dpo = _paired(300, 0.3, 0.4, seed=1)
    assert compare({"flags": sft}, {"flags": dpo}, n_bootstrap=200)["verdict"] == NOT_SUPPORTED
    same = [i % 3 == 0 for i in range(300)]
    r = compare({"flags": same}, {"flags": list(same)}, n_bootstrap=200)
    assert r["verdict"] == PARTIAL and r["hallucination_rate"]["diff_points"] == 0


def test_compare_small_gain_without_significance_is_partial():
    # 3 points better on 100 documents (3 discordant pairs): p = 0.25, not significant
    sft = [True] * 3 + [False] * 97
    dpo = [False] * 100
    r = compare({"flags": sft}, {"flags": dpo}, n_bootstrap=200)
    assert r["hallucination_rate"]["diff_points"] == pytest.approx(3.0)
    assert r["verdict"] == PARTIAL and "not significant" in r["reason"]


def test_compare_reports_preference_accuracy_confidence_and_consistency():
    sft = {"flags": [True, False], "pref_correct": [True, False, False, True], "margins": [1.0, -1.0, -2.0, 0.5],
           "sample_flags": [[True, False], [False, False]]}
    dpo = {"flags": [False, False], "pref_correct": [True, True, True, True], "margins": [2.0, 1.0, 0.5, 1.5],
           "sample_flags": [[False, False], [False, False]]}
    m = compare(sft, dpo, n_bootstrap=100)["metrics"]
    assert m["preference_accuracy"]["sft"] == 0.5 and m["preference_accuracy"]["dpo"] == 1.0
    assert m["confidence_mean_margin"]["sft"] == pytest.approx(-0.375)
    assert m["confidence_mean_margin"]["dpo"] == pytest.approx(1.25)
    assert m["consistency"] == {"sft": 0.5, "dpo": 1.0}


def test_compare_rejects_unpaired_input():
    with pytest.raises(ValueError, match="paired"):
        compare({"flags": [True]}, {"flags": [True, False]})


# ---------------------------------------------------------------------------------------------------
# One run on a tiny model: two adapters switched on one base
# ---------------------------------------------------------------------------------------------------
class OverlapVerifier:
    threshold = 0.5

    def score(self, sources, summaries):
        return [sum(w not in set(s.lower().split()) for w in m.lower().split()) / max(1, len(m.split()))
                for s, m in zip(sources, summaries)]


def _random_adapter(base: str, out, seed: int):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    peft = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft.save_pretrained(out)
    return str(out)


def test_verdict_run_on_a_tiny_model(tmp_path, tiny_llama_path):
    pytest.importorskip("trl")
    from halluguard.train import verdict

    docs = tmp_path / "heldout.jsonl"
    prefs = tmp_path / "val.jsonl"
    with docs.open("w") as f, prefs.open("w") as g:
        for i in range(3):
            d = f"Ana Costa sold {10 + i} boats in Faro in 200{i}."
            f.write(json.dumps({"document": d, "summary": f"Ana Costa sold {10 + i} boats."}) + "\n")
            g.write(json.dumps({"prompt": [{"role": "user", "content": "Summarize.\n\n" + d}],
                                "chosen": [{"role": "assistant", "content": f"Ana sold {10 + i} boats."}],
                                "rejected": [{"role": "assistant", "content": "Ana sold 99 cars."}]}) + "\n")
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"document": "Ana Costa sold 5 boats in Faro in 1999."}) + "\n")
    sft = _random_adapter(tiny_llama_path, tmp_path / "sft", 1)
    dpo = _random_adapter(tiny_llama_path, tmp_path / "dpo", 2)
    (args,) = verdict.make_parser().parse_args_and_config([
        "--config", str(Path(__file__).resolve().parents[1] / "training/configs/verdict_qwen7b_lite.yaml"), "--model_name_or_path", tiny_llama_path,
        "--sft_adapter", sft, "--dpo_adapter", dpo, "--quantization", "none", "--eval_file", str(docs),
        "--preference_file", str(prefs), "--train_files", str(train), "--max_new_tokens", "5", "--consistency_samples", "2",
        "--n_bootstrap", "100", "--output_dir", str(tmp_path / "out"), "--instruction", "Summarize."])
    report = verdict.run(args, verifier=OverlapVerifier())
    assert report["verdict"] in (SUPPORTED, PARTIAL, NOT_SUPPORTED) and report["n_documents"] == 3
    m = report["metrics"]
    assert {"rouge1", "similarity", "preference_accuracy", "consistency", "confidence_mean_margin"} <= set(m)
    # two different adapters really were switched: their log-prob margins differ
    assert m["confidence_mean_margin"]["sft"] != m["confidence_mean_margin"]["dpo"]
    out = tmp_path / "out"
    assert json.loads((out / "verdict.json").read_text())["verdict"] == report["verdict"]
    assert "SFT vs DPO" in (out / "verdict.md").read_text()
    rows = [json.loads(x) for x in (out / "per_document.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and {"sft_summaries", "dpo_flags"} <= set(rows[0])


def test_evaluation_documents_must_be_held_out(tmp_path):
    from halluguard.train.verdict import check_held_out

    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"document": "The mayor  opened a bridge."}) + "\n")
    check_held_out(["Another document."], [str(train)])
    with pytest.raises(ValueError, match=r"1 evaluation document\(s\) also appear.*rows \[2\]"):
        check_held_out(["Another document.", "the mayor opened a bridge. "], [str(train)])


# ---------------------------------------------------------------------------------------------------
# Per-model CIs, scoring summaries made earlier, and the shipped example
# ---------------------------------------------------------------------------------------------------
def test_wilson_ci_by_hand():
    from halluguard.train.verdict import wilson_ci

    z2 = 1.959964 ** 2
    assert wilson_ci(0, 10) == pytest.approx([0.0, 100 * z2 / (10 + z2)])  # not [0, 0] at k = 0
    lo, hi = wilson_ci(5, 10)
    assert (lo + hi) / 2 == pytest.approx(50.0) and hi - lo == pytest.approx(2 * 100 * 1.959964 *
                                                                             math.sqrt(0.025 + z2 / 400) / (1 + z2 / 10))
    r = compare({"flags": [True] * 5 + [False] * 5}, {"flags": [False] * 10}, n_bootstrap=50)
    assert r["hallucination_rate"]["rate_ci"]["sft"] == pytest.approx([lo, hi])
    assert "Wilson CIs: SFT 50.00" in to_markdown(r)


def test_wilson_ci_contains_the_rate_at_the_extremes(tmp_path):
    """k = n gave an upper bound of 99.99999999999999 < 100: the verdict figure's error bar went negative and
    matplotlib refused it (found running examples/tiny_pipeline, where DPO flagged all 4 documents)."""
    from halluguard import plots
    from halluguard.train.verdict import wilson_ci

    for n in (1, 3, 4, 7, 10, 49, 500):
        assert wilson_ci(n, n)[1] >= 100.0 and wilson_ci(0, n)[0] <= 0.0
    r = compare({"flags": [False] * 4}, {"flags": [True] * 4}, n_bootstrap=50)
    r.update({"n_documents": 4, "verdict": "not supported", "reason": "SFT ahead"})
    assert plots.save_figure(plots.verdict_figure(r), tmp_path / "verdict")


def _summaries_file(tmp_path):
    p = tmp_path / "summaries.jsonl"
    rows = [{"document": f"Ana Costa sold {10 + i} boats in Faro.", "reference": f"Ana sold {10 + i} boats.",
             "sft": "Bob bought 99 cars in Lisbon yesterday." if i < 3 else f"Ana sold {10 + i} boats.",
             "dpo": f"Ana Costa sold {10 + i} boats."} for i in range(4)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_verdict_scores_given_summaries_without_a_model(tmp_path, monkeypatch):
    from halluguard import loading
    from halluguard.train import verdict

    monkeypatch.setattr(loading, "load_model", lambda *a, **k: pytest.fail("no model may be loaded"))
    (args,) = verdict.make_parser().parse_args_and_config([
        "--eval_file", str(_summaries_file(tmp_path)), "--summary_column", "reference", "--sft_summary_column", "sft",
        "--dpo_summary_column", "dpo", "--n_bootstrap", "100", "--output_dir", str(tmp_path / "out")])
    report = verdict.run(args, verifier=OverlapVerifier())
    h = report["hallucination_rate"]
    assert (h["sft"], h["dpo"], report["n_documents"]) == (75.0, 0.0, 4)  # Bob, cars and Lisbon are not in the source
    assert h["mcnemar"] == {"b": 3, "c": 0, "p_value": 0.25} and report["verdict"] == PARTIAL
    assert {"rouge1", "similarity"} <= set(report["metrics"])
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"verdict.json", "verdict.md", "verdict.png", "verdict.svg",
                                               "per_document.jsonl"}
    assert "![SFT vs DPO: hallucination rates and the verdict](verdict.png)" in (out / "verdict.md").read_text()
    assert "Verdict: partial" in (out / "verdict.svg").read_text()
    rows = [json.loads(x) for x in (out / "per_document.jsonl").read_text().splitlines()]
    assert rows[0]["document"] == "Ana Costa sold 10 boats in Faro." and rows[0]["sft_flags"] is True


def test_verdict_given_summaries_need_both_columns(tmp_path):
    from halluguard.train import verdict

    f = str(_summaries_file(tmp_path))
    with pytest.raises(ValueError, match="set both"):
        verdict.run(verdict.VerdictArguments(eval_file=f, sft_summary_column="sft"), verifier=OverlapVerifier())
    with pytest.raises(ValueError, match="no column 'nope'"):
        verdict.run(verdict.VerdictArguments(eval_file=f, sft_summary_column="sft", dpo_summary_column="nope",
                                             output_dir=str(tmp_path / "o")), verifier=OverlapVerifier())
    with pytest.raises(ValueError, match="sft_adapter and dpo_adapter are required"):
        verdict.run(verdict.VerdictArguments(eval_file=f), verifier=OverlapVerifier())


def test_shipped_example_verdict_was_made_by_this_code():
    """examples/sft_vs_dpo/ (the notebook's input) is the output of training/verdict.py on summaries.jsonl:
    its verdict follows from its own per-document flags, and the summaries are the input's."""
    ex = Path(__file__).resolve().parents[1] / "examples/sft_vs_dpo"
    report = json.loads((ex / "verdict.json").read_text())
    rows = [json.loads(x) for x in (ex / "per_document.jsonl").read_text().splitlines()]
    given = [json.loads(x) for x in (ex / "summaries.jsonl").read_text().splitlines()]
    assert [r["sft_summaries"] for r in rows] == [g["sft_summary"] for g in given]
    assert [r["dpo_summaries"] for r in rows] == [g["dpo_summary"] for g in given]
    assert [r["document"] for r in rows] == [g["document"] for g in given]
    for r in rows:  # flag = score >= the verifier's threshold, as recorded
        for m in ("sft", "dpo"):
            assert r[f"{m}_flags"] == (r[f"{m}_scores"] >= report["threshold"])
    again = compare({"flags": [r["sft_flags"] for r in rows]}, {"flags": [r["dpo_flags"] for r in rows]},
                    alpha=report["alpha"], n_bootstrap=report["args"]["n_bootstrap"], seed=report["args"]["seed"])
    regenerate = ("regenerate it: python training/verdict.py --eval_file examples/sft_vs_dpo/summaries.jsonl "
                  "--summary_column reference --sft_summary_column sft_summary --dpo_summary_column dpo_summary "
                  "--output_dir examples/sft_vs_dpo")
    assert again["hallucination_rate"] == report["hallucination_rate"], regenerate  # floats survive JSON exactly
    assert (again["verdict"], again["reason"]) == (report["verdict"], report["reason"]), regenerate
    assert (ex / "verdict.png").is_file() and (ex / "verdict.svg").is_file()
