"""The `lite` verifier: each check on constructed pairs, report structure, calibration, bad input,
and a 50,000-word source."""

import json
import math

import pytest

from halluguard.types import Report
from halluguard.verify import get_verifier
from halluguard.verify.lite import FEATURES, LiteVerifier, load_calibration

SOURCE = (
    "The company reported revenue of $1.5 million in March 2020. "
    "Chief executive John Smith said the results were strong. "
    "The firm did not pay a dividend this year. "
    "It employs 300 people at its factory in Boston."
)


@pytest.fixture(scope="module")
def lite():
    return get_verifier("lite")


def _flagged(report, reason=None):
    return [(s.text, s.reason) for s in report.spans if reason is None or s.reason == reason]


def _check_offsets(report, source, summary):
    for sv in report.sentences:
        assert summary[sv.start : sv.end] == sv.text
        for ev in sv.evidence:
            assert source[ev.start : ev.end] == ev.text
        for sp in sv.spans:
            assert summary[sp.start : sp.end] == sp.text
    for sp in report.spans:
        assert summary[sp.start : sp.end] == sp.text


def test_faithful_paraphrase_not_flagged(lite):
    summary = "The company reported $1.5 million in revenue in March 2020, and John Smith said results were strong."
    r = lite.verify(SOURCE, summary)
    _check_offsets(r, SOURCE, summary)
    assert r.label == "faithful", r
    assert r.spans == []
    assert r.sentences[0].verdict == "supported"
    assert "revenue" in r.sentences[0].evidence[0].text


@pytest.mark.parametrize(
    "summary,bad,reason",
    [
        ("The company reported revenue of $2.5 million in March 2020.", "$2.5 million", "number"),
        ("The company reported revenue of $1.5 million in March 2021.", "2021", "date"),
        ("The company reported revenue of $1.5 million in April 2020.", "April", "date"),
        ("Chief executive Peter Jones said the results were strong.", "Peter Jones", "name"),
        ("It employs 300 people at its factory in Chicago.", "Chicago", "name"),
        ("It employs 450 people at its factory in Boston.", "450", "number"),
    ],
)
def test_each_check_flags_the_changed_span(lite, summary, bad, reason):
    r = lite.verify(SOURCE, summary)
    _check_offsets(r, SOURCE, summary)
    assert r.label == "hallucinated", (summary, r.score)
    start = summary.index(bad)
    hits = [s for s in r.spans if s.start <= start and start + len(bad) <= s.end]
    assert hits, (summary, r.spans)
    assert hits[0].reason == reason
    # precise: the flag is the changed phrase, not the whole sentence
    assert hits[0].end - hits[0].start <= len(bad) + 12


def test_negation_check_fires_with_offsets(lite):
    # The check finds the flipped polarity; whether it alone makes the sentence unsupported is the
    # calibrated model's call (on dev data a lone negation mismatch is weak evidence).
    faithful = "Chief executive John Smith said the results were strong."
    negated = "Chief executive John Smith said the results were not strong."
    (pa,) = lite.analyze_batch([SOURCE], [negated])
    neg = [s for s in pa.sentences[0].spans if s.reason == "negation"]
    assert [(s.start, s.end, s.text) for s in neg] == [(negated.index("not"), negated.index("not") + 3, "not")]
    assert lite.verify(SOURCE, negated).score > lite.verify(SOURCE, faithful).score
    strict = LiteVerifier(threshold=0.2).verify(SOURCE, negated)
    assert strict.label == "hallucinated"
    assert any(s.reason == "negation" and s.text == "not" for s in strict.spans)


def test_number_words_and_formats_match(lite):
    summary = "It employs three hundred people at its factory in Boston, and revenue was 1,500,000 dollars in March 2020."
    r = lite.verify(SOURCE, summary)
    assert not _flagged(r, "number"), r.spans


def test_added_fact_is_flagged(lite):
    summary = "It employs 300 people in Boston. The firm also plans to build a second factory in Ohio next spring."
    r = lite.verify(SOURCE, summary)
    _check_offsets(r, SOURCE, summary)
    assert r.label == "hallucinated"
    assert r.sentences[0].verdict == "supported"
    assert r.sentences[1].verdict == "unsupported"
    flagged = " ".join(s.text for s in r.sentences[1].spans)
    assert "Ohio" in flagged and "factory" not in flagged.replace("factory in Ohio", "")


def test_report_structure_and_json(lite):
    summary = "Here is a summary:\n\nThe firm did not pay a dividend. It employs 300 people in Boston."
    r = lite.verify(SOURCE, summary)
    assert isinstance(r, Report) and r.backend == "lite"
    assert 0.0 <= r.score <= 1.0 and r.threshold == lite.threshold
    assert [s.verdict for s in r.sentences][0] == "unknown"  # no content word to check
    assert math.isnan(r.sentences[0].score)
    for sv in r.sentences[1:]:
        assert sv.verdict in ("supported", "unsupported") and 0.0 <= sv.score <= 1.0
        assert sv.evidence and 0.0 <= sv.evidence[0].score <= 1.0
    d = json.loads(json.dumps(r.to_dict(), default=str))
    assert {"score", "label", "threshold", "sentences", "spans"} <= set(d)
    assert r.score == max(s.score for s in r.sentences if s.verdict != "unknown")


