"""The `entail` backend on a tiny adapter trained in-process (tiny BERT base, real MiniLM tokenizer and
retrieval): Report shape, verdicts, spans inside their sentence, unknown where nothing can be judged."""

from __future__ import annotations

import pytest

from tests.test_entail_train import fixture_export, tiny_bert

SOURCE = ("The city council postponed the vote on the new budget on Monday. Mayor Ann Reed proposed the plan, "
          "and councillor Bob Lopez opposed it. Shares of the utility rose 8 percent after the results.")
SUMMARY = "Here is a summary. The council did not postpone the vote. Shares rose 8 percent because investors cheered."


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from halluguard.train.entail import EntailConfig, train

    d = tmp_path_factory.mktemp("entail_v")
    bert = tiny_bert(d / "bert")
    cfg = EntailConfig(model_name_or_path=str(bert), train_file=str(fixture_export(d / "pairs.npz")),
                       output_dir=str(d / "out"), max_steps=2, batch_size=8, eval_fraction=0.0, max_len=48,
                       device="cpu")
    train(cfg)
    return str(d / "out"), str(bert)


def verifier(tiny_model, **kw):
    from halluguard.verify import get_verifier

    out, bert = tiny_model
    return get_verifier("entail", model_dir=out, base=bert, **kw)


@pytest.mark.parametrize("quantize", [False, True])
def test_every_content_sentence_is_judged_against_evidence(tiny_model, quantize):
    v = verifier(tiny_model, threshold=0.0, quantize=quantize, token_threshold=0.0)
    r = v.verify(SOURCE, SUMMARY)
    assert r.backend == "entail" and r.label == "hallucinated" and 0.0 <= r.score <= 1.0
    verdicts = [s.verdict for s in r.sentences]
    assert verdicts == ["unknown", "unsupported", "unsupported"]  # the preamble states nothing to check
    for s in r.sentences[1:]:
        assert s.evidence and s.evidence[0].text in SOURCE
        assert s.spans and all(s.start <= sp.start < sp.end <= s.end for sp in s.spans)
        assert all(SUMMARY[sp.start:sp.end] == sp.text for sp in s.spans)
        # token spans are widened to whole words
        assert all(not SUMMARY[sp.start - 1].isalnum() for sp in s.spans if sp.start > 0)


def test_threshold_one_passes_everything_and_scores_match_verify(tiny_model):
    v = verifier(tiny_model, threshold=1.0)
    r = v.verify(SOURCE, SUMMARY)
    assert r.label == "faithful" and not r.spans
    assert [s.verdict for s in r.sentences] == ["unknown", "supported", "supported"]
    assert v.score([SOURCE, SOURCE], [SUMMARY, SUMMARY]) == pytest.approx([r.score, r.score], abs=1e-4)


def test_nothing_to_check_is_unknown_and_bad_input_is_a_value_error(tiny_model):
    v = verifier(tiny_model)
    r = v.verify(SOURCE, "Here is a summary.")
    assert r.label == "unknown" and r.score != r.score and "reason" in r.extra
    with pytest.raises(ValueError, match="summary is empty"):
        v.verify(SOURCE, "  ")
    with pytest.raises(ValueError, match="threshold"):
        verifier(tiny_model, threshold=2.0)


def test_a_missing_model_folder_says_so(tmp_path):
    from halluguard.verify import get_verifier

    with pytest.raises(FileNotFoundError, match="no entail model"):
        get_verifier("entail", model_dir=str(tmp_path))


def test_the_shipped_model_loads_offline_from_the_package_and_reads_meaning():
    """The adapter in halluguard/resources/entail/ on the packaged MiniLM: no download, and a negation flip
    scores above a faithful rewording of the same fact (the case the lexical default misses)."""
    from halluguard.verify import get_verifier
    from halluguard.verify.entail import default_model_dir, read_meta

    d = default_model_dir()
    assert (d / "entail.safetensors").stat().st_size < 10 * 1024 * 1024 and (d / "README.md").is_file()
    meta = read_meta()
    assert 0.0 < meta["threshold"] < 1.0 and meta["method"] == "lora"
    v = get_verifier("entail")
    src = "The city council postponed the vote on the new budget on Monday after a long debate."
    flip, para = v.score([src, src], ["The council did not postpone the vote.", "The council pushed the vote back."])
    assert flip > v.threshold > para
