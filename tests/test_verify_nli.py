"""The `nli` verifier on tiny in-process classifiers, plus the shared chunking / report helpers."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from halluguard.verify import get_verifier
from halluguard.verify._common import build_report, chunk_source, split_sentences
from halluguard.verify.nli import NLIVerifier, resolve_support_label

SOURCE = (
    "The city council approved a budget of 4.2 million dollars on Monday. "
    "The money will repair two bridges and a school roof. "
    "Mayor Ana Ruiz said work starts in March. "
    "Opposition members voted against the plan."
)
SUMMARY = "The council approved a 4.2 million dollar budget. It will fix bridges. Work starts in June."


def check_report(report, source, summary, overall_is_max=True):
    """Every offset slices the text it names; verdicts, scores and label agree. `overall_is_max`: the
    summary score is the worst sentence's (nli, judge); dpo-reward scores the whole summary instead."""
    assert report.sentences, "no sentences"
    for s in report.sentences:
        assert summary[s.start : s.end] == s.text
        assert s.verdict in ("supported", "unsupported", "unknown")
        for e in s.evidence:
            assert source[e.start : e.end] == e.text
        for sp in s.spans:
            assert summary[sp.start : sp.end] == sp.text
            assert s.start <= sp.start < sp.end <= s.end
        if s.verdict != "unknown":
            assert 0.0 <= s.score <= 1.0
            assert (s.verdict == "unsupported") == (s.score >= report.threshold)
    for sp in report.spans:
        assert summary[sp.start : sp.end] == sp.text
    known = [s.score for s in report.sentences if s.verdict != "unknown"]
    if known and overall_is_max:
        assert report.score == pytest.approx(max(known), abs=1e-6)
    if report.label == "hallucinated":
        assert report.score >= report.threshold


# ------------------------------------------------------------------------------- label mapping


