"""Synthetic errors and faithful rewrites: spans cover exactly the changed characters, faithful
rewrites keep every number and name, the output is deterministic, and the generator writes the
issue's hand-written subtle cases."""

from __future__ import annotations

import random
import re

import pytest

from halluguard.perturb import (FAITHFUL_KINDS, KINDS, Edit, any_edit, apply, generate_pairs, names, perturb)
from halluguard.pool.records import PoolPair, doc_key

DOC = ("The town council of Merrow postponed the vote on the harbour plan on Monday. Mayor Ana Lopez proposed the "
       "plan, and councillor Tom Reyes opposed it. Shares of Harbour Corp rose 8 percent in 2015 after the results. "
       "The shop owners may get 4.5 million euros, officials said. The new rules did not reduce costs, the chief "
       "financial officer said. On Tuesday, the council approved the budget of 12 million euros. The mayor, who was "
       "elected last year, signed the order. Harbour Corp hired 1,200 workers in March.")
SENTS = re.split(r"(?<=\.) ", DOC)


def check_spans(e: Edit) -> None:
    """Outside its span the new text is the original, and the span holds no unchanged word at its edges."""
    assert e.spans, e
    for a, b in e.spans:
        assert 0 <= a < b <= len(e.text)
        assert e.text[a:b] == e.text[a:b].strip()
    if len(e.spans) == 1:
        (a, b), o = e.spans[0], e.original
        head, tail = e.text[:a].rstrip(), e.text[b:].lstrip()
        assert o.startswith(head) and o.endswith(tail)
        region, new = o[len(head):len(o) - len(tail)].strip(), e.text[a:b]
        assert region != new
        if region and new not in region:  # a deletion marks the word left behind ("is not" -> "is")
            assert region.split()[0] != new.split()[0] or region.split()[-1] != new.split()[-1]


@pytest.mark.parametrize("kind", KINDS)
def test_every_error_kind_applies_somewhere_and_marks_exactly_its_change(kind):
    edits = [perturb(s, kind, random.Random(i), DOC) for i, s in enumerate(SENTS)]
    edits = [e for e in edits if e is not None]
    assert edits, f"{kind} applied to no sentence"
    for e in edits:
        assert e.label == 1 and e.kind == kind and e.text != e.original
        check_spans(e)


def test_role_swap_marks_both_names():
    e = perturb("Mayor Ana Lopez proposed the plan, and councillor Tom Reyes opposed it.", "role", random.Random(0))
    assert e.text == "Mayor Tom Reyes proposed the plan, and councillor Ana Lopez opposed it."
    assert [e.text[a:b] for a, b in e.spans] == ["Tom Reyes", "Ana Lopez"]


@pytest.mark.parametrize("sentence,kind,expected,marked", [
    ("The council postponed the vote.", "negation", "The council did not postpone the vote.", ["did not postpone"]),
    ("The new rules did not reduce costs.", "negation", "The new rules also reduced costs.", ["also reduced"]),
    ("The shop owners may get 4.5 million euros.", "negation", "The shop owners may not get 4.5 million euros.", ["not"]),
    ("The council is not ready.", "negation", "The council is ready.", ["is"]),
    ("Shares rose 8 percent.", "antonym", "Shares fell 8 percent.", ["fell"]),
    ("The shop owners may get 4.5 million euros.", "modality", "The shop owners will get 4.5 million euros.", ["will"]),
])
def test_subtle_cases_of_the_issue(sentence, kind, expected, marked):
    e = perturb(sentence, kind, random.Random(0))
    assert e.text == expected and [e.text[a:b] for a, b in e.spans] == marked


def test_did_not_becomes_also_did():
    texts = {perturb("The new rules did not reduce costs.", "negation", random.Random(i)).text for i in range(20)}
    assert texts == {"The new rules reduced costs.", "The new rules also reduced costs."}


def test_added_cause_is_marked_and_comes_from_the_document():
    s = "Shares of Harbour Corp rose 8 percent."
    seen = set()
    for seed in range(12):
        e = perturb(s, "cause", random.Random(seed), DOC)
        (a, b), = e.spans
        assert e.text[:a].rstrip() == s[:-1] and e.text[b:] == "."
        seen.add(e.text[a:b].split()[0])
    assert seen & {"because", "due", "after", "since", "as"}


def test_swaps_prefer_names_of_the_same_type():
    s = "In Merrow, Mayor Ana Lopez beat Tom Reyes in the vote."
    for seed in range(8):
        e = perturb(s, "role", random.Random(seed))
        assert e.text == "In Merrow, Mayor Tom Reyes beat Ana Lopez in the vote."
    doc = "Ana Lopez met Tom Reyes in Merrow. Harbour Corp paid. Kelby is near Merrow."
    for seed in range(8):
        e = perturb("Ana Lopez spoke.", "entity", random.Random(seed), doc)
        assert e.text == "Tom Reyes spoke."


def test_entity_swap_uses_another_name_of_the_document():
    e = perturb("Mayor Ana Lopez signed the order.", "entity", random.Random(3), DOC)
    (a, b), = e.spans
    assert e.text[a:b] in {n for _, _, n in names(DOC)} and e.text[a:b] != "Ana Lopez"
    assert perturb("Mayor Ana Lopez signed the order.", "entity", random.Random(3), "") is None  # no other name


