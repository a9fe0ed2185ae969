"""The one loader: quantization as a value, safetensors only, adapters switched on one base."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
import torch

from halluguard import loading
from halluguard.loading import (
    HubUnavailable,
    ModelSpec,
    QuantizationUnavailable,
    active_adapter,
    adapter_disabled,
    list_adapters,
    load_model,
    prepare_tokenizer,
    set_adapter,
)

IDS = torch.tensor([[101, 2023, 2003, 1037, 3231, 102]])


def _logits(model, ids=IDS):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def _make_adapter(base_path: str, out: Path, seed: int) -> str:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_path)
    # init_lora_weights=False: random B as well as A, so the adapter really changes the output.
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 init_lora_weights=False))
    peft_model.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def adapters(tiny_llama_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    return {"sft": _make_adapter(tiny_llama_path, root / "sft", 1),
            "dpo": _make_adapter(tiny_llama_path, root / "dpo", 2)}


@pytest.mark.parametrize("arch", ["tiny_llama_path", "tiny_qwen_path"])
def test_nf4_loads_and_runs_on_cpu(arch, request):
    import bitsandbytes as bnb

    path = request.getfixturevalue(arch)
    model, tok = load_model(path)  # nf4 is the default
    assert model.halluguard_spec.quantization == "nf4"
    linear4 = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert linear4, "no 4-bit layers"
    assert linear4[0].weight.quant_state.quant_type == "nf4"
    assert linear4[0].weight.quant_state.nested  # double quantization
    logits = _logits(model)
    assert logits.shape == (1, IDS.shape[1], model.config.vocab_size) and torch.isfinite(logits).all()
    # Quantized logits stay close to the full-precision ones (same weights, 4-bit rounding).
    full, _ = load_model(path, quantization="none")
    ref = _logits(full)
    assert torch.corrcoef(torch.stack([logits.flatten(), ref.flatten()]))[0, 1] > 0.9
    assert tok.padding_side == "left" and tok.pad_token is not None
    assert "token_type_ids" not in tok.model_input_names


def test_int8_on_cpu(tiny_llama_path):
    import bitsandbytes as bnb

    ok, why = loading.quantization_available("int8")
    if not ok:  # older bitsandbytes: the refusal must say why
        with pytest.raises(QuantizationUnavailable, match="int8"):
            load_model(tiny_llama_path, quantization="int8")
        return
    model, _ = load_model(tiny_llama_path, quantization="int8")
    assert any(isinstance(m, bnb.nn.Linear8bitLt) for m in model.modules())
    assert torch.isfinite(_logits(model)).all()


def test_none_matches_plain_transformers(tiny_qwen_path):
    from transformers import AutoModelForCausalLM

    model, _ = load_model(tiny_qwen_path, quantization="none")
    assert model.dtype == torch.float32  # auto on CPU
    plain = AutoModelForCausalLM.from_pretrained(tiny_qwen_path)
    assert torch.allclose(_logits(model), _logits(plain))
    half, _ = load_model(tiny_qwen_path, quantization="none", dtype="bf16")
    assert half.dtype == torch.bfloat16


def test_adapters_switch_on_one_base(tiny_llama_path, adapters, monkeypatch):
    from transformers import AutoModelForCausalLM

    calls = []
    real = AutoModelForCausalLM.from_pretrained.__func__

    def counting(cls, *a, **kw):
        calls.append(a)
        return real(cls, *a, **kw)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(counting))
    model, _ = load_model(ModelSpec(tiny_llama_path, quantization="none", adapters=adapters))
    assert len(calls) == 1
    assert list_adapters(model) == ["sft", "dpo"] and active_adapter(model) == "sft"
    base_weight = model.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight
    ptr = base_weight.data_ptr()

    sft = _logits(model)
    set_adapter(model, "dpo")
    dpo = _logits(model)
    set_adapter(model, None)
    bare = _logits(model)
    assert active_adapter(model) is None
    set_adapter(model, "sft")
    assert torch.allclose(_logits(model), sft)  # switching back is exact
    with adapter_disabled(model):
        disabled = _logits(model)
    assert active_adapter(model) == "sft" and torch.allclose(_logits(model), sft)

    plain, _ = load_model(tiny_llama_path, quantization="none")
    base = _logits(plain)
    assert not torch.allclose(sft, dpo, atol=1e-3)
    assert not torch.allclose(sft, base, atol=1e-3)
    assert torch.allclose(bare, base, atol=1e-5) and torch.allclose(disabled, base, atol=1e-5)
    # The base was loaded once (plus the comparison model above) and its weights never moved.
    assert len(calls) == 2 and base_weight.data_ptr() == ptr
    assert not any(p.requires_grad for p in model.parameters())  # inference: adapters frozen

    with pytest.raises(ValueError, match="unknown adapter 'rl'.*sft, dpo"):
        set_adapter(model, "rl")


def test_adapters_on_4bit_base(tiny_llama_path, adapters):
    model, _ = load_model(tiny_llama_path, adapters=adapters)  # nf4 base
    a = _logits(model)
    set_adapter(model, "dpo")
    b = _logits(model)
    with adapter_disabled(model):
        base = _logits(model)
    plain, _ = load_model(tiny_llama_path)
    assert not torch.allclose(a, b, atol=1e-3)
    assert torch.allclose(base, _logits(plain), atol=1e-4)


def test_trainable_adapters(tiny_llama_path, adapters):
    model, _ = load_model(tiny_llama_path, quantization="none", adapters={"sft": adapters["sft"]},
                          adapter_trainable=True)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_adapter_context_without_adapters(tiny_qwen_path):
    model, _ = load_model(tiny_qwen_path, quantization="none")
    before = _logits(model)
    with adapter_disabled(model):
        assert torch.allclose(_logits(model), before)
    set_adapter(model, None)  # no-op on a plain model
    with pytest.raises(ValueError, match="without adapters"):
        set_adapter(model, "sft")


def test_missing_paths(tmp_path, tiny_llama_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(str(tmp_path / "no-such-model"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model("./models/not/here")
    with pytest.raises(FileNotFoundError, match="adapter 'sft'"):
        load_model(tiny_llama_path, quantization="none", adapters={"sft": str(tmp_path / "nope")})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no \\*.safetensors"):
        load_model(str(empty))


def test_adapter_dir_given_as_model(tiny_llama_path, adapters):
    with pytest.raises(ValueError, match="is a LoRA adapter, not a model.*adapters="):
        load_model(adapters["sft"])


def test_hub_id_offline_is_a_clear_error():
    # conftest switches the hub off; the error must name the id, not be a long traceback.
    with pytest.raises(FileNotFoundError, match="halluguard-test/does-not-exist"):
        load_model("halluguard-test/does-not-exist", quantization="none")


def test_refuses_pickle_only_weights(tmp_path, tiny_llama_path):
    d = tmp_path / "pickled"
    d.mkdir()
    (d / "config.json").write_text(Path(tiny_llama_path, "config.json").read_text())
    (d / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ValueError, match="pickle.*safetensors"):
        load_model(str(d), quantization="none")
    ad = tmp_path / "adapter"
    ad.mkdir()
    (ad / "adapter_config.json").write_text("{}")
    (ad / "adapter_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ValueError, match="adapter 'x'.*pickle"):
        load_model(tiny_llama_path, quantization="none", adapters={"x": str(ad)})


def test_unavailable_quantization_refuses_or_falls_back(tiny_llama_path, monkeypatch, caplog):
    monkeypatch.setattr(loading, "quantization_available", lambda kind: (False, "bitsandbytes is not installed"))
    with pytest.raises(QuantizationUnavailable, match="bitsandbytes is not installed.*allow_fallback"):
        load_model(tiny_llama_path)
    with caplog.at_level(logging.WARNING, logger="halluguard.loading"):
        model, _ = load_model(tiny_llama_path, allow_fallback=True)
    assert model.halluguard_spec.quantization == "none"
    assert "UNQUANTIZED" in caplog.text
    assert not any("4bit" in type(m).__name__ for m in model.modules())


def test_quantization_available_is_real():
    ok, why = loading.quantization_available("nf4")
    assert isinstance(ok, bool) and "bitsandbytes" in why
    assert loading.quantization_available("none") == (True, "no quantization")


def test_trust_remote_code_off_by_default(tmp_path, tiny_llama_path, monkeypatch):
    assert ModelSpec("x/y").trust_remote_code is False
    # A checkpoint that ships its own code: loading must not run it.
    d = tmp_path / "remote"
    d.mkdir()
    cfg = json.loads(Path(tiny_llama_path, "config.json").read_text())
    cfg.update(model_type="evil", auto_map={"AutoConfig": "modeling_evil.EvilConfig",
                                            "AutoModelForCausalLM": "modeling_evil.EvilModel"})
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "model.safetensors").write_bytes(Path(tiny_llama_path, "model.safetensors").read_bytes())
    marker = tmp_path / "ran"
    (d / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_model(str(d), quantization="none")
    assert not marker.exists()

    seen = {}
    from transformers import AutoModelForCausalLM

    real = AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, *a, **kw):
        seen.update(kw)
        return real(cls, *a, **kw)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    load_model(tiny_llama_path, quantization="none")
    assert seen["trust_remote_code"] is False and seen["use_safetensors"] is True


def test_spec_validation():
    with pytest.raises(ValueError, match="unknown quantization"):
        ModelSpec("a/b", quantization="gptq")
    with pytest.raises(ValueError, match="unknown dtype"):
        ModelSpec("a/b", dtype="int4")
    with pytest.raises(ValueError, match="unknown model option.*quantisation"):
        load_model("a/b", quantisation="nf4")
    assert ModelSpec("a/b", quantization="4bit", dtype="bf16").quantization == "nf4"
    assert ModelSpec({"model": "a/b"}["model"]).dtype == "auto"
    assert loading.DEFAULT_GENERATOR and loading.DEFAULT_VERIFIER_BASE


def test_tokenizer_pad_from_eos():
    from conftest import real_tokenizer

    tok = real_tokenizer()
    tok.pad_token = None
    tok.padding_side = "right"
    prepare_tokenizer(tok)
    assert tok.pad_token == tok.eos_token and tok.padding_side == "left"


def test_quant_storage_for_sharded_training(tiny_llama_path):
    # ZeRO-3 / FSDP need the packed 4-bit weights stored in one float dtype; the one loader sets it.
    model, _ = load_model(tiny_llama_path, quant_storage="bfloat16")
    qc = model.config.quantization_config
    qc = qc.to_dict() if hasattr(qc, "to_dict") else qc
    assert qc["bnb_4bit_quant_storage"] in ("bfloat16", "torch.bfloat16")


# ------------------------------------------------------------------------------- heads


def test_classifier_heads_through_the_one_loader(tiny_classifier_path, tmp_path):
    from transformers import AutoModelForTokenClassification

    from halluguard.verify._common import load_classifier

    model, tok = load_model(tiny_classifier_path, head="seq-cls", quantization="none")
    assert type(model).__name__ == "BertForSequenceClassification" and model.halluguard_spec.head == "seq-cls"
    # a classifier's tokenizer is left as saved (BERT pairs need their token type ids)
    assert tok.padding_side == "right" and "token_type_ids" in tok.model_input_names
    model, _ = load_classifier(tiny_classifier_path)  # the nli backend's entry: the same loader
    assert model.halluguard_spec.head == "seq-cls"
    AutoModelForTokenClassification.from_pretrained(tiny_classifier_path).save_pretrained(tmp_path / "tok")
    model, tok = load_model(str(tmp_path / "tok"), head="token-classification", quantization="none")
    assert type(model).__name__ == "BertForTokenClassification" and model.halluguard_spec.head == "token-cls"
    with pytest.raises(ValueError, match="unknown model head"):
        ModelSpec("a/b", head="seq2seq")


def test_nf4_token_classifier_keeps_its_head_in_full_precision(tmp_path):
    from conftest import real_tokenizer
    from transformers import AutoModelForTokenClassification, BertConfig

    if not loading.quantization_available("nf4")[0]:
        pytest.skip("bitsandbytes cannot run nf4 here")
    tok = real_tokenizer()
    cfg = BertConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                     num_attention_heads=2, num_labels=2)
    AutoModelForTokenClassification.from_config(cfg).save_pretrained(tmp_path)
    model, _ = load_model(str(tmp_path), head="token-cls", quantization="nf4")
    kinds = [type(m).__name__ for m in model.modules()]
    assert "Linear4bit" in kinds and type(model.classifier).__name__ == "Linear"


# ------------------------------------------------------------------------------- offline, fail fast


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(loading, "_PROBES", {})
    return tmp_path / "hub"


@pytest.fixture
def online_flags_off(monkeypatch):
    """As on a machine without HF_HUB_OFFLINE: only the probe can tell that the hub is unreachable."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def _fails_fast(call, *expected: str) -> str:
    import transformers  # noqa: F401 - import time is not what we measure

    t = time.perf_counter()
    with pytest.raises(HubUnavailable) as e:
        call()
    took = time.perf_counter() - t
    msg = str(e.value)
    assert took < 5, f"took {took:.1f} s"
    for part in ("the local Hugging Face cache", "hf download", "--model models/", *expected):
        assert part in msg, msg
    return msg


