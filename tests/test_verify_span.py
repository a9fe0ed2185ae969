"""The `span` backend: token classifiers (LettuceDetect style) flag characters of the summary.

Two tiny models built in-process: a saved 0-layer BERT token classifier whose output depends only on
the token (so we know exactly which characters it flags), loaded through the one loader; and a
context-aware stand-in that flags an answer token whose id is absent from the context, to test how
chunks of a long source are merged. Presets are checked offline: they must fail fast, never download.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch
from conftest import minilm_dir, real_tokenizer

from halluguard.loading import HubUnavailable
from halluguard.verify import get_verifier
from halluguard.verify._common import TextPiece
from halluguard.verify.presets import PRESETS, get_preset
from halluguard.verify.span import (
    SpanVerifier,
    hallucinated_index,
    merge_chunk_probs,
    token_spans,
)

SOURCE = "The museum in Hamburg opened in 2004. It shows ships and maps from the old harbour."


def _token_classifier(path, flagged_words):
    """0 hidden layers: a token's logits depend on its own id only. Flagged token ids get
    P(hallucinated) ~ 1, every other token ~ 0."""
    from transformers import BertConfig, BertForTokenClassification

    tok = real_tokenizer()
    cfg = BertConfig(vocab_size=len(tok), hidden_size=4, num_hidden_layers=0, num_attention_heads=1,
                     intermediate_size=4, max_position_embeddings=512, num_labels=2,
                     id2label={0: "supported", 1: "hallucinated"}, label2id={"supported": 0, "hallucinated": 1})
    model = BertForTokenClassification(cfg)
    flagged = [tok.convert_tokens_to_ids(t) for t in flagged_words]
    with torch.no_grad():
        emb = model.bert.embeddings
        emb.word_embeddings.weight[:] = torch.tensor([-1.0, 1.0, 0.0, 0.0])
        emb.word_embeddings.weight[flagged] = torch.tensor([1.0, -1.0, 0.0, 0.0])
        emb.position_embeddings.weight.zero_()
        emb.token_type_embeddings.weight.zero_()
        emb.LayerNorm.weight.fill_(1.0)
        emb.LayerNorm.bias.zero_()
        model.classifier.weight.zero_()
        model.classifier.weight[1] = torch.tensor([4.0, -4.0, 0.0, 0.0])
        model.classifier.bias.zero_()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def flagging_model(tmp_path_factory):
    # "berlin" and "1999" are whole tokens; "##head" is the last piece of "log ##ger ##head".
    return _token_classifier(tmp_path_factory.mktemp("tokcls"), ["berlin", "1999", "##head"])


def test_spans_point_at_exactly_the_flagged_characters(flagging_model):
    v = get_verifier("span", model=flagging_model)
    assert v.model.halluguard_spec.head == "token-cls"  # through the one loader
    summary = "The museum in Berlin opened in 1999. It shows ships and a loggerhead turtle."
    r = v.verify(SOURCE, summary)
    assert [(s.start, s.end, s.text) for s in r.spans] == [
        (summary.index("Berlin"), summary.index("Berlin") + 6, "Berlin"),
        (summary.index("1999"), summary.index("1999") + 4, "1999"),
        # only the sub-word "##head" is flagged; the span is widened to the whole word
        (summary.index("loggerhead"), summary.index("loggerhead") + 10, "loggerhead"),
    ]
    assert all(s.reason == "model" and s.score > 0.99 for s in r.spans)
    assert r.label == "hallucinated" and r.score > 0.99 and r.backend == "span"
    assert [s.verdict for s in r.sentences] == ["unsupported", "unsupported"]
    assert "'Berlin'" in r.sentences[0].reasons[0]
    # evidence: the source sentence sharing most words, then the chunk the model read (the whole source)
    assert r.sentences[0].evidence[0].text == "The museum in Hamburg opened in 2004."
    assert r.sentences[0].evidence[-1].text == SOURCE
    for s in r.sentences:
        assert summary[s.start:s.end] == s.text
    assert r.extra["chunks"] == 1 and r.extra["prompt"] == "lettucedetect"

    clean = v.verify(SOURCE, "The museum opened in 2004. It shows ships.")
    assert clean.label == "faithful" and clean.spans == [] and clean.score < 0.01
    assert [s.verdict for s in clean.sentences] == ["supported", "supported"]
    assert v.score([SOURCE], [summary])[0] == pytest.approx(r.score)


def test_threshold_and_labels(flagging_model):
    summary = "Opened in Berlin."
    r = get_verifier("span", model=flagging_model, hallucinated_label="supported").verify(SOURCE, summary)
    assert [s.text for s in r.spans] == ["Opened in", "."]  # the other output read as "hallucinated"
    r = get_verifier("span", model=flagging_model, threshold=0.2).verify(SOURCE, summary)
    assert [s.text for s in r.spans] == ["Berlin"] and r.threshold == 0.2
    assert hallucinated_index({0: "LABEL_0", 1: "LABEL_1"}, 2) == 1  # LettuceDetect convention
    assert hallucinated_index({0: "hallucinated", 1: "ok"}, 2) == 0
    assert hallucinated_index(None, 1) == -1
    assert hallucinated_index({0: "a", 1: "b", 2: "c"}, 3, "b") == 1
    with pytest.raises(ValueError, match="hallucinated_label"):
        hallucinated_index({0: "a", 1: "b", 2: "c"}, 3)


def test_bad_input_and_arguments(flagging_model):
    with pytest.raises(ValueError, match="needs a token-classification model.*lettucedetect-base"):
        SpanVerifier()
    with pytest.raises(ValueError, match="chunk_merge"):
        SpanVerifier(flagging_model, chunk_merge="mean")
    with pytest.raises(ValueError, match="prompt"):
        SpanVerifier(flagging_model, prompt="no placeholder")
    v = SpanVerifier(flagging_model)
    with pytest.raises(ValueError, match="summary is empty"):
        v.verify(SOURCE, "  ")
    with pytest.raises(ValueError, match="row 1: source is empty"):
        v.verify_batch([SOURCE, ""], ["a.", "b."])


# ------------------------------------------------------------------------------- long sources


class ContextAware(torch.nn.Module):
    """Flags an answer token (token type 1) whose id does not occur in the context (token type 0)."""

    def __init__(self, max_positions: int):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(num_labels=2, id2label={0: "ok", 1: "hallucinated"},
                                      max_position_embeddings=max_positions, _name_or_path="context-aware")

    def forward(self, input_ids, attention_mask, token_type_ids):
        logits = torch.zeros(*input_ids.shape, 2)
        logits[..., 0] = 5.0
        for r in range(input_ids.shape[0]):
            context = set(input_ids[r][(token_type_ids[r] == 0) & (attention_mask[r] == 1)].tolist())
            for i, t in enumerate(input_ids[r].tolist()):
                if token_type_ids[r, i] == 1 and t not in context:
                    logits[r, i] = torch.tensor([0.0, 5.0])
        return SimpleNamespace(logits=logits)


def bert_tokenizer():
    """The MiniLM tokenizer as saved: pairs carry token_type_ids (0 = context, 1 = answer)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_dir())