def _numbers(text):
    return sorted(re.findall(r"\d[\d,.]*\d|\d", text))


def _names(text):
    return sorted(w for _, _, n in names(text) for w in n.split())


@pytest.mark.parametrize("kind", FAITHFUL_KINDS)
def test_faithful_rewrites_keep_every_number_and_name(kind):
    produced = 0
    for s in SENTS + ["The shop owners said the vote was postponed, officials said.",
                      "The chief financial officer purchased 300 shares.", "The council approved the plan."]:
        for seed in range(5):
            e = perturb(s, kind, random.Random(seed), DOC)
            if e is None:
                continue
            produced += 1
            assert e.label == 0 and e.text != e.original
            assert _numbers(e.text) == _numbers(s), (s, e.text)
            for n in _names(s):
                assert n in e.text, (n, e.text)
    assert produced, f"{kind} produced nothing"


@pytest.mark.parametrize("sentence,expected", [
    ("The council postponed the vote.", "The council pushed back the vote."),
    ("The shop owners were angry.", "The shopkeepers were angry."),
    ("The chief financial officer resigned.", "The finance chief resigned."),
])
def test_curated_paraphrases(sentence, expected):
    assert perturb(sentence, "synonym", random.Random(0)).text == expected


def test_reorder_passive_and_drop_clause():
    assert perturb("On Tuesday, the council approved the budget.", "reorder", random.Random(0)).text == \
        "The council approved the budget on Tuesday."
    assert perturb("The plan was sound, officials said.", "reorder", random.Random(0)).text == \
        "Officials said the plan was sound."
    assert perturb("The council approved the budget.", "passive", random.Random(0)).text == \
        "The budget was approved by the council."
    assert perturb("The mayor, who was elected last year, signed the order.", "drop_clause", random.Random(0)).text == \
        "The mayor signed the order."
    # A clause with a name or a number is essential: it is never dropped.
    assert perturb("The mayor, who beat Tom Reyes, signed the order.", "drop_clause", random.Random(0)) is None


def test_number_format_rewrites_keep_the_quantity():
    assert perturb("Shares rose 8 percent.", "number_format", random.Random(0)).text == "Shares rose 8%."
    assert perturb("Shares rose 8.5%.", "number_format", random.Random(0)).text == "Shares rose 8.5 percent."
    assert perturb("It cost $5 million.", "number_format", random.Random(0)).text == "It cost 5 million dollars."


def test_apply_reports_spans_in_the_new_text():
    text, spans = apply("abc def ghi", [(8, 11, "xyz12"), (0, 3, "A")])
    assert text == "A def xyz12" and [text[a:b] for a, b in spans] == ["A", "xyz12"]
    with pytest.raises(ValueError, match="overlapping"):
        apply("abcdef", [(0, 3, "x"), (2, 4, "y")])


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown kind"):
        perturb("A sentence.", "teleport")


def _docs():
    return [PoolPair(DOC, "A summary.", 0, "fib", "CC BY 4.0", True, doc_key(DOC), level="summary"),
            PoolPair(DOC.replace("Merrow", "Kelby"), "x", 0, "wice", "ODC-BY", True, doc_key("k"), level="summary")]


def test_generate_pairs_is_deterministic_and_labelled():
    a = generate_pairs(_docs(), per_doc=6, seed=7)
    b = generate_pairs(_docs(), per_doc=6, seed=7)
    c = generate_pairs(_docs(), per_doc=6, seed=8)
    key = [(p.premise, p.hypothesis, p.label, p.spans, p.kind) for p in a]
    assert key == [(p.premise, p.hypothesis, p.label, p.spans, p.kind) for p in b]
    assert key != [(p.premise, p.hypothesis, p.label, p.spans, p.kind) for p in c]
    assert a and {p.source_set for p in a} == {"synthetic"} and all(p.synthetic and p.ship_ok for p in a)
    for p in a:
        assert p.kind.split("/")[0] == ("error" if p.label else "faithful")
        assert p.meta["original"] in p.premise or p.label == 1 or p.kind != "faithful/synonym"
        if p.label == 1:
            assert p.spans
    assert len(generate_pairs(_docs(), per_doc=6, seed=7, max_pairs=3)) == 3
    with pytest.raises(ValueError, match="faithful_share"):
        generate_pairs(_docs(), faithful_share=2.0)


def test_generate_pairs_restricted_to_the_subtle_kinds():
    out = generate_pairs(_docs(), per_doc=8, seed=0, kinds=("negation", "role", "cause", "synonym"))
    assert out and {p.kind for p in out} <= {"error/negation", "error/role", "error/cause", "faithful/synonym"}
    with pytest.raises(ValueError, match="unknown kinds"):
        generate_pairs(_docs(), kinds=("negation", "teleport"))


def test_any_edit_respects_the_requested_label():
    rng = random.Random(0)
    for s in SENTS:
        e = any_edit(s, rng, faithful=False, context=DOC)
        assert e is None or e.label == 1
        f = any_edit(s, rng, faithful=True, context=DOC)
        assert f is None or f.label == 0
