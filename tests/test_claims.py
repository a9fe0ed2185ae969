"""Claim-level checks (halluguard.verify.claims) and what `lite` makes of them: polarity flips, swapped
roles and offices, invented causes, widened scope, dropped hedges, the abstention band for paraphrases, and input lite cannot judge."""

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


def test_a_reason_the_source_gives_by_citing_it_is_a_stated_cause():
    units = ["Mayor Ana Reed proposed the delay, citing a budget shortfall of $40 million."]
    sent = "Reed pushed for the delay because of a $40 million budget gap."
    assert C.unsupported_cause(sent, units, [0]) is None


# -- offices ----------------------------------------------------------------------------------------

OFFICES = ("Mayor Ana Reed proposed the delay. Councillor Tom Lopez opposed it. "
           "The chief executive Sam Ortiz said sales fell.")


def test_office_swap_names_the_other_holder():
    offices = C.name_offices(OFFICES)
    sent = "Mayor Tom Lopez proposed the delay."
    hits = C.office_swaps(sent, offices)
    assert len(hits) == 1
    s, e, why = hits[0]
    assert sent[s:e] == "Mayor Tom Lopez" and "mayor" in why and "councillor" in why


@pytest.mark.parametrize("sent", [
    "Mayor Ana Reed proposed the delay.",  # the right office
    "Tom Lopez opposed the delay.",  # no office written
    "Senator Tom Lopez opposed it.",  # an office nobody in the source holds: not a swap (maybe a promotion)
    "Mayor Jane Smith spoke.",  # a name the source never writes with an office
])
def test_office_swap_quiet(sent):
    assert C.office_swaps(sent, C.name_offices(OFFICES)) == []


# -- names out of place ----------------------------------------------------------------------------

BOUGHT = "The firm, which dates back to 1874, was bought by managing director Sandy Wood in November last year."
BOUGHT_NEAR = "Hawick Knitwear makes jumpers in the Borders. Its staff of 40 were kept on."


def test_misplaced_name_is_flagged():
    sent = "The firm, which dates back to 1874, was bought by managing director Hawick Knitwear in November."
    hits = C.misplaced_names(sent, BOUGHT, BOUGHT_NEAR.split(".")[1])  # the runner-up evidence does not excuse it
    assert len(hits) == 1 and sent[hits[0][0] : hits[0][1]] == "Hawick Knitwear" and "Sandy Wood" in hits[0][2]


@pytest.mark.parametrize("sent", [
    "The firm was bought by managing director Sandy Wood in November.",  # the right name
    "Wood bought the firm, which dates back to 1874, in November.",  # the name shortened
    "Hawick Knitwear was bought by managing director Sandy Wood in November.",  # the firm named
    "The firm was bought in November last year.",  # no name
])
def test_misplaced_name_quiet(sent):
    assert C.misplaced_names(sent, BOUGHT, BOUGHT_NEAR) == []


def test_misplaced_name_from_the_next_sentence_is_flagged():
    """A name of the neighbouring sentence in the evidence's slot: the neighbour does not excuse it."""
    ev = "Chief executive Laura Stein, who founded the firm in 2009, said demand from Asian customers drove the gains."
    sent = "Morgan Hale, who founded the firm in 2009, said demand drove the gains."
    hits = C.misplaced_names(sent, ev, "Analysts at Morgan Hale warned that rising rates could slow growth.")
    assert len(hits) == 1 and sent[hits[0][0] : hits[0][1]] == "Morgan Hale" and "Laura Stein" in hits[0][2]


# -- scope ------------------------------------------------------------------------------------------

SCOPE_EV = "Some residents welcomed the decision, while local businesses expressed concern."


@pytest.mark.parametrize("sent,word", [("All residents welcomed the decision.", "All"),
                                       ("Most residents welcomed the decision.", "Most")])
def test_scope_widened(sent, word):
    hit = C.scope_overreach(sent, SCOPE_EV)
    assert hit is not None and sent[hit[0] : hit[1]] == word and "'Some'" in hit[2]


@pytest.mark.parametrize("sent", [
    "Some residents welcomed the decision.",
    "Residents welcomed the decision.",  # no quantifier: not this check's call
    "All local businesses expressed concern.",  # "all" of a group the evidence does not quantify
    "It was the most expensive stadium some residents had seen.",  # "the most" is no quantifier
])
def test_scope_quiet(sent):
    assert C.scope_overreach(sent, SCOPE_EV) is None


# -- certainty --------------------------------------------------------------------------------------