FILLER = " ".join(f"Report {i} lists alpha beta gamma delta values." for i in range(30))
LONG_SOURCE = FILLER + " The winner was zebra."


def test_long_source_min_over_chunks_keeps_a_fact_found_in_one_chunk():
    tok = bert_tokenizer()
    summary = "The winner was zebra. The loser was yak."
    v = SpanVerifier(ContextAware(64), tokenizer=tok, prompt="plain", chunk_overlap=8)
    r = v.verify(LONG_SOURCE, summary)
    assert r.extra["chunks"] > 3  # 64 tokens cannot hold the source
    assert [s.text for s in r.spans] == ["loser", "yak"]  # in no chunk
    assert [s.verdict for s in r.sentences] == ["supported", "unsupported"]
    # the first sentence's evidence is the chunk that supports it (it holds "zebra")
    assert "zebra" in r.sentences[0].evidence[-1].text
    ev = r.sentences[0].evidence[-1]
    assert LONG_SOURCE[ev.start:ev.end] == ev.text

    strict = SpanVerifier(ContextAware(64), tokenizer=tok, prompt="plain", chunk_overlap=8, chunk_merge="max")
    flagged = " ".join(s.text for s in strict.verify(LONG_SOURCE, summary).spans)
    assert "zebra" in flagged  # LettuceDetect's max: unsupported by the chunks that lack it


