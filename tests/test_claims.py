"""Claim-level checks (halluguard.verify.claims) and what `lite` makes of them: polarity flips, swapped
roles, invented causes, the abstention band for paraphrases, and input lite cannot judge."""

import pytest

from halluguard.verify import claims as C
from halluguard.verify.lite import REWORDED_REASON, LiteVerifier, load_calibration

COUNCIL = (
    "The city council voted on Tuesday to postpone the vote on the new stadium until March. "
    "Councillor Maria Lopez proposed the plan, while Councillor James Reed opposed it. "
    "Shares of Acme rose 8 percent on Monday. Analysts said the rise was driven by strong quarterly sales. "
    "The company did not reduce its workforce this year. Local shop owners said business had improved."
)


# -- polarity ---------------------------------------------------------------------------------------


def test_polarity_flip_negated_summary_points_at_the_cue():
    ev = "The city council voted on Tuesday to postpone the vote on the new stadium until March."
    sent = "The council did not postpone the vote on the stadium."
    flip = C.polarity_flip(sent, ev)
    assert flip is not None and sent[flip.start : flip.end] == "not"
    assert "postpone" in flip.reason


def test_polarity_flip_negated_source_points_at_the_verb():
    sent = "The company also reduced its workforce this year."
    flip = C.polarity_flip(sent, "The company did not reduce its workforce this year.")
    assert flip is not None and sent[flip.start : flip.end] == "reduced"
    assert "not reduce" in flip.reason


@pytest.mark.parametrize(
    "sent,ev",
    [
        # Same polarity on both sides.
        ("The company did not reduce its workforce.", "The company did not reduce its workforce this year."),
        # The negation governs a word the evidence does not have: not a flip of the evidence's claim.
        ("No injuries were reported after the crash on Monday.", "The crash happened on Monday, police said."),
        # Too little of the sentence is in the evidence to call it the same claim.
        ("The mayor did not attend the opening of the new library downtown.", "The council met on Tuesday."),
    ],
)
def test_polarity_flip_quiet(sent, ev):
    assert C.polarity_flip(sent, ev) is None


# -- roles ------------------------------------------------------------------------------------------

EV_ROLES = "Councillor Maria Lopez proposed the plan, while Councillor James Reed opposed it."


def test_role_swap_found_with_both_names():
    swaps = C.role_swaps("Councillor James Reed proposed the plan, while Councillor Maria Lopez opposed it.", EV_ROLES)
    assert swaps and swaps[0][0].text == "proposed"
    assert swaps[0][1] == "James Reed" and swaps[0][2] == "Maria Lopez"


def test_role_swap_subject_object():
    swaps = C.role_swaps("Hull beat Leeds 3-1 on Saturday.", "Leeds beat Hull 3-1 on Saturday.")
    assert [(t.text, a, b) for t, a, b in swaps] == [("beat", "Hull", "Leeds")]


@pytest.mark.parametrize(
    "sent,ev",
    [
        ("Maria Lopez proposed the plan and James Reed opposed it.", EV_ROLES),  # same roles, reworded
        ("Hull was beaten by Leeds on Saturday.", "Leeds beat Hull on Saturday."),  # passive
        ("Reed proposed the plan.", EV_ROLES),  # one name: the name check's business, not a swap
    ],
)
def test_role_swap_quiet(sent, ev):
    assert C.role_swaps(sent, ev) == []


# -- causes -----------------------------------------------------------------------------------------

UNITS = ["Shares of Acme rose 8 percent on Monday.", "Analysts said the rise was driven by strong quarterly sales."]


def test_invented_cause_is_flagged_from_the_cue():
    sent = "Shares of Acme rose 8 percent because investors welcomed the new stadium."
    span = C.unsupported_cause(sent, UNITS, [0])
    assert span is not None and sent[span[0] : span[1]] == "because investors welcomed the new stadium"


