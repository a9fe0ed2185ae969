"""The entailment stage end to end on CPU: a tiny BERT built in-process, a fixture token-id export made
with the real MiniLM tokenizer, a few optimizer steps; the adapter must change and the outputs load back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import minilm_dir

PAIRS = [  # (premise, hypothesis, label, unsupported characters of the hypothesis)
    ("The council postponed the vote on Monday.", "The council did not postpone the vote.", 1, (12, 19)),
    ("The council postponed the vote on Monday.", "The vote was pushed back on Monday.", 0, None),
    ("Shares rose 8 percent after the results.", "Shares rose 8 percent because investors cheered.", 1, (22, 48)),
    ("Shares rose 8 percent after the results.", "Shares went up 8 percent.", 0, None),
    ("Ann proposed the plan and Bob opposed it.", "Bob proposed the plan.", 1, (0, 3)),
    ("Ann proposed the plan and Bob opposed it.", "Ann put forward the plan.", 0, None),
]


def tiny_bert(path: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=160)
    BertModel(cfg, add_pooling_layer=False).save_pretrained(path)
    AutoTokenizer.from_pretrained(minilm_dir()).save_pretrained(path)
    return path


def fixture_export(path: Path, repeat: int = 4, max_len: int = 48) -> Path:
    """The layout halluguard.pool.build.export_npz writes (uint16 ids, int8 labels and token labels)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_dir())
    rows = PAIRS * repeat
    enc = tok([p for p, *_ in rows], [h for _, h, *_ in rows], truncation=True, max_length=max_len,
              padding="max_length", return_offsets_mapping=True)
    ids = np.array(enc["input_ids"], np.uint16)
    tl = np.full(ids.shape, -1, np.int8)
    for r, (_, _, label, span) in enumerate(rows):
        for j, (sid, (a, b)) in enumerate(zip(enc.sequence_ids(r), enc["offset_mapping"][r])):
            if sid == 1:
                tl[r, j] = int(span is not None and a < span[1] and b > span[0])
    np.savez_compressed(path, input_ids=ids, labels=np.array([r[2] for r in rows], np.int8), token_labels=tl,
                        group=np.arange(len(rows)) % 6)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("entail")
    return tiny_bert(d / "bert"), fixture_export(d / "pairs.npz")


def test_load_pairs_marks_the_hypothesis_and_judges_only_its_pieces(tiny):
    from halluguard.train.entail import load_pairs

    data = load_pairs(tiny[1], max_len=40)
    assert data["input_ids"].shape[1] == 40
    row = data["input_ids"][0]
    tt = data["token_type_ids"][0]
    first_sep = int(np.flatnonzero(row == 102)[0])
    assert tt[: first_sep + 1].sum() == 0 and tt[first_sep + 1] == 1  # segment B starts after the first [SEP]
    assert (data["token_labels"][data["token_type_ids"] == 0] == -1).all()
    assert data["labels"].tolist()[:2] == [1.0, 0.0]


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_few_steps_change_the_weights_and_write_what_loads_back(tiny, tmp_path, method):
    import torch

    from halluguard.train import entail

    bert, data = tiny
    cfg = entail.EntailConfig(model_name_or_path=str(bert), train_file=str(data), output_dir=str(tmp_path / "out"),
                              method=method, max_steps=4, batch_size=8, eval_fraction=0.34, max_len=48,
                              learning_rate=5e-3, head_learning_rate=5e-3, log_every=1, device="cpu", seed=1)
    torch.manual_seed(1)
    before = entail.trainable_state(entail.build_model(cfg), method)  # same seed -> same start as train()
    summary = entail.train(cfg)
    out = tmp_path / "out"
    for f in ("entail.safetensors", "entail_config.json", "metrics.jsonl", "train_summary.json"):
        assert (out / f).is_file(), f
    assert summary["steps"] == 4 and summary["held_out_rows"] > 0 and "accuracy" in summary["held_out"]
    from safetensors.torch import load_file

    after = load_file(str(out / "entail.safetensors"))
    body = [k for k in after if not k.startswith(("seq_head.", "tok_head."))]
    assert body and (method == "full" or all("lora_" in k for k in body))
    lora_b = [k for k in body if "lora_B" in k] if method == "lora" else body
    changed = [k for k in lora_b if not torch.allclose(after[k].float(), before[k], atol=1e-6)]
    if method == "lora":
        assert len(changed) == len(lora_b), "every LoRA B matrix (zero at start) must have moved"
    else:  # attention key biases get no gradient (softmax ignores a shift): nearly all, not all, move
        assert len(changed) >= 0.9 * len(lora_b), f"only {len(changed)} of {len(lora_b)} encoder tensors moved"

    model, meta = entail.load_entail(out, base=str(bert))
    assert meta["method"] == method and meta["token_head"] is True
    ev = entail.load_pairs(data, 48)
    seq, tok = entail.predict(model, ev, batch_size=5)
    assert seq.shape == (len(ev["labels"]),) and tok.shape == ev["input_ids"].shape
    assert np.isfinite(seq).all()


def test_config_rejects_bad_values_and_unknown_yaml_keys(tmp_path):
    from halluguard.train.entail import EntailConfig, config_from_yaml

    with pytest.raises(ValueError, match="method"):
        EntailConfig(method="qlora")
    p = tmp_path / "entail_minilm_bad.yaml"
    p.write_text("epochs: 1\nepoch: 2\n")
    with pytest.raises(ValueError, match="epoch"):
        config_from_yaml(p)
    with pytest.raises(ValueError, match="train_file"):
        from halluguard.train.entail import train

        train(EntailConfig(train_file=None))


def test_the_recipe_parses_and_cli_overrides_win():
    from halluguard.train.entail import make_parser

    root = Path(__file__).resolve().parents[1]
    (cfg,) = make_parser().parse_args_and_config(["--config", str(root / "training/configs/entail_minilm_lora.yaml"),
                                                  "--method", "full"])
    assert cfg.method == "full" and cfg.token_head is True and cfg.model_name_or_path is None