@pytest.mark.parametrize("head", ["causal-lm", "seq-cls", "token-cls"])
def test_uncached_hub_id_fails_fast_offline(head, empty_hub_cache):
    _fails_fast(lambda: load_model("microsoft/deberta-large-mnli", head=head, quantization="none"),
                "'microsoft/deberta-large-mnli'", "HF_HUB_OFFLINE=1 is set")


def test_unreachable_endpoint_fails_fast(empty_hub_cache, online_flags_off, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    _fails_fast(lambda: load_model("Qwen/Qwen2.5-0.5B-Instruct", quantization="none"), "cannot be reached")


def test_silent_endpoint_fails_within_the_probe_timeout(empty_hub_cache, online_flags_off, monkeypatch):
    import socket

    with socket.socket() as server:  # accepts connections (backlog) but never answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        monkeypatch.setenv("HALLUGUARD_HUB_TIMEOUT", "1")
        _fails_fast(lambda: load_model("Qwen/Qwen2.5-0.5B-Instruct", quantization="none"))


def test_cached_hub_id_loads_offline(tiny_classifier_path, empty_hub_cache):
    import shutil

    # The hub cache layout: models--owner--name/{refs/main, snapshots/<commit>/files}.
    repo = empty_hub_cache / "models--halluguard-test--tiny-cls"
    commit = "0" * 40
    shutil.copytree(tiny_classifier_path, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    model, tok = load_model("halluguard-test/tiny-cls", head="seq-cls", quantization="none")
    assert type(model).__name__ == "BertForSequenceClassification" and tok is not None


def test_cached_weights_without_tokenizer_offline(tiny_llama_path, empty_hub_cache):
    import shutil

    repo = empty_hub_cache / "models--halluguard-test--tiny-llama"
    snap = repo / "snapshots" / ("1" * 40)
    snap.mkdir(parents=True)
    for f in ("config.json", "model.safetensors", "generation_config.json"):  # weights only: an interrupted download
        shutil.copy(Path(tiny_llama_path, f), snap / f)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("1" * 40)
    _fails_fast(lambda: load_model("halluguard-test/tiny-llama", quantization="none"), "only partly in")


def test_entry_points_fail_fast_offline(empty_hub_cache, tmp_path, capsys):
    """Issue 11 item 7: `verify --backend nli --model ...`, `summarize --backend hf` and the app's hf
    generator each spent ~50 s in retries."""
    from halluguard.app.config import AppConfig
    from halluguard.app.models import ModelHub
    from halluguard.cli import main
    from halluguard.summarize import get_summarizer
    from halluguard.verify import get_verifier

    _fails_fast(lambda: get_verifier("nli", model="microsoft/deberta-large-mnli"), "deberta-large-mnli")
    _fails_fast(lambda: get_summarizer("hf", model="Qwen/Qwen2.5-0.5B-Instruct", quantization="none"))
    hub = ModelHub(AppConfig(generator="hf", model="Qwen/Qwen2.5-0.5B-Instruct", quantization="none"))
    _fails_fast(lambda: hub.summarize("hf:base", "A document."))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"source": "a b.", "summary": "a."}) + "\n")
    t = time.perf_counter()
    rc = main(["verify", "--backend", "nli", "--model", "microsoft/deberta-large-mnli",
               "--input", str(pairs), "--output", str(tmp_path / "out.jsonl")])
    assert rc == 2 and time.perf_counter() - t < 5
    err = capsys.readouterr().err
    assert "not in the local Hugging Face cache" in err and "--model models/deberta-large-mnli" in err