def test_stated_cause_is_not_flagged():
    assert C.unsupported_cause("Acme shares rose 8 percent due to strong quarterly sales.", UNITS, [0]) is None
    assert C.unsupported_cause("Acme shares rose 8 percent on Monday.", UNITS, [0]) is None
    # "due to" of a schedule is no cause.
    assert C.unsupported_cause("Greece is due to repay a loan to the IMF on Thursday.", UNITS, [0]) is None


# -- language ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,bad",
    [
        ("Der Stadtrat hat die Abstimmung über das neue Stadion auf März verschoben.", True),
        ("市议会推迟了关于新体育场的投票。", True),
        ("The council postponed the vote on the new stadium until March.", False),
        ("Acme", False),  # too short to say
    ],
)
def test_language_problem(text, bad):
    assert (C.language_problem(text) is not None) == bad


# -- in lite ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lite():
    return LiteVerifier()


@pytest.mark.parametrize(
    "summary,flagged,reason",
    [
        ("The council did not postpone the vote on the stadium.", "not", "negation"),
        ("The company also reduced its workforce this year.", "reduced", "negation"),
        ("Councillor James Reed proposed the plan, while Councillor Maria Lopez opposed it.", "proposed", "role"),
        ("Shares of Acme rose 8 percent because investors welcomed the new stadium.",
         "because investors welcomed the new stadium", "cause"),
    ],
)
def test_lite_flags_meaning_errors(lite, summary, flagged, reason):
    r = lite.verify(COUNCIL, summary)
    assert r.label == "hallucinated", r
    assert any(sp.text == flagged and sp.reason == reason for sp in r.spans), r.spans
    assert r.sentences[0].reasons


@pytest.mark.parametrize(
    "summary",
    [
        "The council pushed the vote on the stadium back to March.",
        "Maria Lopez proposed the plan and James Reed opposed it.",
        "Acme shares climbed 8 percent on Monday.",
    ],
)
def test_lite_leaves_faithful_rewordings_unflagged(lite, summary):
    r = lite.verify(COUNCIL, summary)
    assert r.label != "hallucinated", r
    assert r.spans == []


def test_reworded_band_abstains_instead_of_flagging():
    """A sentence the embedding calls a paraphrase but that shares few words with its evidence comes back
    `unknown` with the reworded reason and no red span, where without the band it is flagged."""
    source = "Local shop owners said business had improved since the new road opened in the spring."
    summary = "Shopkeepers reported trade picking up after the new road opened."
    cal = load_calibration()
    strict = LiteVerifier(calibration={**cal, "reworded": None}, threshold=0.05)
    band = {"min_sim": 0.5, "min_novel": 0.1, "score_cap": 0.04}
    banded = LiteVerifier(calibration={**cal, "reworded": band}, threshold=0.05)
    r0, r1 = strict.verify(source, summary), banded.verify(source, summary)
    assert r0.label == "hallucinated" and r0.spans  # the word checks alone would paint it red
    assert r1.sentences[0].verdict == "unknown" and r1.sentences[0].reasons == [REWORDED_REASON]
    assert r1.spans == [] and r1.label == "unknown"
    assert r1.score <= 0.04 and r1.extra["reworded_sentences"] == 1


def test_reworded_band_never_hides_a_fired_check():
    source = "Local shop owners said business had improved since the new road opened in 2019."
    summary = "Shopkeepers reported trade picking up after the new road opened in 2021."
    band = {"min_sim": 0.3, "min_novel": 0.0, "score_cap": 0.04}
    r = LiteVerifier(calibration={**load_calibration(), "reworded": band}, threshold=0.05).verify(source, summary)
    assert r.label == "hallucinated"
    assert any(sp.reason == "date" and sp.text == "2021" for sp in r.spans)


def test_other_language_is_unknown_not_hallucinated(lite):
    source = "Der Stadtrat hat am Dienstag beschlossen, die Abstimmung über das neue Stadion zu verschieben."
    summary = "Der Stadtrat hat die Abstimmung über das Stadion nicht verschoben."
    r = lite.verify(source, summary)
    assert r.label == "unknown" and r.spans == []
    assert all(s.verdict == "unknown" for s in r.sentences)
    assert "English" in r.sentences[0].reasons[0] and "English" in r.extra["unjudged"]
