"""Unit tests of the app's handlers, settings and HTML report: no browser, no server.

Most tests use a fast deterministic verifier (numbers in the summary that the source lacks are
flagged) so they test the app's logic, not the lite verifier; one test runs the real offline default.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from halluguard.app import handlers as H
from halluguard.app.config import AppConfig
from halluguard.app.models import ModelHub
from halluguard.app.report import highlight_html, render_batch_report
from halluguard.types import Evidence, Report, SentenceVerdict, Span, label_for

SOURCE = "The council voted 7 to 2 on Tuesday. The library will cost 4 million dollars. It opens in 2027."


class NumberVerifier:
    """Flags every number of the summary that the source does not contain (deterministic, instant)."""

    name = "fake"
    threshold = 0.5

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.calls = 0

    def verify(self, source: str, summary: str) -> Report:
        if not source.strip() or not summary.strip():
            raise ValueError("source is empty" if not source.strip() else "summary is empty")
        self.calls += 1
        time.sleep(self.delay)
        sents, spans = [], []
        for m in re.finditer(r"[^.]+\.?", summary):
            if not m.group().strip():
                continue
            bad = [Span(m.start() + n.start(), m.start() + n.end(), n.group(), 0.9, "number")
                   for n in re.finditer(r"\d+", m.group()) if n.group() not in source]
            score = 0.9 if bad else 0.1
            sents.append(SentenceVerdict(m.start(), m.end(), m.group(), "unsupported" if bad else "supported", score,
                                         [Evidence(0, 36, source[:36], 0.8)], bad))
            spans += bad
        score = max((s.score for s in sents), default=0.1)
        return Report(score, label_for(score, self.threshold), self.threshold, "fake", sents, spans)


class FakeHub(ModelHub):
    """A ModelHub whose verifier is NumberVerifier; generators stay the real offline ones."""

    def __init__(self, cfg: AppConfig, delay: float = 0.0):
        super().__init__(cfg)
        self._cache[f"verifier:{cfg.verifier}"] = NumberVerifier(delay)


@pytest.fixture
def cfg(tmp_path) -> AppConfig:
    return AppConfig(output_dir=str(tmp_path / "app"))


@pytest.fixture
def hub(cfg) -> FakeHub:
    return FakeHub(cfg)


def write_csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


# ------------------------------------------------------------------------------------- settings


def test_config_flags_yaml_and_env(tmp_path):
    y = tmp_path / "app.yaml"
    y.write_text("verifier: nli\nverifier_model: /models/hhem\nmax_upload_mb: 5\nport: 9000\n")
    cfg = AppConfig.from_args(["--config", str(y), "--port", "7000"], env={"HALLUGUARD_AUTH": "ann:secret"})
    assert (cfg.verifier, cfg.verifier_model, cfg.max_upload_mb, cfg.port) == ("nli", "/models/hhem", 5.0, 7000)
    assert cfg.auth_pair == ("ann", "secret")
    assert cfg.max_file_size == 5 * 1024 * 1024
    assert cfg.share is False and cfg.host == "127.0.0.1"
    cfg = AppConfig.from_args(["--generator", "hf", "--model", "m", "--adapters", "sft=runs/sft", "dpo=runs/dpo"], env={})
    assert cfg.adapters == {"sft": "runs/sft", "dpo": "runs/dpo"} and cfg.auth_pair is None
    assert ModelHub(cfg).generator_choices() == ["hf:base", "hf:sft", "hf:dpo"]


@pytest.mark.parametrize("argv, message", [
    (["--adapters", "sft"], "NAME=PATH"),
    (["--auth", "nopassword"], "user:password"),
    (["--generator", "hf"], "needs --model"),
    (["--max-upload-mb", "0"], "max_upload_mb"),
])
def test_config_rejects_bad_settings(argv, message):
    with pytest.raises(ValueError, match=message):
        AppConfig.from_args(argv, env={})


def test_config_yaml_unknown_key_fails(tmp_path):
    y = tmp_path / "app.yaml"
    y.write_text("verifer: lite\n")
    with pytest.raises(ValueError, match="unknown app config key.*verifer"):
        AppConfig.from_args(["--config", str(y)], env={})


def test_building_the_ui_loads_no_model(cfg):
    from halluguard.app import build_demo

    hub = ModelHub(cfg)
    demo = build_demo(cfg, hub)
    assert hub.loaded() == []
    fns = {f.api_name: f for f in demo.fns.values()}
    assert {"summarize", "verify", "compare", "batch_columns", "batch_evaluate"} <= set(fns)
    # one accelerator queue: every interactive model event shares a concurrency group
    assert fns["verify"].concurrency_id == fns["summarize"].concurrency_id == fns["compare"].concurrency_id == "model"
    assert fns["batch_evaluate"].concurrency_id == "batch"  # takes the model lock per row instead


# ------------------------------------------------------------------------------------- rendering


def test_highlight_value_uses_character_offsets_and_merges_overlaps():
    summary = "Costs 9 million in 2031."
    rep = Report(0.9, "hallucinated", 0.5, "x", spans=[
        Span(6, 7, "9", 0.9, "number"), Span(6, 15, "9 million", 0.95, "unsupported"), Span(19, 23, "2031", 0.8, "date")])
    v = H.highlight_value(summary, rep)
    assert v["text"] == summary
    assert v["entities"] == [{"entity": "unsupported", "start": 6, "end": 15}, {"entity": "date", "start": 19, "end": 23}]
    assert [summary[e["start"]:e["end"]] for e in v["entities"]] == ["9 million", "2031"]


def test_sentence_table_and_overall(hub):
    r = H.verify_pair(hub, SOURCE, "The council voted 7 to 2. It opens in 2031.")
    assert list(r.table.columns) == H.TABLE_HEADERS
    assert r.table["verdict"].tolist() == ["supported", "unsupported"]
    assert r.table["evidence (source)"].iloc[0] == SOURCE[:36]
    assert "HALLUCINATED" in r.overall and "1 of 2 sentence(s) unsupported" in r.overall
    assert r.report["label"] == "hallucinated" and json.dumps(r.report)  # JSON-able for gradio_client
    text = r.highlight["text"]
    assert [text[e["start"]:e["end"]] for e in r.highlight["entities"]] == ["2031"]


def test_verify_empty_or_too_long_input_is_a_value_error(hub, tmp_path):
    with pytest.raises(ValueError, match="empty"):
        H.verify_pair(hub, SOURCE, "   ")
    small = FakeHub(AppConfig(output_dir=str(tmp_path), max_doc_chars=50))
    with pytest.raises(ValueError, match="the source has 95 characters; this app takes at most 50"):
        H.verify_pair(small, SOURCE, "The vote was 7 to 2.")
    with pytest.raises(ValueError, match="the document has"):
        small.summarize("extractive (1 sentence)", SOURCE)


def test_token_heatmap_from_offsets_keeps_the_text():
    summary = "Good part. Bad part."
    rep = Report(0.5, "hallucinated", 0.5, "dpo-reward", extra={"token_rewards": [
        {"text": "Good", "start": 0, "end": 4, "reward": 0.5}, {"text": " part", "start": 4, "end": 9, "reward": 0.1},
        {"text": "Bad", "start": 11, "end": 14, "reward": -1.0}]})
    heat = H.token_heatmap(rep, summary)
    assert "".join(t for t, _ in heat) == summary
    values = dict((t, v) for t, v in heat if v is not None)
    assert values["Bad"] == 1.0 and values["Good"] == -0.5  # least faithful token = reddest
    assert H.token_heatmap(Report(0.1, "faithful", 0.5, "lite"), summary) is None


def test_summarize_marks_extractive_output(hub, cfg):
    doc = " ".join(f"Sentence number {i} talks about the library budget and the council vote." for i in range(6))
    r = H.summarize_document(hub, cfg, doc, None, "extractive (1 sentence)")
    assert r.extractive and r.report["summary"]["extractive"] is True
    assert r.summary and r.summary in doc
    assert "Extractive" in r.overall


def test_summarize_uploaded_text_file_and_bad_encoding(hub, cfg, tmp_path):
    f = tmp_path / "doc.txt"
    f.write_text("The museum opened in 1990. It has 300 paintings. Entry is free on Sundays.", encoding="utf-8")
    r = H.summarize_document(hub, cfg, "", str(f), "extractive (1 sentence)")
    assert r.summary
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Caf\xe9 au lait.".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        H.summarize_document(hub, cfg, "", str(bad), "extractive (1 sentence)")
    with pytest.raises(ValueError, match="paste a document"):
        H.summarize_document(hub, cfg, "  ", None, "extractive (1 sentence)")


def test_compare_two_generators_with_reference(hub, cfg):
    doc = ("The council voted 7 to 2 on Tuesday to build a library. The library will cost 4 million dollars. "
           "Construction starts in spring. The mayor supports the plan. Two members opposed it.")
    left, right, table = H.compare_generators(hub, cfg, doc, "extractive (3 sentences)", "extractive (1 sentence)",
                                              "The council approved a 4 million dollar library.")
    assert len(left.summary) > len(right.summary)
    assert table["generator"].tolist() == ["extractive (3 sentences)", "extractive (1 sentence)"]
    assert {"rouge1", "rouge2", "rougeLsum", "similarity"} <= set(table.columns)
    assert 0 < table["rouge1"].iloc[0] <= 1
    assert left.heatmap is None  # no dpo-reward scorer here


# ------------------------------------------------------------------------------------- uploads


def test_upload_name_is_never_a_path(cfg, tmp_path):
    evil_dir = tmp_path / "x" / ".." / "x"
    (tmp_path / "x").mkdir()
    evil = evil_dir / "..%2f..%2fetc;rm -rf ~.csv"
    evil.write_text("source,summary\na,b\n")
    stored = H.ingest_upload(cfg, str(evil), H.TABLE_EXTS)
    assert stored.parent == Path(cfg.output_dir) / "uploads"
    assert re.fullmatch(r"[0-9a-f]{32}\.csv", stored.name)
    assert stored.read_text() == "source,summary\na,b\n"


def test_upload_type_and_size_limits(tmp_path):
    cfg = AppConfig(output_dir=str(tmp_path / "app"), max_upload_mb=0.001)  # ~1 KB
    big = tmp_path / "big.csv"
    big.write_text("source,summary\n" + "x,y\n" * 1000)
    with pytest.raises(ValueError, match="limit is 0.001 MB"):
        H.ingest_upload(cfg, str(big), H.TABLE_EXTS)
    exe = tmp_path / "a.exe"
    exe.write_bytes(b"MZ")
    with pytest.raises(ValueError, match="unsupported file type .exe"):
        H.ingest_upload(cfg, str(exe), H.TABLE_EXTS)
    assert not list((Path(cfg.output_dir) / "uploads").glob("*")) if (Path(cfg.output_dir) / "uploads").exists() else True


def test_inspect_upload_detects_columns(cfg, tmp_path):
    f = tmp_path / "rows.jsonl"
    f.write_text('{"doc_id": 1, "article": "A b.", "claim": "A.", "gold_summary": "A", "label": 1}\nnot json\n')
    info = H.inspect_upload(cfg, str(f))
    assert info.guesses == {"source": "article", "summary": "claim", "reference": "gold_summary", "label": "label", "id": "doc_id"}
    assert info.n_rows == 2 and len(info.errors) == 1 and "line 2" in info.errors[0]
    assert "uploads/" not in info.errors[0]  # the generated name is not shown to users
    assert list(info.preview.columns) == info.columns


def test_inspect_upload_not_utf8_is_readable(cfg, tmp_path):
    f = tmp_path / "latin1.csv"
    f.write_bytes("source,summary\nCaf\xe9,Th\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="UTF-8"):
        H.inspect_upload(cfg, str(f))


# ------------------------------------------------------------------------------------- batch


def _rows(n: int = 6) -> list[dict]:
    out = []
    for i in range(n):
        bad = i % 2 == 1
        out.append({"id": f"r{i}", "document": SOURCE, "summary": f"The vote was {'9 to 0' if bad else '7 to 2'}.",
                    "reference": "The council voted 7 to 2.", "label": int(bad)})
    return out


def test_batch_metrics_files_and_report(hub, cfg, tmp_path):
    f = write_csv(tmp_path / "rows.csv", _rows(6) + [{"id": "empty", "document": SOURCE, "summary": "", "reference": "", "label": 0}])
    seen = []
    states = list(H.run_batch(hub, cfg, str(f), "document", "summary", "reference", "label", "id", update_every=2,
                              progress=lambda d, t: seen.append((d, t))))
    final = states[-1]
    assert final.finished and final.done == final.total == 7
    assert seen[-1] == (7, 7) and len(states) >= 3  # progress as it goes
    m = final.metrics
    assert m["hallucination_rate"] == pytest.approx(0.5) and m["verified"] == 6
    assert m["balanced_accuracy"] == 1.0 and m["f1"] == 1.0
    assert 0 < m["rouge1"] <= 1 and "similarity" in m
    assert m["n_row_errors"] == 1 and "row 6" in m["row_errors"][0]
    assert final.histogram["rows"].sum() == 6 and final.labels.set_index("label")["rows"]["error"] == 1
    csv_path, jsonl_path, html_path = map(Path, final.files)
    assert Path(cfg.output_dir) in csv_path.parents  # written in the app's own dir
    lines = [json.loads(x) for x in jsonl_path.read_text().splitlines()]
    assert [x["_row"] for x in lines] == list(range(7)) and lines[1]["spans"][0]["text"] == "9"
    assert len(pd.read_csv(csv_path)) == 7
    html = html_path.read_text()
    assert "<mark" in html and "r1" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html) and "<script" not in html  # self-contained


def test_batch_resumes_where_it_stopped(hub, cfg, tmp_path):
    f = write_csv(tmp_path / "rows.csv", _rows(6))
    it = H.run_batch(hub, cfg, str(f), "document", "summary", update_every=1)
    for st in it:  # stop (like a crash) after 3 rows
        if st.done == 3:
            break
    it.close()
    verifier = hub.verifier()
    before = verifier.calls
    final = list(H.run_batch(hub, cfg, str(f), "document", "summary"))[-1]
    assert verifier.calls - before == 3  # only the missing rows were verified
    assert "3 resumed" in final.status
    rows = [json.loads(x)["_row"] for x in Path(final.files[1]).read_text().splitlines()]
    assert sorted(rows) == list(range(6)) and len(rows) == 6  # every row exactly once


def test_batch_generates_when_asked(hub, cfg, tmp_path):
    f = write_csv(tmp_path / "docs.csv", [{"text": SOURCE + " The mayor spoke. Work begins soon."}] * 2)
    final = list(H.run_batch(hub, cfg, str(f), "text", None, generate=True, generator="extractive (1 sentence)"))[-1]
    lines = [json.loads(x) for x in Path(final.files[1]).read_text().splitlines()]
    assert all(x["generated_by"] == "extractive (1 sentence)" and x["summary"] for x in lines)


@pytest.mark.parametrize("content, kwargs, message", [
    ("source,summary\na,b\n", {"source_col": "document", "summary_col": "summary"}, "missing column 'document'"),
    ("source,summary\na,b\n", {"source_col": "source", "summary_col": None}, "pick the summary column"),
    ("", {"source_col": "source", "summary_col": "summary"}, "empty"),
])
def test_batch_bad_input_is_a_readable_error(hub, cfg, tmp_path, content, kwargs, message):
    f = tmp_path / "rows.csv"
    f.write_text(content)
    with pytest.raises(ValueError, match=message):
        list(H.run_batch(hub, cfg, str(f), **kwargs))


def test_batch_too_many_rows(hub, tmp_path):
    cfg = AppConfig(output_dir=str(tmp_path / "app"), max_rows=3)
    f = write_csv(tmp_path / "rows.csv", _rows(5))
    with pytest.raises(ValueError, match="at most 3"):
        list(H.run_batch(FakeHub(cfg), cfg, str(f), "document", "summary"))


def test_report_escapes_user_text():
    recs = [{"_row": 0, "id": "<b>x</b>", "score": 0.9, "label": "hallucinated",
             "summary": "<script>alert(1)</script> costs 9", "spans": [{"start": 33, "end": 34, "text": "9", "score": 0.9}]}]
    html = render_batch_report(recs, {"rows": 1, "hallucination_rate": 1.0, "threshold": 0.5},
                               {"cols": {"source": "s"}, "verifier": "lite"})
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;x" in html
    assert highlight_html("ab9", [{"start": 2, "end": 3, "score": 0.9}]).endswith("<mark title=\"unsupported (0.90)\">9</mark>")


# ------------------------------------------------------------------------------------- models


def test_models_load_once_per_process_under_concurrency(cfg):
    builds = []

    class Hub(ModelHub):
        pass

    hub = Hub(cfg)

    def build():
        builds.append(1)
        time.sleep(0.05)
        return object()

    got = []
    threads = [threading.Thread(target=lambda: got.append(hub._get("m", build))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len({id(g) for g in got}) == 1


def test_real_offline_default_flags_a_wrong_number(cfg):
    """The real offline default (lite verifier), once: wrong numbers and a wrong name are flagged as spans."""
    from halluguard.app.ui import EXAMPLE_DOC, VERIFY_EXAMPLES

    hub = ModelHub(cfg)
    src, summary = VERIFY_EXAMPLES[1]  # "voted 9 to 0 ... costing 6 million ... Mayor John Ruiz"
    assert src == EXAMPLE_DOC
    r = H.verify_pair(hub, src, summary)
    assert r.report["backend"] == "lite" and r.report["label"] == "hallucinated"
    flagged = " ".join(r.highlight["text"][e["start"]:e["end"]] for e in r.highlight["entities"])
    assert "9" in flagged or "6 million" in flagged, flagged
    assert hub.loaded() == ["verifier:lite"]


def test_verify_examples_are_what_their_label_says(cfg):
    """The Verify tab's examples are labelled "one faithful, two with errors": the offline default must agree,
    and the third shows a check of a stronger claim ("All turtles" where the source says "most")."""
    from halluguard.app.ui import VERIFY_EXAMPLES

    hub = ModelHub(cfg)
    labels = [H.verify_pair(hub, src, summary).report["label"] for src, summary in VERIFY_EXAMPLES]
    assert labels == ["faithful", "hallucinated", "hallucinated"]
    r = H.verify_pair(hub, *VERIFY_EXAMPLES[2])
    assert any(e["entity"] == "scope" and r.highlight["text"][e["start"]:e["end"]] == "All"
               for e in r.highlight["entities"]), r.highlight["entities"]


# ------------------------------------------------------------------------------------- hf adapters


def _save_lora(base_path: str, out: Path, seed: int) -> str:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_path)
    # init_lora_weights=False: random non-zero B, so the two adapters really generate differently
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(out)
    return str(out)


def test_compare_two_adapters_on_one_base(tiny_llama_path, tmp_path):
    """Compare SFT vs DPO-style adapters switched on ONE loaded base (tiny random model, CPU)."""
    import torch

    from halluguard.loading import list_adapters, quantization_available

    torch.set_num_threads(1)
    adapters = {"sft": _save_lora(tiny_llama_path, tmp_path / "sft", 1), "dpo": _save_lora(tiny_llama_path, tmp_path / "dpo", 2)}
    quant = "nf4" if quantization_available("nf4")[0] else "none"
    cfg = AppConfig(generator="hf", model=tiny_llama_path, quantization=quant, adapters=adapters,
                    output_dir=str(tmp_path / "app"))
    hub = FakeHub(cfg)
    assert hub.generator_choices() == ["hf:base", "hf:sft", "hf:dpo"]
    for name in ("sft", "dpo"):  # build each summarizer now, with short generations for speed
        s = hub._get(f"summarizer:hf:{name}", lambda n=name: hub._build_hf(n))
        s.gen_kwargs["max_new_tokens"] = s.max_new_tokens = 8
    doc = "The council voted 7 to 2 on Tuesday to build a new library near the old depot."
    left, right, table = H.compare_generators(hub, cfg, doc, "hf:sft", "hf:dpo")
    assert table["generator"].tolist() == ["hf:sft", "hf:dpo"]
    assert "[sft]" in left.report["summary"]["model"] and "[dpo]" in right.report["summary"]["model"]
    assert left.summary != right.summary  # different adapters, different generations
    loaded = hub.loaded()
    assert loaded.count("generator:hf") == 1  # one base for both adapters
    model, _ = hub._hf_base()
    assert set(list_adapters(model)) >= {"sft", "dpo"}


def test_compare_shows_a_token_heat_map_for_reward_verifiers(hub, cfg):
    class RewardVerifier(NumberVerifier):
        def verify(self, source, summary):
            rep = super().verify(source, summary)
            rep.extra["token_rewards"] = [{"text": summary[:3], "start": 0, "end": 3, "reward": -0.7}]
            return rep

    hub._cache[f"verifier:{cfg.verifier}"] = RewardVerifier()
    doc = "The council voted 7 to 2. The library opens soon. It cost 4 million dollars."
    left, right, _ = H.compare_generators(hub, cfg, doc, "extractive (3 sentences)", "extractive (1 sentence)")
    assert left.heatmap[0] == (left.summary[:3], 1.0)
    assert "".join(t for t, _ in left.heatmap) == left.summary


def test_app_py_builds_demo_at_import_without_loading_models(tmp_path, monkeypatch, capsys):
    import importlib.util

    monkeypatch.setenv("HALLUGUARD_APP_ARGS", f"--output-dir {tmp_path / 'out'} --max-upload-mb 3")
    path = Path(__file__).resolve().parent.parent / "app.py"
    spec = importlib.util.spec_from_file_location("halluguard_app_entry", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # what `gradio app.py` / `import app` do: no launch, no model
    assert mod.demo.hg_hub.loaded() == [] and mod.config.max_upload_mb == 3
    assert mod.main(["--auth", "nocolon"]) == 2  # a bad flag is one line, not a traceback
    assert "auth must look like user:password" in capsys.readouterr().err


def test_openai_generator_against_a_fake_server(tmp_path):
    """`--generator openai`: Summarize and Compare through an OpenAI-compatible server (fake, loopback)."""
    from fake_openai import FakeOpenAIServer

    doc = "The council voted 7 to 2 on Tuesday to build a library.\n\nIt will cost 4 million dollars and open in 2027."
    with FakeOpenAIServer(reply=lambda body: "The council voted 9 to 2 to build a library.", errors=(500,)) as srv:
        cfg = AppConfig(generator="openai", model="fake", base_url=srv.base_url, output_dir=str(tmp_path / "app"))
        hub = FakeHub(cfg)
        choices = hub.generator_choices()
        assert choices[0] == "openai:fake" and "extractive (1 sentence)" in choices  # offline fallback kept
        r = H.summarize_document(hub, cfg, doc, None, "openai:fake")
        assert r.summary == "The council voted 9 to 2 to build a library." and not r.extractive
        assert [r.highlight["text"][e["start"]:e["end"]] for e in r.highlight["entities"]] == ["9"]
        left, right, table = H.compare_generators(hub, cfg, doc, "openai:fake", "extractive (1 sentence)")
        assert table["generator"].tolist() == ["openai:fake", "extractive (1 sentence)"]
        assert srv.status_counts[500] >= 1  # the first attempt failed and was retried, not lost


# ------------------------------------------------------------------------------------- issue 11 (app)


def test_gradio_server_env_is_honoured_and_flags_win(tmp_path):
    env = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7861"}
    cfg = AppConfig.from_args([], env=env)
    assert (cfg.host, cfg.port) == ("0.0.0.0", 7861)
    y = tmp_path / "app.yaml"
    y.write_text("host: 127.0.0.1\nport: 9000\n")
    cfg = AppConfig.from_args(["--config", str(y)], env=env)  # the platform's variables beat the file
    assert (cfg.host, cfg.port) == ("0.0.0.0", 7861)
    cfg = AppConfig.from_args(["--host", "127.0.0.1", "--port", "7000"], env=env)  # flags win
    assert (cfg.host, cfg.port) == ("127.0.0.1", 7000)
    assert AppConfig.from_args([], env={"GRADIO_SERVER_NAME": "", "GRADIO_SERVER_PORT": ""}).port == 7860
    with pytest.raises(ValueError, match="GRADIO_SERVER_PORT must be a port number"):
        AppConfig.from_args([], env={"GRADIO_SERVER_PORT": "http"})
    from halluguard.app import launch_kwargs

    kw = launch_kwargs(AppConfig.from_args([], env=env))
    assert (kw["server_name"], kw["server_port"]) == ("0.0.0.0", 7861)


def test_text_upload_is_removed_after_reading_or_refusal(hub, cfg, tmp_path):
    uploads = Path(cfg.output_dir) / "uploads"
    good = tmp_path / "doc.txt"
    good.write_text("The museum opened in 1990. It has 300 paintings.", encoding="utf-8")
    H.summarize_document(hub, cfg, "", str(good), "extractive (1 sentence)")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Caf\xe9 au lait.".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        H.summarize_document(hub, cfg, "", str(bad), "extractive (1 sentence)")
    for table in ("latin1.csv", "empty.jsonl"):  # refused batch files too
        f = tmp_path / table
        f.write_bytes("source,summary\nCaf\xe9,Th\xe9\n".encode("latin-1") if table.endswith(".csv") else b"\n\n")
        with pytest.raises(ValueError):
            H.inspect_upload(cfg, str(f))
    assert list(uploads.iterdir()) == []


def test_results_csv_has_the_source_and_metrics_carry_no_float_noise(hub, cfg, tmp_path):
    f = write_csv(tmp_path / "rows.csv", [{"source": SOURCE, "summary": s, "label": y}
                                          for s, y in [("It cost 4 million.", 0), ("It cost 9 million.", 1),
                                                       ("The vote was 7 to 2.", 0)]])
    final = list(H.run_batch(hub, cfg, str(f), "source", "summary", label_col="label"))[-1]
    csv_rows = pd.read_csv(next(p for p in final.files if p.endswith("results.csv")))
    assert list(csv_rows.columns[:6]) == ["_row", "id", "score", "label", "source", "summary"]
    assert (csv_rows["source"] == SOURCE).all()
    for k, v in final.metrics.items():
        if isinstance(v, float):
            assert v == round(v, 4), (k, v)


def test_json_error_message_says_at_once(cfg, tmp_path):
    f = tmp_path / "rows.jsonl"
    f.write_text('{"source": "A b.", "summary": "A."}\n{"source": "unterminated')
    info = H.inspect_upload(cfg, str(f))
    assert info.errors == ["row 1 (line 2): not valid JSON (Unterminated string starting at column 12)"]
    whole = tmp_path / "rows.json"
    whole.write_text('[{"source": "x}')
    with pytest.raises(ValueError) as e:
        H.inspect_upload(cfg, str(whole))
    assert "at at" not in str(e.value) and "starting at line 1, column 13" in str(e.value)


def test_report_json_has_no_float_noise():
    from halluguard.commands.batch import _rounded

    rep = _rounded({"hallucination_rate": {"value": 0.49155000000000004, "ci_low": None}, "rows": 3,
                    "score_distribution": {"mean": 1 / 3}, "hist": [0.1 + 0.2]})
    assert json.dumps(rep) == ('{"hallucination_rate": {"value": 0.49155, "ci_low": null}, "rows": 3, '
                               '"score_distribution": {"mean": 0.333333}, "hist": [0.3]}')


def test_label_chart_keeps_the_two_verdicts_and_whole_row_ticks():
    recs = [{"label": "faithful"}, {"label": "faithful"}]
    assert H.label_counts(recs)["label"].tolist() == ["hallucinated", "faithful"]
    assert H.label_counts(recs + [{"label": "error"}])["label"].tolist() == ["hallucinated", "faithful", "error"]
    assert H.y_limit([0, 2]) == [0, 6] and H.y_limit([40, 3]) == [0, 40] and H.y_limit([]) == [0, 6]


def _contrast_with_black(hex_colour: str) -> float:
    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(int(hex_colour[i:i + 2], 16) / 255) for i in (1, 3, 5))
    return (0.2126 * r + 0.7152 * g + 0.0722 * b + 0.05) / 0.05


def _lab(hex_colour: str) -> tuple[float, float, float]:
    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116
    r, g, b = (lin(int(hex_colour[i:i + 2], 16) / 255) for i in (1, 3, 5))
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def test_span_colours_are_readable_and_distinct():
    import itertools
    import math

    lite = H.color_map_for("lite")
    for reason, colour in lite.items():
        assert _contrast_with_black(colour) >= 7, reason  # the legend and spans use black text (WCAG AAA)
    for a, b in itertools.combinations(lite, 2):
        assert math.dist(_lab(lite[a]), _lab(lite[b])) >= 20, (a, b)  # CIE76 delta E: clearly different
    assert math.dist(_lab(lite["unsupported"]), _lab(lite["sentence"])) >= 60  # the two most common reasons
    from halluguard.verify import lite as lite_module

    emitted = set(getattr(lite_module, "SPAN_PRIORITY", {}))
    assert emitted <= set(lite), f"span reasons without a colour: {emitted - set(lite)}"


def test_user_errors_are_one_log_line_and_remembered_per_session(caplog):
    import gradio as gr

    from halluguard.app.ui import ErrorBoxes

    import inspect

    boxes = ErrorBoxes()
    request = gr.Request(session_hash="s1")

    def do_verify(source, request: gr.Request):
        raise ValueError("summary is empty")
    guarded = boxes.guard(do_verify)
    assert list(inspect.signature(guarded).parameters) == ["source", "request"]  # what gradio reads
    with pytest.raises(gr.Error) as e, caplog.at_level("WARNING", logger="halluguard.app"):
        guarded("x", request=request)
    assert e.value.message == "summary is empty" and e.value.print_exception is False
    assert [r.getMessage() for r in caplog.records] == ["halluguard app: verify refused: summary is empty"]
    assert boxes.pop(request) == "summary is empty" and boxes.pop(request) == "the request failed"

    def do_bug(request: gr.Request):
        raise KeyError("oops")
    with pytest.raises(KeyError):  # a real bug keeps its exception (and gradio's traceback)
        boxes.guard(do_bug)(request)
    assert "KeyError" in boxes.pop(request)


def test_app_py_takes_flags_from_env_then_command_line(tmp_path, monkeypatch):
    """`python app.py` on a host that passes no flags (Hugging Face Spaces): HALLUGUARD_APP_ARGS and
    GRADIO_SERVER_* decide; flags on the command line still win."""
    import importlib.util

    monkeypatch.setenv("HALLUGUARD_APP_ARGS", f"--output-dir {tmp_path / 'out'} --max-upload-mb 3")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    monkeypatch.setenv("HALLUGUARD_AUTH", "ann:s3cret")
    path = Path(__file__).resolve().parent.parent / "app.py"
    spec = importlib.util.spec_from_file_location("halluguard_app_entry_env", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    launched = []

    class Demo:
        def launch(self, **kw):
            launched.append(kw)

    monkeypatch.setattr(mod, "demo", Demo())
    monkeypatch.setattr(mod, "build_demo", lambda cfg: Demo())
    assert mod.main([]) == 0
    assert (launched[-1]["server_name"], launched[-1]["server_port"], launched[-1]["max_file_size"]) == (
        "0.0.0.0", 7999, 3 * 1024 * 1024)
    assert mod.main(["--port", "7001", "--max-upload-mb", "5"]) == 0
    assert (launched[-1]["server_port"], launched[-1]["max_file_size"]) == (7001, 5 * 1024 * 1024)


def test_the_offline_entail_model_is_a_verifier_choice_in_the_app():
    """`python app.py --verifier entail` runs the shipped entailment model (no weights to pass) and its
    spans get the model colour in the legend."""
    cfg = AppConfig(verifier="entail")
    hub = ModelHub(cfg)
    src = "The city council postponed the vote on the new budget on Monday after a long debate."
    flip = hub.verify(src, "The council did not postpone the vote.")
    para = hub.verify(src, "The council pushed the vote back.")
    assert flip.backend == "entail" and flip.score > para.score
    assert set(H.color_map_for("entail")) == {"model"}
