"""The training pool: each loader on a tiny fixture in its set's own format, the licence filter, dedup,
the eval-document drop, (window, sentence) pairs and the token-id export.

Fixtures (synthetic text) live in tests/fixtures/pool/ with each set's folder layout;
tests/fixtures/pool/make_fixtures.py rewrites them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from halluguard.pool import LOADERS, SOURCES, EvalDocIndex, PoolPair, dedup, drop_eval_documents, load_pool, load_source, ship_only
from halluguard.pool.build import TableConfig, build_table, encode_pairs, export_npz, format_report, minilm_tokenizer
from halluguard.pool.filters import cap_sources
from halluguard.pool.records import detok, doc_key, fold
from halluguard.pool.summaries import parse_summacoz_prompt
from halluguard.pool.windows import WindowRetriever, sentences, to_sentence_pairs

FIX = Path(__file__).parent / "fixtures" / "pool"


def by_hyp(pairs):
    return {(p.hypothesis, p.premise[:20]): p for p in pairs}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_every_loader_reads_its_fixture(name):
    pairs = load_source(name, FIX)
    assert pairs, f"{name} read nothing"
    info = SOURCES[name]
    for p in pairs:
        assert p.label in (0, 1) and p.premise.strip() and p.hypothesis.strip()
        assert p.source_set == name and p.licence == info.licence and p.ship_ok == info.ship_ok
        assert p.doc_key == doc_key(p.premise)
        for a, b in p.spans:
            assert p.hypothesis[a:b].strip() == p.hypothesis[a:b] != ""


# (set, hypothesis) -> expected label: one row per label mapping the loaders document.
EXPECTED = [
    ("esnli", "An animal is outside.", 0), ("esnli", "A cat sleeps.", 1), ("esnli", "The men are chefs.", 1),
    ("cad_snli", "A girl sleeps.", 1), ("taxinli", "The shop opens in the morning.", 0),
    ("rte", "The bridge is new.", 1), ("rte", "The fair ended.", 0),  # val.tsv has no header row
    ("conjnli", "He sang.", 0), ("conjnli", "Tea is served.", 1),
    ("breaking_nli", "A man holds a blue cup.", 1), ("med", "No cat sleeps on mats.", 1), ("help", "I bought eggs", 0),
    ("fever", "Brindle is in Wessex.", 0), ("fever", "The Kestrel is a 2005 film.", 1),
    ("covidfact", "Masks raise spread", 1), ("healthver", "Zinc cures colds", 1), ("healthver", "Sleep helps recovery", 0),
    ("begin", "it is the deepest in Europe.", 1), ("begin", "it is 40 metres deep.", 0),
    ("faithdial", "It is deep, 40 metres.", 0), ("faithdial", "I swim there daily.", 1), ("faithdial", "It is 90 metres deep.", 1),
    ("q2", "the lake is shallow.", 1), ("summacoz", "Ravi Shah proposed the plan.", 1),
    ("summacoz", "The budget gives 3 million pounds to the library.", 0),
    ("summacoz", "The budget gives 5 million pounds to the library.", 1),
    ("polytope", "the council approved a budget.", 0), ("polytope", "the council approved a budget. it gives 9 million pounds.", 1),
    ("qags", "The mayor opposed it.", 1), ("falke", "the council rejected a budget.", 1),
]


@pytest.mark.parametrize("name,hyp,label", EXPECTED)
def test_label_mapping(name, hyp, label):
    got = {p.hypothesis: p.label for p in load_source(name, FIX)}
    assert got[hyp] == label


def test_skipped_rows_and_detokenisation():
    begin = [p.hypothesis for p in load_source("begin", FIX)]
    assert "cool!" not in begin and len(begin) == 2  # Generic is no claim
    assert "Nice." not in [p.hypothesis for p in load_source("faithdial", FIX)]
    fever = load_source("fever", FIX)[0]
    assert fever.premise == "Brindle is a town in (northern) Wessex."
    assert detok("obama 's plan , `` big '' .") == 'obama\'s plan, "big".'
    climate = load_source("climate_fever", FIX)
    assert Counter(p.label for p in climate) == Counter({0: 1, 1: 1})  # NOT_ENOUGH_INFO -> 1
    gpt = {p.kind: p.label for p in load_source("factcheck_gpt", FIX)}
    assert gpt == {"completely-support": 0, "irrelevant": 1}


def test_span_annotations_point_at_the_marked_words():
    wice = [p for p in load_source("wice", FIX) if p.spans]
    assert {p.hypothesis[a:b] for p in wice for a, b in p.spans} == {"2019"}
    assert wice[0].premise.startswith("Holt was elected mayor.")  # the cited sentences only
    entfa = load_source("entfa", FIX)[0]
    assert [entfa.hypothesis[a:b] for a, b in entfa.spans] == ["Ravi Shah"]
    agg = {p.hypothesis: [p.hypothesis[a:b] for a, b in p.spans] for p in load_source("aggrefact_cliff_goyal", FIX)}
    assert agg["Ravi Shah backed the plan on Friday."] == ["Friday"]
    assert agg["The budget is 3 million euros."] == ["euros"]  # Goyal21 nests the phrases one level deeper


def test_fib_item_gives_two_pairs_and_strips_sentence_tags():
    fib = load_source("fib", FIX)
    assert Counter(p.kind for p in fib) == Counter({"xsum/fib/bart_distractors": 2, "cnn_dm/factcc/negation": 2})
    cnn = [p for p in fib if p.kind.startswith("cnn_dm")]
    assert sorted(p.label for p in cnn) == [0, 1]
    for p in cnn:
        assert "<t>" not in p.hypothesis and p.level == "summary"
        assert len(p.meta["summary_sents"]) == 2
    assert cnn[0].premise.startswith("the town council of brindle approved a new budget on monday.")


def test_summacoz_prompt_parser_both_layouts_and_ignores_inline_tags():
    tagged = (FIX / "NKWBTB+SummaCoz/data/positive/factcc/1.txt").read_text()
    art, summ = parse_summacoz_prompt(tagged)
    assert art.startswith("The town council of Brindle") and summ == "The budget gives 3 million pounds to the library."
    plain = (FIX / "NKWBTB+SummaCoz/data/annot/cogensumm/3.txt").read_text()
    art, summ = parse_summacoz_prompt(plain)
    assert summ == "Ravi Shah proposed the plan." and art.endswith("may start in June.")
    assert parse_summacoz_prompt("<s>[INST] nothing here [/INST]") is None


def test_polytope_relabels_omission_only_as_faithful():
    poly = {p.kind: p.label for p in load_source("polytope", FIX)}
    assert poly == {"Omission": 0, "Inaccuracy_internal+Omission": 1}


def test_licence_filter():
    pool = load_pool(FIX)
    analysis = {n for n, s in SOURCES.items() if not s.ship_ok}
    assert analysis >= {"rte", "covidfact", "climate_fever", "healthver", "qags", "falke", "entfa", "aggrefact_cliff_goyal"}
    shipped = ship_only(pool)
    assert shipped and not {p.source_set for p in shipped} & analysis
    assert len(ship_only(pool, include_analysis=True)) == len(pool)
    assert {p.source_set for p in load_pool(FIX, include_analysis=False)} == {p.source_set for p in shipped}
    with pytest.raises(ValueError, match="unknown pool set"):
        load_pool(FIX, sources=["nope"])


def _pp(prem, hyp, label, src="esnli"):
    return PoolPair(prem, hyp, label, src, "x", True, doc_key(prem))


def test_dedup_normalises_and_drops_conflicts():
    pairs = [_pp("A dog runs .", "An animal runs .", 0), _pp("a dog runs.", "An animal  runs.", 0),
             _pp("A cat sits.", "A cat stands.", 1), _pp("A cat sits .", "A cat stands .", 0),
             _pp("A bird sings.", "A bird is loud.", 1)]
    kept, stats = dedup(pairs)
    assert [p.hypothesis for p in kept] == ["An animal runs .", "A bird is loud."]
    assert stats == {"duplicates": 1, "conflicting": 2}
    # The fixtures repeat an e-SNLI pair in the counterfactual set with another label.
    kept, stats = dedup(load_pool(FIX, sources=["esnli", "cad_snli"]))
    assert stats["conflicting"] == 3 and all(p.hypothesis != "An animal is outside." for p in kept)


DOC = ("The town council of Brindle approved a new budget on Monday. The budget gives 3 million pounds to the library. "
       "Mayor Lena Holt proposed the plan, and councillor Ravi Shah opposed it. Shop owners said the road works may "
       "start in June. The works will close the high street for two months, the council said.")


def test_eval_document_drop_by_key_and_containment():
    idx = EvalDocIndex()
    idx.add("frank", [DOC + " Residents can comment on the plan until the end of the month at the town hall."])
    tokenised = DOC.lower().replace(".", " .").replace(",", " ,")
    truncated_late = DOC[DOC.index("Mayor"):]  # a later part of the same article: no key match, containment does it
    other = ("A storm closed the harbour at Kelby for three days last week, and fishing boats stayed in port while "
             "the coastguard warned sailors to keep away from the cliffs near the old lighthouse on the north shore.")
    pairs = [PoolPair(d, "A summary.", 0, "fib", "x", True, doc_key(d), level="summary")
             for d in (tokenised, truncated_late, other)]
    pairs.append(_pp("A dog runs.", "An animal runs.", 0))  # short premises are never articles
    kept, dropped = drop_eval_documents(pairs, idx, min_words=20)
    assert [p.premise for p in kept] == [other, "A dog runs."]
    assert dropped["by_source"] == Counter({"fib": 2}) and dropped["by_eval_set"] == Counter({"frank": 2})


def test_a_longer_pool_copy_of_a_short_eval_document_is_dropped():
    idx = EvalDocIndex()
    idx.add("xsumfaith", [DOC[:DOC.index("Shop owners")]])  # the eval set keeps only the first sentences
    longer = DOC + " " + " ".join(f"Later paragraph {i} talks about the weather and the sea at length today." for i in range(30))
    kept, dropped = drop_eval_documents([PoolPair(longer, "A summary.", 0, "fib", "x", True, doc_key(longer + "x"),
                                                  level="summary")], idx)
    assert kept == [] and dropped["by_eval_set"] == Counter({"xsumfaith": 1})


def test_fixture_pool_documents_are_dropped_when_an_eval_set_holds_them():
    idx = EvalDocIndex()
    idx.add("xsumfaith", [(FIX / "NKWBTB+SummaCoz/data/annot/summeval/2.txt").read_text().split("<Article>\n")[1]
                          .split("\n</Article>")[0]])
    pool = load_pool(FIX, sources=["fib", "summacoz", "polytope", "esnli"])
    kept, dropped = drop_eval_documents(pool, idx)
    # Every summary set reuses the one fixture article (cased, lower-cased and tokenised copies).
    assert dropped["by_source"] == Counter({"fib": 4, "summacoz": 3, "polytope": 2})
    assert {p.source_set for p in kept} == {"esnli"}


def test_cap_sources_is_seeded_and_keeps_order():
    pairs = [_pp(f"Premise {i}.", f"Hyp {i}.", i % 2, "med" if i < 10 else "esnli") for i in range(20)]
    a = cap_sources(pairs, {"med": 3}, seed=1)
    assert a == cap_sources(pairs, {"med": 3}, seed=1)
    assert Counter(p.source_set for p in a) == Counter({"med": 3, "esnli": 10})
    assert a == [p for p in pairs if p in a]


def test_sentence_splitter_handles_lowercased_corpora():
    low = "the council met on monday . it approved the plan . mr. holt left ."
    assert len(sentences(detok(low))) == 3
    assert [DOC[a:b] for a, b in sentences(DOC)][1] == "The budget gives 3 million pounds to the library."


def test_window_retriever_picks_the_window_holding_the_claim():
    r = WindowRetriever(DOC, k=3)
    assert "Ravi Shah opposed it" in r.best("Councillor Ravi Shah was against the plan of Lena Holt.")
    assert "the high street" in r.best("The high street will be closed for two months.")
    assert len(WindowRetriever("One sentence only.", 3).best("x")) > 0


def test_to_sentence_pairs_places_labels_on_sentences():
    fib = [p for p in load_source("fib", FIX) if p.kind.startswith("cnn_dm")]
    out = to_sentence_pairs(fib)
    labels = Counter((p.hypothesis, p.label) for p in out)
    # The shared first sentence is supported (it is in the faithful summary); the negated one carries the 1.
    assert labels == Counter({("the council approved a new budget.", 0): 2, ("lena holt proposed the plan.", 0): 1,
                              ("lena holt did not propose the plan.", 1): 1})
    bad = next(p for p in out if p.label == 1)
    assert "lena holt proposed the plan" in bad.premise and bad.level == "pair"
    # Two unplaceable bad sentences: dropped, or both 1 with ambiguous="all".
    two_bad = PoolPair(DOC, "Holt resigned. Shah was arrested.", 1, "fib", "x", True, doc_key(DOC), level="summary")
    assert to_sentence_pairs([two_bad]) == []
    assert [p.label for p in to_sentence_pairs([two_bad], ambiguous="all")] == [1, 1]


def test_copied_sentences_are_supported_and_extractive_distractors_skipped():
    # The second sentence is a quoted copy of the document split differently: every trigram occurs there.
    hyp = 'Holt resigned. "the budget gives 3 million pounds'
    p = PoolPair(DOC, hyp, 1, "fib", "x", True, doc_key(DOC), level="summary", kind="xsum/fib/bart")
    assert [(q.hypothesis, q.label) for q in to_sentence_pairs([p])] == [
        ("Holt resigned.", 1), ('"the budget gives 3 million pounds', 0)]
    extractive = p.with_(kind="cnn_dm/fib/lead3_distractors")
    assert to_sentence_pairs([extractive]) == []
    assert to_sentence_pairs([extractive.with_(label=0)]) != []


def test_spans_decide_sentence_labels_and_move_with_the_sentence():
    hyp = "The council approved a budget. Ravi Shah backed the plan on Friday."
    p = PoolPair(DOC, hyp, 1, "aggrefact_cliff_goyal", "x", False, doc_key(DOC),
                 spans=((hyp.index("Friday"), hyp.index("Friday") + 6),), level="summary")
    out = to_sentence_pairs([p])
    assert [(q.label, [q.hypothesis[a:b] for a, b in q.spans]) for q in out] == [(0, []), (1, ["Friday"])]


def test_long_evidence_is_cut_to_its_best_window():
    long_ev = " ".join(f"Filler sentence number {i} talks about nothing in particular at all." for i in range(30))
    long_ev += " The lake near Brindle is 40 metres deep."
    p = PoolPair(long_ev, "The lake is 40 metres deep.", 0, "factcheck_gpt", "x", True, doc_key(long_ev))
    (q,) = to_sentence_pairs([p], max_premise_words=40)
    assert "40 metres deep" in q.premise and len(q.premise.split()) <= 40


def test_build_table_and_export(tmp_path):
    cfg = TableConfig(pool_dir=str(FIX), synthetic_per_doc=3, seed=0)
    pairs, rep = build_table(cfg, eval_index=EvalDocIndex())
    assert not {p.source_set for p in pairs} & {n for n, s in SOURCES.items() if not s.ship_ok}
    assert all(p.level == "pair" for p in pairs)
    assert rep["final"]["synthetic"] == sum(rep["synthetic_by_kind"].values()) > 0
    again, _ = build_table(cfg, eval_index=EvalDocIndex())
    assert [(p.premise, p.hypothesis, p.label) for p in again] == [(p.premise, p.hypothesis, p.label) for p in pairs]
    assert "| fib | yes |" in format_report(rep)

    info = export_npz(pairs, tmp_path / "t.npz", max_len=64)
    with np.load(tmp_path / "t.npz", allow_pickle=False) as z:
        ids, tl, labels = z["input_ids"], z["token_labels"], z["labels"]
        assert ids.dtype == np.uint16 and ids.shape == (len(pairs), 64) and tl.shape == ids.shape
        assert list(labels) == [p.label for p in pairs]
        assert set(z["source_names"]) == {p.source_set for p in pairs} and len(z["group"]) == len(pairs)
    assert info["rows"] == len(pairs)
    assert (ids[:, 0] == 101).all()
    for row, labs, p in zip(ids, tl, pairs):
        sep = np.flatnonzero(row == 102)
        assert len(sep) == 2
        assert (labs[: sep[0] + 1] == -1).all() and (labs[sep[1]:] == -1).all()  # premise and padding unlabelled
        hyp_labs = labs[sep[0] + 1: sep[1]]
        if p.label == 0:
            assert (hyp_labs == 0).all()
        elif not p.spans:
            assert (hyp_labs == -1).all()
        else:
            assert (hyp_labs == 1).any()


def test_export_cuts_the_premise_first_and_marks_changed_pieces():
    tok = minilm_tokenizer()
    prem = " ".join(["The committee met again in the old hall to talk."] * 20)
    hyp = "The committee met on Friday."
    i = hyp.index("Friday")
    p = PoolPair(prem, hyp, 1, "synthetic", "x", True, "k", spans=((i, i + 6),))
    arr = encode_pairs([p], tok, max_len=32)
    row, labs = arr["input_ids"][0], arr["token_labels"][0]
    sep = np.flatnonzero(row == tok.sep_token_id)
    hyp_ids = tok(hyp, add_special_tokens=False)["input_ids"]
    assert list(row[sep[0] + 1: sep[1]]) == hyp_ids  # the whole hypothesis survives
    assert (row != 0).sum() == 32
    marked = [tok.convert_ids_to_tokens(int(t)) for t, lab in zip(row, labs) if lab == 1]
    assert marked == ["friday"]
    with pytest.raises(ValueError, match="max_len"):
        encode_pairs([p], tok, max_len=4)


def test_fold_ignores_tokenisation():
    assert fold("Washington (CNN)President Obama's plan") == fold("washington ( cnn ) president obama 's plan")


def test_build_command_writes_export_and_report(tmp_path):
    from halluguard.pool.build import main

    out = tmp_path / "pairs.npz"
    res = main(["--out", str(out), "--pool_dir", str(FIX), "--drop_eval_docs", "false", "--synthetic_per_doc", "2",
                "--max_len", "48", "--caps", '{"med": 1}'])
    assert out.exists() and (tmp_path / "pairs.md").read_text().startswith("| set |")
    assert res["report"]["after_caps"]["med"] == 1 and res["export"]["rows"] > 0
    with np.load(out) as z:
        assert z["input_ids"].shape[1] == 48


def test_real_eval_sets_feed_the_index():
    from halluguard.datasets import load_set, locate_set
    from halluguard.pool.filters import eval_index

    if locate_set("frank") is None:
        pytest.skip("FRANK is not on this machine")
    idx = eval_index()
    doc = load_set("frank:test")[0].source
    assert idx.match(doc) == "frank"
    assert idx.match(doc[len(doc) // 3:]) == "frank"  # a later part of the same article
    assert idx.match(DOC) is None
