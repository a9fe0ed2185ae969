"""`halluguard data sft`: stage-A data from a local file (the fixture, CNN/DM's column names) and from a hub
set (the real `datasets.load_dataset` call, answered by a stand-in: tests never download)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from halluguard.cli import main
from halluguard.train import sft_data
from halluguard.train.sft_data import SFTDataConfig, build_sft_data

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "cnn_dm_sample.jsonl"
CNN_COLUMNS = ["--document-column", "article", "--summary-column", "highlights"]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_local_file_to_train_and_heldout(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["data", "sft", "--from", str(FIXTURE), *CNN_COLUMNS, "--out-dir", str(out),
                 "--heldout-size", "2"]) == 0
    printed = capsys.readouterr().out
    assert "4 training rows" in printed and "2 held-out rows" in printed and "training/sft.py" in printed
    train, held = read_jsonl(out / "sft_train.jsonl"), read_jsonl(out / "heldout.jsonl")
    assert len(train) == 4 and len(held) == 2
    # the fixture's 6 good rows, each once; the duplicate (other case and spacing), the 4-word document,
    # the empty and the one-word summaries are left out and counted
    assert sorted(r["id"] for r in train + held) == ["t1", "t2", "t3", "t4", "t5", "t6"]
    report = json.loads((out / "sft_data.json").read_text())
    assert report["left_out"] == {"empty": 1, "short_document": 1, "long_document": 0, "short_summary": 1,
                                  "duplicate": 1}
    assert report["rows_read"] == 10
    # highlights are one sentence per line without full stops: joined into one paragraph
    t1 = next(r for r in train + held if r["id"] == "t1")
    assert t1["summary"] == "Keld will build a 9 million euro breakwater to shelter its fishing fleet. Work starts in June."
    assert set(t1) == {"id", "document", "summary", "origin"}


def test_heldout_documents_pass_the_verdicts_leakage_check(tmp_path):
    from halluguard.train.verdict import check_held_out

    report = build_sft_data(SFTDataConfig(source=str(FIXTURE), document_column="article",
                                          summary_column="highlights", out_dir=str(tmp_path), heldout_size=3))
    held = [r["document"] for r in read_jsonl(Path(report["heldout_file"]))]
    check_held_out(held, [report["train_file"]])  # raises if an evaluation document is in the training file
    with pytest.raises(ValueError, match="also appear"):
        check_held_out(held, [report["heldout_file"]])  # the check itself is live


def test_the_file_is_what_stage_a_reads(tmp_path):
    pytest.importorskip("datasets")
    from halluguard.train import common, sft

    report = build_sft_data(SFTDataConfig(source=str(FIXTURE), document_column="article",
                                          summary_column="highlights", out_dir=str(tmp_path), heldout_size=0))
    args = sft.SFTArguments()
    ds = common.read_table(report["train_file"], [args.document_column, args.summary_column])
    rows = sft.to_prompt_completion(ds, args)
    assert len(rows) == 6 and report["heldout_file"] is None
    assert rows[0]["completion"][0]["role"] == "assistant" and rows[0]["completion"][0]["content"]


def test_split_is_seeded_and_reruns_need_overwrite(tmp_path):
    cfg = {"source": str(FIXTURE), "document_column": "article", "summary_column": "highlights", "heldout_size": 2}
    a = build_sft_data(SFTDataConfig(out_dir=str(tmp_path / "a"), **cfg))
    b = build_sft_data(SFTDataConfig(out_dir=str(tmp_path / "b"), **cfg))
    assert Path(a["train_file"]).read_bytes() == Path(b["train_file"]).read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        build_sft_data(SFTDataConfig(out_dir=str(tmp_path / "a"), **cfg))
    c = build_sft_data(SFTDataConfig(out_dir=str(tmp_path / "a"), overwrite=True, seed=7, **cfg))
    assert c["train_rows"] == 4
    assert main(["data", "sft", "--from", str(FIXTURE), *CNN_COLUMNS, "--out-dir", str(tmp_path / "a")]) == 2


def test_yaml_config_flags_override_and_unknown_keys_fail(tmp_path, capsys):
    cfg = tmp_path / "data.yaml"
    cfg.write_text(f"source: {FIXTURE}\ndocument_column: article\nsummary_column: highlights\n"
                   f"out_dir: {tmp_path / 'from_yaml'}\nheldout_size: 1\n")
    assert main(["data", "sft", "--config", str(cfg), "--heldout-size", "3"]) == 0
    assert len(read_jsonl(tmp_path / "from_yaml" / "heldout.jsonl")) == 3  # the flag won
    capsys.readouterr()
    cfg.write_text(f"source: {FIXTURE}\nheldout_rows: 1\n")
    assert main(["data", "sft", "--config", str(cfg)]) == 2
    assert "unknown key(s) ['heldout_rows']" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--from", str(FIXTURE)], "no column(s) ['document', 'summary']"),
    (["--from", "no/such/file.jsonl"], "no such file"),
    (["--from", "not a source"], "is not a preset"),
    (["--from", str(FIXTURE), *CNN_COLUMNS, "--max-document-words", "5"], "max_document_words (5) is below"),
    (["--from", str(FIXTURE), *CNN_COLUMNS, "--min-document-words", "500", "--max-document-words", "600"],
     "no usable training rows"),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, message):
    assert main(["data", "sft", *argv, "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------------
# Hub sets: the code a user with internet runs, with `datasets.load_dataset` answered from the fixture
class FakeStream:
    def __init__(self, rows):
        self.rows = rows

    def shuffle(self, seed, buffer_size):
        return FakeStream(list(reversed(self.rows)))

    def __iter__(self):
        return iter(self.rows)


@pytest.fixture
def fake_hub(monkeypatch):
    datasets = pytest.importorskip("datasets")
    rows = read_jsonl(FIXTURE)
    calls = []

    def load_dataset(path, name=None, split=None, revision=None, streaming=False):
        calls.append({"path": path, "name": name, "split": split, "streaming": streaming})
        # test split: t5, t6 and t1 again (a document in both splits must stay on the held-out side only)
        return FakeStream(rows[:4] if split == "train" else [rows[4], rows[5], rows[0]])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(sft_data, "_hub_unusable", lambda: None)
    return calls


def test_cnn_dailymail_preset_streams_train_and_test_splits(tmp_path, fake_hub):
    # asks for 4 training rows; the train split has 4, but t1 is already held out: 3 are written
    report = build_sft_data(SFTDataConfig(source="cnn_dailymail", out_dir=str(tmp_path), train_size=4,
                                          heldout_size=3))
    assert {(c["path"], c["name"], c["split"], c["streaming"]) for c in fake_hub} == {
        ("abisee/cnn_dailymail", "3.0.0", "test", True), ("abisee/cnn_dailymail", "3.0.0", "train", True)}
    held, train = read_jsonl(tmp_path / "heldout.jsonl"), read_jsonl(tmp_path / "sft_train.jsonl")
    assert sorted(r["id"] for r in held) == ["t1", "t5", "t6"]
    assert sorted(r["id"] for r in train) == ["t2", "t3", "t4"]  # t1 is held out, so not trained on
    assert {r["origin"] for r in held} == {"abisee/cnn_dailymail:test"}
    assert report["licence"] == "Apache-2.0" and report["left_out"]["duplicate"] == 1


def test_any_hub_set_without_a_test_split_is_split_by_document(tmp_path, fake_hub):
    report = build_sft_data(SFTDataConfig(source="someone/news-summaries", document_column="article",
                                          summary_column="highlights", out_dir=str(tmp_path), train_size=2,
                                          heldout_size=1))
    assert [c["split"] for c in fake_hub] == ["train"]
    assert report["train_rows"] == 2 and report["heldout_rows"] == 1


def test_offline_hub_fails_at_once_with_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert main(["data", "sft", "--from", "cnn_dailymail", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "hub cannot be used" in err and "local JSONL/CSV/Parquet file" in err
    assert not (tmp_path / "sft_train.jsonl").exists()


def test_dry_run_writes_nothing(tmp_path, capsys):
    assert main(["data", "sft", "--from", "cnn_dailymail", "--out-dir", str(tmp_path / "d"), "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["would_read"] == "abisee/cnn_dailymail" and plan["columns"]["document"] == "article"
    assert not (tmp_path / "d").exists()


def test_a_missing_recipe_data_file_says_how_to_build_it(tmp_path):
    from halluguard.train.common import read_table

    with pytest.raises(FileNotFoundError, match="halluguard data sft"):
        read_table(tmp_path / "data" / "sft_train.jsonl", ["document", "summary"], "input")


def test_the_data_command_stays_light_for_help():
    """`halluguard --help` builds every parser: adding `data sft` must not import datasets, torch or yaml."""
    import subprocess
    import sys

    code = ("import sys, halluguard.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'yaml', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_csv_and_parquet_sources(tmp_path, fmt):
    pd = pytest.importorskip("pandas")
    df = pd.read_json(FIXTURE, lines=True)
    src = tmp_path / f"articles.{fmt}"
    df.to_csv(src, index=False) if fmt == "csv" else df.to_parquet(src)
    report = build_sft_data(SFTDataConfig(source=str(src), document_column="article", summary_column="highlights",
                                          out_dir=str(tmp_path / "out"), heldout_size=2))
    assert (report["train_rows"], report["heldout_rows"]) == (4, 2) and report["left_out"]["duplicate"] == 1