HEDGED = ("Officials said the bridge could reopen next week, and the company plans to open 50 new stores in 2025. "
          "The suspect allegedly stole two cars.")


@pytest.mark.parametrize("sent,word", [
    ("The bridge will reopen next week.", "reopen"),
    ("The bridge reopened next week.", "reopened"),
    ("The company opened 50 new stores in 2025.", "opened"),
    ("The suspect stole two cars.", "stole"),
])
def test_hedge_dropped(sent, word):
    hit = C.certainty_shift(sent, HEDGED)
    assert hit is not None and sent[hit[0] : hit[1]] == word


@pytest.mark.parametrize("sent", [
    "The bridge could reopen next week.",
    "Officials said the bridge may reopen next week.",  # attributed
    "The company will open 50 new stores in 2025.",  # a plan restated as "will"
    "The company aims to open 50 new stores.",
    "The suspect is accused of stealing two cars.",
])
def test_hedge_kept_is_quiet(sent):
    assert C.certainty_shift(sent, HEDGED) is None


@pytest.mark.parametrize("sent,ev", [
    ("It will cost 4.2 million dollars.", "Construction is expected to cost 4.2 million dollars."),  # a forecast
    ("Researchers tagged 40 turtles.", "They tagged 40 turtles and plan to tag another 25 next year."),  # also fact
    ("The authors showed that the change is genetic.", "The authors said they could not show that the change is genetic."),
    ("The homes will be built, with work starting next year.", "Construction is expected to start next year."),
])
def test_forecasts_facts_negations_and_ing_forms_are_not_hedges_dropped(sent, ev):
    assert C.certainty_shift(sent, ev) is None


@pytest.mark.parametrize("sent,ev,word", [
    ("Construction will definitely begin in March.", "Chen said construction would begin in March.", "definitely"),
    ("The bridge will certainly reopen next week.", "Officials said the bridge could reopen next week.", "certainly"),
])
def test_certainty_booster_the_source_lacks(sent, ev, word):
    hit = C.certainty_shift(sent, ev)
    assert hit is not None and sent[hit[0] : hit[1]] == word


@pytest.mark.parametrize("sent,ev", [
    ("Construction will definitely begin in March.", "Chen said construction will definitely begin in March."),
    ("The team will certainly win the cup.", "Officials said the bridge could reopen next week."),  # not this evidence
])
def test_certainty_booster_said_by_the_source_or_elsewhere_is_quiet(sent, ev):
    assert C.certainty_shift(sent, ev) is None


def test_may_the_month_is_no_hedge():
    assert C.certainty_shift("The bridge reopened in May.", "The bridge reopened in May after repairs.") is None


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


STADIUM = (
    "The city council voted 7 to 2 on Tuesday to postpone the new stadium project until 2027. "
    "Mayor Ana Reed proposed the delay, citing a budget shortfall of $40 million. "
    "Councillor Tom Lopez opposed it. Officials said construction could resume in 2026. "
    "Some residents welcomed the decision, while local businesses expressed concern. "
    "The stadium was designed by the architect Lena Berg."
)


@pytest.mark.parametrize(
    "summary,flagged,reason",
    [
        ("Mayor Tom Lopez proposed the delay.", "Mayor Tom Lopez", "role"),
        ("All residents welcomed the decision.", "All", "scope"),
        ("Construction will resume in 2026.", "resume", "certainty"),
        ("The stadium was designed by the architect Tom Lopez.", "Tom Lopez", "entity"),
    ],
)
def test_lite_flags_stronger_claims(lite, summary, flagged, reason):
    """Offices, names out of place, quantifiers and hedges: each check's span and reason, and its measured
    floor lifts the sentence over the threshold (lite_calibration.json, from fit_lite.py --floors-only)."""
    r = lite.verify(STADIUM, summary)
    assert r.label == "hallucinated", r
    assert any(sp.text == flagged and sp.reason == reason for sp in r.spans), r.spans


@pytest.mark.parametrize(
    "source,summary",
    [
        (COUNCIL, "The council pushed the vote on the stadium back to March."),
        (COUNCIL, "Maria Lopez proposed the plan and James Reed opposed it."),
        (COUNCIL, "Acme shares climbed 8 percent on Monday."),
        (STADIUM, "Reed, the mayor, pushed for the delay because of a $40 million budget gap."),  # a cited reason
        (STADIUM, "Officials said building work could restart in 2026."),  # the hedge kept
        (STADIUM, "Some residents were pleased with the decision."),
    ],
)
def test_lite_leaves_faithful_rewordings_unflagged(lite, source, summary):
    r = lite.verify(source, summary)
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