@pytest.mark.parametrize(
    "id2label, n, expected",
    [
        ({0: "hallucinated", 1: "consistent"}, 2, ("softmax", 1)),
        ({0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"}, 3, ("softmax", 2)),
        ({0: "entailment", 1: "neutral", 2: "contradiction"}, 3, ("softmax", 0)),
        ({0: "entailment", 1: "not_entailment"}, 2, ("softmax", 0)),
        ({0: "inconsistent", 1: "consistent"}, 2, ("softmax", 1)),
        ({0: "Supported", 1: "Unsupported"}, 2, ("softmax", 0)),
        ({0: "hallucination", 1: "other"}, 2, ("softmax", 1)),
        ({0: "LABEL_0", 1: "LABEL_1"}, 2, ("softmax", 1)),  # MiniCheck convention
        ({0: "LABEL_0"}, 1, ("sigmoid", 0)),
        ({0: "hallucination_score"}, 1, ("sigmoid-inverted", 0)),
    ],
)
def test_support_label_from_names(id2label, n, expected):
    mode, idx, _ = resolve_support_label(id2label, n)
    assert (mode, idx) == expected


def test_support_label_override_and_errors():
    mnli = {0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"}
    assert resolve_support_label(mnli, 3, "neutral")[:2] == ("softmax", 1)
    assert resolve_support_label(mnli, 3, 0)[:2] == ("softmax", 0)
    assert resolve_support_label({0: "LABEL_0"}, 1, "invert")[:2] == ("sigmoid-inverted", 0)
    with pytest.raises(ValueError, match="support_label"):
        resolve_support_label({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, 3)
    with pytest.raises(ValueError, match="not one of"):
        resolve_support_label(mnli, 3, "entailed")
    with pytest.raises(ValueError, match="out of range"):
        resolve_support_label(mnli, 3, 5)


def _classifier(path, num_labels, id2label, seed=1):
    from conftest import real_tokenizer
    from transformers import AutoModelForSequenceClassification, BertConfig

    tok = real_tokenizer()
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                     num_attention_heads=2, max_position_embeddings=512, num_labels=num_labels,
                     id2label=id2label, label2id={v: k for k, v in id2label.items()})
    torch.manual_seed(seed)
    AutoModelForSequenceClassification.from_config(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def _hand_support(v, premise, hypothesis):
    enc = v.tokenizer(premise, hypothesis, return_tensors="pt")
    enc = {k: t for k, t in enc.items() if k in v.tokenizer.model_input_names}
    with torch.no_grad():
        logits = v.model(**enc).logits[0].float()
    return logits


@pytest.mark.parametrize("kind", ["2-label", "3-label", "1-logit"])
def test_head_types_match_hand_computation(kind, tiny_classifier_path, tmp_path):
    if kind == "2-label":
        path = tiny_classifier_path
    elif kind == "3-label":
        path = _classifier(tmp_path / "mnli", 3, {0: "contradiction", 1: "neutral", 2: "entailment"})
    else:
        path = _classifier(tmp_path / "one", 1, {0: "LABEL_0"})
    v = get_verifier("nli", model=path)
    report = v.verify(SOURCE, SUMMARY)
    check_report(report, SOURCE, SUMMARY)
    first = report.sentences[0]
    logits = _hand_support(v, SOURCE, first.text)  # the short source is one chunk
    if kind == "2-label":
        support = torch.softmax(logits, -1)[1].item()
    elif kind == "3-label":
        support = torch.softmax(logits, -1)[2].item()
    else:
        support = torch.sigmoid(logits[0]).item()
    assert first.score == pytest.approx(1 - support, abs=1e-5)
    assert first.evidence[-1].score == pytest.approx(support, abs=1e-5)  # the chunk comes last


def test_support_label_override_changes_the_score(tiny_classifier_path):
    default = get_verifier("nli", model=tiny_classifier_path).verify(SOURCE, SUMMARY)
    flipped = get_verifier("nli", model=tiny_classifier_path, support_label="hallucinated").verify(SOURCE, SUMMARY)
    for a, b in zip(default.sentences, flipped.sentences):
        assert a.score + b.score == pytest.approx(1.0, abs=1e-5)


# ------------------------------------------------------------------------------- long sources


def test_chunks_cover_the_source_with_overlap(tokenizer):
    source = " ".join(f"Sentence {i} mentions item {i * 7} near the river." for i in range(60))
    chunks = chunk_source(source, tokenizer, max_tokens=40, overlap_tokens=12)
    assert len(chunks) > 5
    for c in chunks:
        assert source[c.start : c.end] == c.text
        assert len(tokenizer(c.text, add_special_tokens=False)["input_ids"]) <= 40
    for a, b in itertools.pairwise(chunks):
        assert b.start < a.end, "consecutive chunks overlap"
        assert b.start > a.start, "every chunk moves forward"
    assert chunks[0].start == 0 and chunks[-1].end == len(source)
    # A single sentence longer than the budget is cut by tokens, still with exact offsets.
    one = "word " * 300
    pieces = chunk_source(one, tokenizer, max_tokens=50)
    assert len(pieces) == 6 and all(one[p.start : p.end] == p.text for p in pieces)


def test_long_source_takes_max_support_over_chunks(tiny_classifier_path):
    source = " ".join(f"Report {i} says the harbour handled {i * 13} ships in year {1990 + i}." for i in range(40))
    summary = "The harbour handled 52 ships in 1994. Ships came."
    v = get_verifier("nli", model=tiny_classifier_path, chunk_tokens=48, chunk_overlap=16)
    report = v.verify(source, summary)
    check_report(report, source, summary)
    assert report.extra["chunks"] > 5
    chunks = chunk_source(source, v.tokenizer, v._chunk_budget(split_sentences(summary)), 16)
    assert len(chunks) == report.extra["chunks"]
    for s in report.sentences:
        probs = v.support_probs([c.text for c in chunks], [s.text] * len(chunks))
        best = max(range(len(chunks)), key=probs.__getitem__)
        assert s.score == pytest.approx(1 - probs[best], abs=1e-5)
        assert (s.evidence[-1].start, s.evidence[-1].end) == (chunks[best].start, chunks[best].end)


def test_50k_word_source_is_chunked_to_the_model_context(tiny_classifier_path):
    # The tiny BERT has 512 positions: without chunking this source would not even run.
    words = ["the", "port", "of", "Lorem", "handled", "many", "ships", "and", "cargo", "during", "the", "long"]
    source = " ".join(f"{' '.join(words)} number {i}." for i in range(50_000 // (len(words) + 2)))
    assert len(source.split()) >= 49_000
    v = get_verifier("nli", model=tiny_classifier_path, batch_size=64)
    report = v.verify(source, "The port handled ships.")
    check_report(report, source, "The port handled ships.")
    assert report.extra["chunks"] > 100


# ------------------------------------------------------------------------------- batch, errors, HHEM


def test_verify_batch_progress_and_bad_rows(tiny_classifier_path):
    v = get_verifier("nli", model=tiny_classifier_path)
    seen = []
    reports = v.verify_batch([SOURCE] * 3, [SUMMARY, "Work starts in March.", "Bridges."],
                             progress=lambda d, t: seen.append((d, t)), group_size=2)
    assert len(reports) == 3 and seen[-1] == (3, 3)
    single = v.verify(SOURCE, "Work starts in March.")
    assert reports[1].score == pytest.approx(single.score, abs=1e-5)  # batching/padding does not change scores
    assert v.score([SOURCE], [SUMMARY]) == [reports[0].score]
    with pytest.raises(ValueError, match="row 1: summary is empty"):
        v.verify_batch([SOURCE, SOURCE], [SUMMARY, "  "])
    with pytest.raises(ValueError, match="needs a model"):
        get_verifier("nli")
    with pytest.raises(FileNotFoundError):
        get_verifier("nli", model="./no/such/model")


class HHEMv2ForSequenceClassification(torch.nn.Module):
    """Stands in for HHEM-2.1-open's remote code: a `predict(pairs)` returning consistency scores and
    its own tokenizer under the misspelt attribute its repository uses."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenzier = tokenizer
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.config = type("Cfg", (), {"model_type": "HHEMv2", "_name_or_path": "fake-hhem"})()

    def predict(self, pairs):
        return torch.tensor([0.9 if "March" in h and "March" in p else 0.2 for p, h in pairs])


def test_hhem_style_predict_model(tokenizer):
    v = NLIVerifier(HHEMv2ForSequenceClassification(tokenizer))
    assert v.mode == "predict"
    report = v.verify(SOURCE, "Work starts in March. Work starts in June.")
    check_report(report, SOURCE, "Work starts in March. Work starts in June.")
    assert [s.verdict for s in report.sentences] == ["supported", "unsupported"]
    assert report.sentences[1].score == pytest.approx(0.8)
    assert report.label == "hallucinated" and report.score == pytest.approx(0.8)
    assert report.spans[0].text == "Work starts in June."


# ------------------------------------------------------------------------------- report aggregation


def test_build_report_unknown_never_counts_as_supported():
    text = "A is true. B is true. C is true."
    sents = split_sentences(text)
    r = build_report("x", sents, [0.1, None, 0.2], 0.5)
    assert r.label == "unknown" and r.score == pytest.approx(0.2)
    assert r.sentences[1].verdict == "unknown"
    r = build_report("x", sents, [0.1, None, 0.9], 0.5)
    assert r.label == "hallucinated" and [sp.text for sp in r.spans] == ["C is true."]
    r = build_report("x", sents, [None, None, float("nan")], 0.5)
    assert r.label == "unknown" and math.isnan(r.score)
    r = build_report("x", sents, [0.1, 0.2, 0.3], 0.5)
    assert r.label == "faithful" and r.spans == []


def test_nf4_classifier_keeps_its_head_and_pickle_weights_are_refused(tmp_path):
    from halluguard.loading import quantization_available

    path = tmp_path / "cls64"
    from conftest import real_tokenizer
    from transformers import AutoModelForSequenceClassification, BertConfig

    tok = real_tokenizer()
    cfg = BertConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                     num_attention_heads=2, max_position_embeddings=512, num_labels=2,
                     id2label={0: "hallucinated", 1: "consistent"}, label2id={"hallucinated": 0, "consistent": 1})
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    ok, _ = quantization_available("nf4")
    if ok:
        v = get_verifier("nli", model=str(path), quantization="nf4")
        kinds = [type(m).__name__ for m in v.model.modules()]
        assert "Linear4bit" in kinds and type(v.model.classifier).__name__ == "Linear"
        full = get_verifier("nli", model=str(path)).verify(SOURCE, SUMMARY)
        r = v.verify(SOURCE, SUMMARY)
        check_report(r, SOURCE, SUMMARY)
        assert r.score == pytest.approx(full.score, abs=0.05)  # 4-bit is close to full precision
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((path / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ValueError, match="safetensors"):
        get_verifier("nli", model=str(pickled))


REMOTE_CODE = '''
import torch
from transformers import AutoTokenizer, PretrainedConfig, PreTrainedModel


class FakeHHEMConfig(PretrainedConfig):
    model_type = "fakehhem"

    def __init__(self, tokenizer_path="", **kw):
        super().__init__(**kw)
        self.tokenizer_path = tokenizer_path


class FakeHHEMv2ForSequenceClassification(PreTrainedModel):
    config_class = FakeHHEMConfig

    def __init__(self, config):
        super().__init__(config)
        self.w = torch.nn.Linear(1, 1)
        self.tokenzier = AutoTokenizer.from_pretrained(config.tokenizer_path)  # as HHEM: its own tokenizer
        self.post_init()

    def predict(self, pairs):
        return torch.tensor([0.9 if h.split()[-1].strip(".") in p else 0.1 for p, h in pairs])
'''


def test_remote_code_model_needs_opt_in(tmp_path, minilm_path):
    """An HHEM-like repository (code in the checkpoint, no tokenizer files) loads only with
    trust_remote_code=True, then scores through its own predict()."""
    import json

    from safetensors.torch import save_file

    d = tmp_path / "fake_hhem"
    d.mkdir()
    (d / "modeling_fakehhem.py").write_text(REMOTE_CODE)
    (d / "config.json").write_text(json.dumps({
        "model_type": "fakehhem", "architectures": ["FakeHHEMv2ForSequenceClassification"],
        "tokenizer_path": minilm_path,
        "auto_map": {"AutoConfig": "modeling_fakehhem.FakeHHEMConfig",
                     "AutoModelForSequenceClassification": "modeling_fakehhem.FakeHHEMv2ForSequenceClassification"}}))
    save_file({"w.weight": torch.zeros(1, 1), "w.bias": torch.zeros(1)}, str(d / "model.safetensors"))
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        get_verifier("nli", model=str(d))
    v = get_verifier("nli", model=str(d), trust_remote_code=True)
    assert v.mode == "predict"
    summary = "Work starts in March. It ends in June."
    r = v.verify(SOURCE, summary)
    check_report(r, SOURCE, summary)
    assert [s.verdict for s in r.sentences] == ["supported", "unsupported"]


# ------------------------------------------------------------------------------- properties (hypothesis)

_TEXT = st.lists(st.sampled_from(list("ab Z.!?\n\t,1é€'\"") + ["Dr. ", "e.g. ", "3.5 ", "word "]),
                 max_size=120).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_TEXT, size=st.integers(1, 40), overlap=st.integers(0, 30))
def test_sentences_and_chunks_always_slice_the_text(tokenizer, text, size, overlap):
    sents = split_sentences(text)
    for s in sents:
        assert text[s.start : s.end] == s.text and s.text == s.text.strip() and s.text
    assert bool(sents) == bool(text.strip())
    assert all(a.end <= b.start for a, b in itertools.pairwise(sents))
    chunks = chunk_source(text, tokenizer, size, overlap)
    for c in chunks:
        assert text[c.start : c.end] == c.text
    # Every non-space character of every sentence lies in some chunk: nothing of the source is dropped.
    for s in sents:
        for i in range(s.start, s.end):
            assert text[i].isspace() or any(c.start <= i < c.end for c in chunks)


@settings(max_examples=60, deadline=None)
@given(scores=st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=1, max_size=6), thr=st.floats(0.05, 0.95))
def test_report_aggregation_invariants(scores, thr):
    text = " ".join(f"Sentence {i}." for i in range(len(scores)))
    sents = split_sentences(text)
    r = build_report("x", sents, scores, thr)
    known = [s for s in scores if s is not None]
    assert r.label in ("hallucinated", "faithful", "unknown")
    if r.label == "faithful":
        assert len(known) == len(scores) and max(known) < thr
    if any(s >= thr for s in known):
        assert r.label == "hallucinated" and r.spans
    if not known:
        assert r.label == "unknown" and math.isnan(r.score)


def test_sentence_evidence_modes(tiny_classifier_path):
    source = " ".join(f"Report {i} says the harbour handled {i * 13} ships in year {1990 + i}." for i in range(12))
    summary = "The harbour handled 52 ships."
    by_model = get_verifier("nli", model=tiny_classifier_path, sentence_evidence="model").verify(source, summary)
    check_report(by_model, source, summary)
    s = by_model.sentences[0]
    pointer, chunk = s.evidence
    assert chunk.start <= pointer.start < pointer.end <= chunk.end
    v = get_verifier("nli", model=tiny_classifier_path)
    inner = split_sentences(chunk.text)
    probs = v.support_probs([p.text for p in inner], [s.text] * len(inner))
    assert pointer.score == pytest.approx(max(probs), abs=1e-5)  # the model's favourite sentence
    lexical = v.verify(source, summary).sentences[0].evidence[0]
    assert "52" in lexical.text  # shares the most content words
    assert len(get_verifier("nli", model=tiny_classifier_path, sentence_evidence="none")
               .verify(source, summary).sentences[0].evidence) == 1
    with pytest.raises(ValueError, match="sentence_evidence"):
        get_verifier("nli", model=tiny_classifier_path, sentence_evidence="best")


def test_decoder_classifier_without_pad_token(tokenizer):
    """A Llama-style sequence classifier (3-way, no pad token): batching still matches one-by-one."""
    import copy

    from transformers import AutoModelForSequenceClassification, LlamaConfig

    tok = copy.deepcopy(tokenizer)
    tok.pad_token = None
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, num_labels=3,
                      id2label={0: "entailment", 1: "neutral", 2: "contradiction"},
                      label2id={"entailment": 0, "neutral": 1, "contradiction": 2})
    torch.manual_seed(0)
    v = NLIVerifier(AutoModelForSequenceClassification.from_config(cfg), tokenizer=tok)
    assert (v.mode, v.support_index) == ("softmax", 0) and tok.pad_token is not None
    hyps = ["The council approved a budget.", "Work starts in June, says the mayor of the city."]
    batched = v.support_probs([SOURCE, SOURCE], hyps)
    single = [v.support_probs([SOURCE], [h])[0] for h in hyps]
    assert batched == pytest.approx(single, abs=1e-5)
    check_report(v.verify(SOURCE, SUMMARY), SOURCE, SUMMARY)


def test_preset_with_a_local_copy(tiny_classifier_path):
    """A preset fills model id, revision, support_label and threshold; a local folder keeps the rest."""
    v = get_verifier("nli", preset="minicheck-roberta-large", model=tiny_classifier_path)
    assert v.label_source == "support_label" and v.support_index == 1 and v.threshold == 0.5
    assert v.model.halluguard_spec.revision == "refs/pr/1"  # kept, but not used for a local folder
    r = v.verify(SOURCE, SUMMARY)
    check_report(r, SOURCE, SUMMARY)
    assert r.extra["preset"] == "minicheck-roberta-large"
    v = get_verifier("nli", preset="minicheck-roberta-large", model=tiny_classifier_path, threshold=0.3)
    assert v.threshold == 0.3  # explicit values win