def test_long_summary_is_checked_in_segments_with_exact_offsets():
    tok = bert_tokenizer()
    summary = " ".join(["The winner was zebra."] * 12) + " The loser was yak."
    v = SpanVerifier(ContextAware(64), tokenizer=tok, prompt="plain")
    r = v.verify(LONG_SOURCE, summary)
    assert [(s.start, s.text) for s in r.spans] == [(summary.index("loser"), "loser"), (summary.index("yak"), "yak")]
    assert len(r.sentences) == 13 and r.sentences[-1].verdict == "unsupported"


def test_merge_and_span_helpers():
    assert merge_chunk_probs([[0.9, 0.1], [0.2, 0.8]]) == [0.2, 0.1]
    assert merge_chunk_probs([[0.9, 0.1], [0.2, 0.8]], "max") == [0.9, 0.8]
    text = "A red fox ran."
    toks = [(0, 1, 0.1), (2, 5, 0.9), (6, 9, 0.7), (10, 13, 0.2)]
    [sp] = token_spans(text, toks, 0.5, TextPiece(0, len(text), text))
    assert (sp.start, sp.end, sp.text, sp.score) == (2, 9, "red fox", 0.9)


# ------------------------------------------------------------------------------- presets, offline


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # nothing is cached


@pytest.mark.parametrize("backend,preset", [("span", "lettucedetect-base"), ("nli", "minicheck-roberta-large")])
def test_presets_fail_fast_offline_with_a_clear_message(backend, preset, empty_hub_cache):
    import transformers  # noqa: F401 - import time is not what we measure

    t = time.perf_counter()
    with pytest.raises(HubUnavailable) as e:
        get_verifier(backend, preset=preset)
    assert time.perf_counter() - t < 5
    msg = str(e.value)
    assert PRESETS[preset].model in msg and "HF_HUB_OFFLINE" in msg
    assert f"--preset {preset} --model models/" in msg


def test_preset_rules():
    with pytest.raises(ValueError, match="trust_remote_code=True"):  # before anything loads
        get_verifier("nli", preset="hhem-2.1-open")
    with pytest.raises(ValueError, match="for the 'span' backend"):
        get_verifier("nli", preset="lettucedetect-base")
    with pytest.raises(ValueError, match="unknown preset.*lettucedetect-base"):
        get_verifier("span", preset="lettuce")
    for p in PRESETS.values():
        assert p.licence and p.model.count("/") == 1 and 0 < p.threshold < 1
        assert p.head == {"span": "token-cls", "nli": "seq-cls"}[p.backend]
        assert get_preset(p.name, p.backend) is p


def test_preset_with_a_local_copy_keeps_its_settings(flagging_model):
    v = get_verifier("span", preset="lettucedetect-base", model=flagging_model)
    assert v.max_length == 512  # the preset asks for 4096; the tiny model's context is smaller
    r = v.verify(SOURCE, "It opened in Berlin.")
    assert r.extra["preset"] == "lettucedetect-base" and [s.text for s in r.spans] == ["Berlin"]
    assert v.threshold == PRESETS["lettucedetect-base"].threshold


# ------------------------------------------------------------------------------- command line


