"""The launched app driven through gradio_client, as API users and the browser do: every tab, bad
uploads, files served only from the app's own dirs, auth, and a batch job that does not block others.

One app per module (real offline default: extractive generator + lite verifier), launched on a free
loopback port with `prevent_thread_lock=True`.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from halluguard.app import AppConfig, build_demo, launch_kwargs  # noqa: E402
from halluguard.app.ui import EXAMPLE_DOC, VERIFY_EXAMPLES  # noqa: E402

GEN1 = "extractive (1 sentence)"
MAX_MB = 0.05  # small upload limit so the "too large" case needs only a 60 KB file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(cfg: AppConfig, hub=None):
    demo = build_demo(cfg, hub)
    kw = launch_kwargs(cfg)
    kw.update(prevent_thread_lock=True, quiet=True)
    _, url, _ = demo.launch(**kw)
    return demo, url


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    out = tmp_path_factory.mktemp("app")
    cfg = AppConfig(output_dir=str(out), port=free_port(), max_upload_mb=MAX_MB)
    demo, url = launch(cfg)
    client = Client(url, verbose=False)
    client.predict(EXAMPLE_DOC, "The council voted 7 to 2.", api_name="/verify")  # warm the models once
    yield demo, url, client, cfg
    demo.close()


def test_verify_endpoint(app):
    _, _, client, _ = app
    summary = VERIFY_EXAMPLES[1][1]  # wrong vote count, cost and name
    highlight, table, overall, report = client.predict(EXAMPLE_DOC, summary, api_name="/verify")
    assert report["label"] == "hallucinated" and 0 <= report["score"] <= 1
    flagged = " ".join(t["token"] for t in highlight if t["class_or_confidence"])
    assert "9" in flagged or "6 million" in flagged, highlight
    assert "".join(t["token"] for t in highlight) == summary  # offsets cover the summary exactly
    assert table["headers"][:3] == ["#", "summary sentence", "verdict"]
    assert "unsupported" in [row[2] for row in table["data"]]
    assert "HALLUCINATED" in overall


def test_summarize_endpoint_text_and_file(app, tmp_path):
    _, _, client, _ = app
    summary, highlight, table, overall, report = client.predict(EXAMPLE_DOC, None, GEN1, api_name="/summarize")
    assert summary and summary in EXAMPLE_DOC
    assert report["summary"]["extractive"] is True and "Extractive" in overall
    f = tmp_path / "my document.txt"
    f.write_text(EXAMPLE_DOC, encoding="utf-8")
    summary2, *_ = client.predict("", handle_file(str(f)), GEN1, api_name="/summarize")
    assert summary2 == summary


def test_compare_endpoint(app):
    _, _, client, _ = app
    out = client.predict(EXAMPLE_DOC, "extractive (3 sentences)", GEN1, "The council approved a library.", api_name="/compare")
    left_hl, left_md, _, right_hl, right_md, _, table, reports = out
    assert table["headers"][:2] == ["generator", "P(hallucination)"] and "rouge1" in table["headers"]
    assert [r[0] for r in table["data"]] == ["extractive (3 sentences)", GEN1]
    assert len(reports["left"]["summary"]["text"]) > len(reports["right"]["summary"]["text"])
    assert "FAITHFUL" in left_md or "HALLUCINATED" in left_md


def _batch_file(tmp_path: Path) -> Path:
    rows = [{"doc_id": f"d{i}", "document": EXAMPLE_DOC,
             "summary": "The council voted 7 to 2 to build a library." if i % 2 == 0 else "The council voted 9 to 0 to build a stadium.",
             "reference": "The council voted 7 to 2 for a new library.", "label": i % 2} for i in range(6)]
    f = tmp_path / "rows.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return f


def test_batch_columns_and_evaluate(app, tmp_path):
    _, _, client, _ = app
    f = _batch_file(tmp_path)
    src, summ, ref, lab, idc, preview, info = client.predict(handle_file(str(f)), api_name="/batch_columns")
    assert (src["value"], summ["value"], ref["value"], lab["value"], idc["value"]) == ("document", "summary", "reference", "label", "doc_id")
    assert "6 rows" in info
    status, results, metrics_md, metrics, hist, labels, files = client.predict(
        handle_file(str(f)), "document", "summary", "reference", "label", "doc_id", False, GEN1, api_name="/batch_evaluate")
    assert status.startswith("done") and len(results["data"]) == 6
    assert metrics["rows"] == 6 and 0 <= metrics["hallucination_rate"] <= 1
    assert {"rouge1", "similarity", "balanced_accuracy", "f1"} <= set(metrics)
    assert "balanced accuracy" in metrics_md
    assert sum(r[1] for r in hist["value"]["data"]) == 6 and hist["y_lim"] == [0, 6]  # whole-row ticks
    names = sorted(Path(p).name for p in files)
    assert names == ["report.html", "results.csv", "results.jsonl"]
    by_name = {Path(p).name: Path(p) for p in files}
    assert len(by_name["results.jsonl"].read_text().splitlines()) == 6
    assert "<style>" in by_name["report.html"].read_text()
    assert len(pd.read_csv(by_name["results.csv"])) == 6


def test_batch_generate_endpoint(app, tmp_path):
    _, _, client, _ = app
    f = tmp_path / "docs.csv"
    pd.DataFrame({"text": [EXAMPLE_DOC, EXAMPLE_DOC]}).to_csv(f, index=False)
    status, results, *_ = client.predict(handle_file(str(f)), "text", "", "", "", "", True, GEN1, api_name="/batch_evaluate")
    assert status.startswith("done") and all(r[5] for r in results["data"])


@pytest.mark.parametrize("name, content, message", [
    ("wrong.csv", "title,body\na,b\n", "missing column 'source'"),
    ("latin1.csv", "source,summary\nCaf\xe9,Th\xe9\n".encode("latin-1"), "UTF-8"),
    ("rows.xlsx", b"PK\x03\x04", "(?i)file type"),  # refused by gradio (file_types) or by us
])
def test_bad_uploads_give_readable_errors(app, tmp_path, name, content, message):
    _, _, client, _ = app
    f = tmp_path / name
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(f)), "source", "summary", "", "", "", False, GEN1, api_name="/batch_evaluate")


def test_user_error_is_one_log_line_not_a_traceback(app, capfd, caplog):
    _, _, client, _ = app
    capfd.readouterr()
    with caplog.at_level("WARNING", logger="halluguard.app"), pytest.raises(AppError, match="summary is empty"):
        client.predict(EXAMPLE_DOC, "", api_name="/verify")
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert [r.getMessage() for r in caplog.records if r.name == "halluguard.app"] == [
        "halluguard app: verify refused: summary is empty"]


def test_too_large_upload_is_refused(app, tmp_path):
    _, url, client, _ = app
    f = tmp_path / "big.csv"
    f.write_text("source,summary\n" + "some words here,more words\n" * 3000)  # ~80 KB > 50 KB
    with pytest.raises(Exception, match="(?i)too large|size|413|limit"):
        client.predict(handle_file(str(f)), "source", "summary", "", "", "", False, GEN1, api_name="/batch_evaluate")
    # the server itself refuses it (not only the client): gradio's upload route answers 413
    r = httpx.post(url + "gradio_api/upload", files={"files": ("big.csv", f.read_bytes())})
    assert r.status_code == 413


def test_only_the_apps_own_files_are_served(app, tmp_path):
    _, url, _, cfg = app
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    for path in (str(secret), "/etc/passwd", str(Path(cfg.output_dir).parent / "secret.txt")):
        r = httpx.get(f"{url}gradio_api/file={path}")
        assert r.status_code in (403, 404), (path, r.status_code)
        assert "do not serve" not in r.text


def test_status_reports_lazy_models(app):
    _, _, client, cfg = app
    status = client.predict(api_name="/status")
    assert status["verifier"] == "lite" and "verifier:lite" in status["loaded"]
    assert status["max_upload_mb"] == MAX_MB and status["auth"] is False


def test_auth_and_batch_does_not_block_other_users(tmp_path):
    from test_app_handlers import FakeHub

    cfg = AppConfig(output_dir=str(tmp_path / "app"), port=free_port(), auth="ann:s3cret")
    hub = FakeHub(cfg, delay=0.04)  # 0.04 s per verified row
    demo, url = launch(cfg, hub)
    try:
        with pytest.raises(Exception):
            Client(url, verbose=False)  # no login: refused
        with pytest.raises(Exception):
            Client(url, auth=("ann", "wrong"), verbose=False)
        assert httpx.get(url + "config").status_code in (401, 403)
        client = Client(url, auth=("ann", "s3cret"), verbose=False)
        f = tmp_path / "rows.csv"
        pd.DataFrame({"source": ["The vote was 7 to 2."] * 60, "summary": ["It was 7 to 2."] * 60}).to_csv(f, index=False)
        job = client.submit(handle_file(str(f)), "source", "summary", "", "", "", False, GEN1, api_name="/batch_evaluate")
        deadline = time.time() + 30
        while hub.verifier().calls < 5 and time.time() < deadline:  # the batch is running
            time.sleep(0.05)
        t0 = time.time()
        _, _, _, report = client.predict("The vote was 7 to 2.", "It was 9 to 2.", api_name="/verify")
        waited = time.time() - t0
        assert report["label"] == "hallucinated"
        assert not job.done(), "the batch should still be running"
        assert waited < 2.0, f"verify waited {waited:.1f} s behind the batch job"
        status = job.result(timeout=60)[0]
        assert status.startswith("done: 60 rows")
    finally:
        demo.close()


SERVE_SLOW_APP = """
import sys, time
sys.path.insert(0, {tests!r})
from test_app_handlers import FakeHub
from halluguard.app import AppConfig, build_demo, launch_kwargs
cfg = AppConfig(output_dir={out!r}, port={port})
demo = build_demo(cfg, FakeHub(cfg, delay=0.08))
kw = launch_kwargs(cfg); kw.update(prevent_thread_lock=True, quiet=True)
demo.launch(**kw)
print("READY", flush=True)
while True:
    time.sleep(1)