def test_score_and_batch_agree_with_verify(lite):
    summaries = ["It employs 300 people in Boston.", "It employs 900 people in Boston."]
    scores = lite.score([SOURCE, SOURCE], summaries)
    assert scores == [lite.verify(SOURCE, s).score for s in summaries]
    assert scores[1] > scores[0]
    seen = []
    lite.verify_batch([SOURCE] * 2, summaries, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (2, 2)


def test_calibration_file_is_loaded_and_threshold_override():
    cal = load_calibration()
    assert cal["features"] == list(FEATURES) and len(cal["weights"]) == len(FEATURES)
    assert "fitted_on" in cal
    v = LiteVerifier()
    assert v.threshold == pytest.approx(cal["threshold"])
    assert LiteVerifier(threshold=0.9).threshold == 0.9
    with pytest.raises(ValueError, match="threshold"):
        LiteVerifier(threshold=1.5)
    with pytest.raises(FileNotFoundError):
        LiteVerifier(calibration="/nonexistent/cal.json")
    with pytest.raises(ValueError, match="features"):
        LiteVerifier(calibration={"features": ["x"], "weights": [1.0]})


def test_empty_and_bad_input_errors(lite):
    with pytest.raises(ValueError, match="source is empty"):
        lite.verify("  ", "A summary.")
    with pytest.raises(ValueError, match="summary is empty"):
        lite.verify(SOURCE, "")
    with pytest.raises(ValueError, match="pair 1: summary must be a string"):
        lite.verify_batch([SOURCE, SOURCE], ["ok summary here.", None])
    with pytest.raises(ValueError, match="2 sources but 1 summaries"):
        lite.verify_batch([SOURCE, SOURCE], ["x"])


def test_fifty_thousand_word_source(lite):
    filler = [
        f"Paragraph {i} discusses routine matters of the committee, including minutes and agendas."
        for i in range(6000)
    ]
    filler[4321] = "The committee approved a grant of 750,000 euros for the river restoration in Ghent."
    source = " ".join(filler)
    assert len(source.split()) >= 50_000
    good = "The committee approved a 750,000 euro grant for the river restoration in Ghent."
    bad = "The committee approved a 950,000 euro grant for the river restoration in Ghent."
    r_good, r_bad = lite.verify_batch([source, source], [good, bad])
    ev = r_good.sentences[0].evidence[0]
    assert "Ghent" in ev.text and source[ev.start : ev.end] == ev.text
    assert r_good.label == "faithful" and r_bad.label == "hallucinated"
    assert any(s.text == "950,000" and s.reason == "number" for s in r_bad.spans)


def test_embedder_is_cached_and_disk_cache_roundtrips(tmp_path):
    import numpy as np

    from halluguard.embeddings import DiskCache, get_embedder

    emb = get_embedder()
    assert get_embedder() is emb  # one model per process
    cache = DiskCache(tmp_path / "emb.npz")
    v = emb.encode(["a sentence", "another one", "a sentence"], cache=cache)
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-3)
    assert np.allclose(v[0], v[2]) and len(cache) == 2
    cache.save()
    again = DiskCache(tmp_path / "emb.npz")
    assert "another one" in again and np.allclose(again["another one"], v[1])
    assert emb.encode([]).shape == (0, 384)


def test_whole_sentence_flag_keeps_specific_spans(lite):
    summary = "Chief executive Peter Jones said the results were strong."
    r = lite.verify(SOURCE, summary)
    assert r.label == "hallucinated"
    # non-overlapping, in order, inside the sentence; the name keeps its own reason
    ends = [(s.start, s.end) for s in r.spans]
    assert ends == sorted(ends) and all(a[1] <= b[0] for a, b in zip(ends, ends[1:]))
    assert ("Peter Jones", "name") in [(s.text, s.reason) for s in r.spans]


def test_random_text_never_crashes_and_offsets_hold(lite):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    alphabet = st.sampled_from(list("abcXYZ 019.,;:!?'\"\n-$%()\u00e9\u2019") + ["May ", "two ", "not ", "1.5 million "])
    texts = st.lists(alphabet, min_size=1, max_size=60).map("".join)

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(texts, texts)
    def check(source, summary):
        if not source.strip() or not summary.strip():
            with pytest.raises(ValueError):
                lite.verify(source, summary)
            return
        r = lite.verify(source, summary)
        assert r.label in ("hallucinated", "faithful", "unknown")
        assert math.isnan(r.score) or 0.0 <= r.score <= 1.0
        _check_offsets(r, source, summary)

    check()


def test_opposite_word_is_a_negation_span():
    source = "Northwind Foods reported a second-quarter profit of 38 million dollars, down from 45 million a year earlier."
    flipped = "Northwind Foods' second-quarter profit rose to 38 million dollars."
    v = LiteVerifier(threshold=0.05)  # the span is shown once the sentence is flagged; here it always is
    (pa,) = v.analyze_batch([source], [flipped])
    opp = pa.sentences[0].features[FEATURES.index("opposite")]
    assert opp == 1.0
    r = v.verify(source, flipped)
    hits = [s for s in r.spans if s.reason == "negation"]
    assert [(s.start, s.end, s.text) for s in hits] == [(flipped.index("rose"), flipped.index("rose") + 4, "rose")]
    assert any("'rose' where the evidence says 'down'" in why for why in r.sentences[0].reasons)
    # same pole, different word: supported, and the opposite feature stays off
    (pa2,) = v.analyze_batch([source], ["Northwind Foods' second-quarter profit fell to 38 million dollars."])
    assert pa2.sentences[0].features[FEATURES.index("opposite")] == 0.0


def test_negation_and_opposite_cancel():
    # "did not rise" against "fell": two flips, one claim. Neither check may fire.
    source = "Shares in the bank fell on Monday after the results were published."
    (pa,) = LiteVerifier().analyze_batch([source], ["Shares in the bank did not rise on Monday after the results."])
    f = pa.sentences[0].features
    assert f[FEATURES.index("neg_mismatch")] == 0.0 and f[FEATURES.index("opposite")] == 0.0
    assert not [s for s in pa.sentences[0].spans if s.reason == "negation"]