def test_cli_verify_and_bench_with_span(flagging_model, tmp_path, capsys, empty_hub_cache):
    import json

    from halluguard.cli import main

    pairs = tmp_path / "pairs.jsonl"
    rows = [{"id": "a", "source": SOURCE, "summary": "It opened in Berlin."},
            {"id": "b", "source": SOURCE, "summary": "It opened in 2004."}]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    assert main(["verify", "--backend", "span", "--model", flagging_model, "--input", str(pairs),
                 "--output", str(out), "--no-progress"]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["label"] for g in got] == ["hallucinated", "faithful"]
    assert "Berlin" in json.dumps(got[0])
    # a preset offline: one line naming the model and the local-folder way, in seconds
    t = time.perf_counter()
    assert main(["verify", "--backend", "span", "--preset", "lettucedetect-base", "--input", str(pairs),
                 "--output", str(tmp_path / "o2.jsonl")]) == 2
    assert main(["bench", "--backend", "span", "--preset", "lettucedetect-base", "--set", str(pairs)]) == 2
    assert time.perf_counter() - t < 10
    err = capsys.readouterr().err
    assert err.count("KRLabsOrg/lettucedect-base-modernbert-en-v1") >= 2
    assert "--preset lettucedetect-base --model" in err


def test_app_verifier_choice(flagging_model, empty_hub_cache):
    from halluguard.app.config import AppConfig
    from halluguard.app.models import ModelHub

    cfg = AppConfig.from_args(["--verifier", "span", "--verifier-model", flagging_model,
                               "--verifier-preset", "lettucedetect-base"])
    r = ModelHub(cfg).verify(SOURCE, "It opened in Berlin.")
    assert r.backend == "span" and r.extra["preset"] == "lettucedetect-base" and r.spans[0].text == "Berlin"
    with pytest.raises(ValueError, match="for the 'span' backend"):
        AppConfig(verifier="nli", verifier_preset="lettucedetect-base")
    hub = ModelHub(AppConfig(verifier="span", verifier_preset="lettucedetect-base"))
    t = time.perf_counter()
    with pytest.raises(HubUnavailable, match="lettucedect-base-modernbert-en-v1"):
        hub.verify(SOURCE, "It opened in 2004.")
    assert time.perf_counter() - t < 5
    hhem = ModelHub(AppConfig.from_args(["--verifier", "nli", "--verifier-preset", "hhem-2.1-open",
                                         "--verifier-trust-remote-code"]))
    with pytest.raises(HubUnavailable, match="vectara/hallucination_evaluation_model"):
        hhem.verify(SOURCE, "It opened in 2004.")


class Spy(ContextAware):
    """Records what the model is fed, to check LettuceDetect's input layout."""

    def __init__(self):
        super().__init__(512)
        self.batches = []

    def forward(self, input_ids, attention_mask, token_type_ids):
        self.batches.append((input_ids.clone(), token_type_ids.clone()))
        return super().forward(input_ids, attention_mask, token_type_ids)


def test_lettucedetect_input_layout_and_batching_across_pairs():
    tok = bert_tokenizer()
    spy = Spy()
    v = SpanVerifier(spy, tokenizer=tok, batch_size=8)
    summaries = ["It opened in 2004.", "It shows ships.", "It shows the zebra."]
    reports = v.verify_batch([SOURCE] * 3, summaries)
    assert len(spy.batches) == 1 and spy.batches[0][0].shape[0] == 3  # three pairs, one forward pass
    ids, types = spy.batches[0]
    first = tok.decode(ids[0][types[0] == 0], skip_special_tokens=True)
    second = tok.decode(ids[0][types[0] == 1], skip_special_tokens=True)
    # [CLS] prompt-with-source [SEP] summary [SEP], as LettuceDetect's summary prompt (uncased tokenizer)
    assert first == tok.decode(tok("Summarize the following text:\npassage 1: " + SOURCE + "\noutput:")["input_ids"],
                               skip_special_tokens=True)
    assert second in {s.lower() for s in summaries}
    answers = {tok.decode(i[t == 1], skip_special_tokens=True) for i, t in zip(ids, types)}
    assert answers == {s.lower() for s in summaries}
    assert [r.label for r in reports] == ["faithful", "faithful", "hallucinated"]
    assert [s.text for s in reports[2].spans] == ["zebra"]