"""


def _serve(tmp_path, out, port):
    import subprocess
    import sys

    script = tmp_path / "serve.py"
    script.write_text(SERVE_SLOW_APP.format(tests=str(Path(__file__).parent), out=str(out), port=port))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout.readline().strip() == "READY"
    return proc


@pytest.mark.slow  # two app start-ups in subprocesses (~15 s)
def test_batch_tab_survives_sigkill_and_resumes(tmp_path):
    """The app process is SIGKILLed mid-batch; the restarted app resumes: every row exactly once."""
    out = tmp_path / "app"
    f = tmp_path / "rows.csv"
    n = 24
    pd.DataFrame({"source": [f"Row {i} says 7." for i in range(n)], "summary": ["It says 7."] * n}).to_csv(f, index=False)
    args = (handle_file(str(f)), "source", "summary", "", "", "", False, GEN1)
    port = free_port()
    proc = _serve(tmp_path, out, port)
    try:
        Client(f"http://127.0.0.1:{port}/", verbose=False).submit(*args, api_name="/batch_evaluate")
        deadline = time.time() + 60
        results = []
        while time.time() < deadline:
            results = list(out.glob("runs/*/results.jsonl"))
            if results and len(results[0].read_text().splitlines()) >= 5:
                break
            time.sleep(0.1)
        proc.kill()  # SIGKILL: no cleanup, no flush beyond what the writer already did
        proc.wait(timeout=10)
        done_before = len(results[0].read_text().splitlines())
        assert 5 <= done_before < n
    finally:
        proc.kill()
    port = free_port()
    proc = _serve(tmp_path, out, port)
    try:
        status, *_ = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(*args, api_name="/batch_evaluate")
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert status.startswith(f"done: {n} rows") and "resumed" in status
    rows = [json.loads(x)["_row"] for x in results[0].read_text().splitlines()]
    assert sorted(rows) == list(range(n))  # nothing lost, nothing twice


def test_load_test_script_smoke(app):
    """benchmarks/load_test.py against the module's app: 3 users for ~1 s, no errors."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "load_test.py"
    spec = importlib.util.spec_from_file_location("load_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _, url, _, _ = app
    res = mod.run(url, users=3, duration=1.0)
    assert res["errors"] == 0 and res["ok"] >= 3 and res["p50_s"] <= res["p95_s"] <= res["max_s"]
    assert mod.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0 and mod.percentile([5.0], 95) == 5.0
