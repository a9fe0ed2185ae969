"""Stage-B trainer (halluguard.train.dpo): same maths as stock TRL 1.16 DPOTrainer, and each memory
lever's code path on the CPU with a tiny model.

Tolerance of the equivalence test: float32 on the CPU, |loss difference| <= 1e-5 and every LoRA
gradient within rtol 1e-4 / atol 1e-6 of stock TRL's (the split forward and the vocabulary chunking
only reorder float sums)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from datasets import Dataset
from peft import LoraConfig
from transformers import AutoConfig, AutoModelForCausalLM
from trl import DPOConfig, DPOTrainer

from halluguard.train.dpo import (
    CPUOffloadedEmbedding,
    HalluguardDPOConfig,
    HalluguardDPOTrainer,
    _largest_divisor_at_most,
    build_dpo_trainer,
    offload_input_embeddings,
    restore_input_embeddings,
)
from halluguard.train import tiling
from halluguard.train.tiling import SEGMENTED_ATTENTION, _TiledForward

LOSS_ATOL = 1e-5
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-6


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pairs() -> Dataset:
    # Chosen and rejected of different lengths, so padding and the per-slice trimming are exercised.
    rows = [
        {"prompt": "the report says revenue grew four percent in march", "chosen": " revenue grew four percent",
         "rejected": " revenue fell sharply in march after the merger was announced by the board"},
        {"prompt": "the mayor opened a bridge on friday", "chosen": " a bridge opened on friday",
         "rejected": " the mayor closed it"},
    ]
    return Dataset.from_list(rows)


def lora(**kw) -> LoraConfig:
    # init_lora_weights=False: B is random too, so the policy differs from the reference and every
    # LoRA matrix gets a non-zero gradient (with B=0 half of them would be trivially zero).
    return LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM",
                      init_lora_weights=False, **kw)


def common(tmp_path, **kw) -> dict:
    return dict(output_dir=str(tmp_path), per_device_train_batch_size=2, max_length=64, report_to=[],
                bf16=False, use_cpu=True, gradient_checkpointing=False, save_strategy="no", seed=0,
                disable_tqdm=True, **kw)


def loss_and_grads(trainer) -> tuple[float, dict[str, torch.Tensor]]:
    if trainer.args.gradient_checkpointing:  # the Trainer turns it on in train(), not in __init__
        trainer.model.activation_checkpointing_enable(
            activation_checkpointing_kwargs=trainer.args.activation_checkpointing_kwargs)
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    inputs = trainer._prepare_inputs(batch)
    loss = trainer.compute_loss(trainer.model, inputs)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters()
             if p.requires_grad and "lora" in n}
    return float(loss), grads


@pytest.fixture(scope="module")
def stock_result(tiny_llama_path, tokenizer, tmp_path_factory):
    stock = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_llama_path),
                       args=DPOConfig(**common(tmp_path_factory.mktemp("stock"))), train_dataset=pairs(),
                       processing_class=tokenizer, peft_config=lora())
    loss, grads = loss_and_grads(stock)
    assert abs(loss - 0.6931) > 1e-3, "policy == reference: the test would not see a wrong reference"
    return loss, grads


# The long-document levers: MLP tiles of 5 tokens (every row of the tiny batch is 12-40 tokens, so each
# MLP call runs several tiles, the last one short), attention as two SDPA calls per packed row, and
# gradient checkpointing on (the tiles are recomputed inside a recomputed layer, as on the GPU).
LONG = {"share_prompt": True, "segmented_attention": True, "mlp_tile_tokens": 5}


@pytest.mark.parametrize("levers", [
    {"embeddings_on_cpu": True, "sequences_per_forward": 1, "logp_chunk_size": 7},
    {"share_prompt": True},
    {"share_prompt": True, "sequences_per_forward": 1, "embeddings_on_cpu": True},
    {**LONG, "gradient_checkpointing": True},
    {**LONG, "sequences_per_forward": 1, "embeddings_on_cpu": True, "logp_chunk_size": 7},
    {"mlp_tile_tokens": 3, "sequences_per_forward": 1, "gradient_checkpointing": True},
], ids=["embcpu+split+chunk", "share_prompt", "share_prompt+one_pair_per_forward+embcpu",
        "long:tiled_mlp+segmented_attention+checkpointing", "long+one_pair_per_forward+embcpu+chunk",
        "tiled_mlp+split(no sharing)"])
def test_loss_and_lora_grads_match_stock_trl(stock_result, levers, tiny_llama_path, tokenizer, tmp_path):
    ref_loss, ref_grads = stock_result
    cfg = HalluguardDPOConfig(**{**common(tmp_path), **levers}, memory_profile="stock")
    ours = HalluguardDPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_llama_path), args=cfg,
                                train_dataset=pairs(), processing_class=tokenizer, peft_config=lora())
    base = ours.model.get_base_model()
    if levers.get("segmented_attention"):
        assert base.config._attn_implementation == SEGMENTED_ATTENTION
    if levers.get("mlp_tile_tokens"):
        assert all(isinstance(layer.mlp.__dict__.get("forward"), _TiledForward) for layer in base.model.layers)
    if levers.get("embeddings_on_cpu"):
        assert ours.embeddings_offloaded
        assert isinstance(ours.model.get_base_model().get_input_embeddings(), CPUOffloadedEmbedding)
    tiling.CALLS.clear()
    loss, grads = loss_and_grads(ours)
    if levers.get("mlp_tile_tokens") and levers.get("gradient_checkpointing"):
        # the recompute skipped the tiles (Llama layers), the backward ran them
        assert tiling.CALLS["tiled_mlp_recompute_skipped"] > 0, tiling.CALLS
    if levers.get("share_prompt"):
        calls = ours.shared_prompt_calls()
        assert calls["shared"] == 2 and calls["plain"] == 0, calls  # policy + reference forward, both shared
    assert abs(loss - ref_loss) <= LOSS_ATOL
    assert grads.keys() == ref_grads.keys() and len(grads) == 2 * 7 * 2  # A and B, 7 linears, 2 layers
    for name, g in grads.items():
        assert g.abs().sum() > 0, name
        torch.testing.assert_close(g, ref_grads[name], rtol=GRAD_RTOL, atol=GRAD_ATOL, msg=name)


def test_cached_reference_gives_the_same_loss(tiny_llama_path, tokenizer, tmp_path):
    live = HalluguardDPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_llama_path),
                                args=HalluguardDPOConfig(**common(tmp_path / "a")), train_dataset=pairs(),
                                processing_class=tokenizer, peft_config=lora())
    cached = HalluguardDPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_llama_path),
        args=HalluguardDPOConfig(**common(tmp_path / "b"), precompute_ref_log_probs=True, sequences_per_forward=1),
        train_dataset=pairs(), processing_class=tokenizer, peft_config=lora())
    assert cached.ref_precompute_seconds > 0
    a, _ = loss_and_grads(live)
    b, _ = loss_and_grads(cached)
    assert abs(a - b) <= LOSS_ATOL


def test_sft_adapter_is_the_reference(tiny_llama_path, tokenizer, tmp_path):
    """Starting from a stage-A adapter (a PeftModel, no peft_config) the reference is the SFT policy:
    before any update, policy == reference, so the DPO loss is exactly log 2."""
    from peft import get_peft_model

    sft = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_path), lora())  # random, non-zero B
    cfg = HalluguardDPOConfig(**common(tmp_path), share_prompt=True, embeddings_on_cpu=True)
    trainer = build_dpo_trainer(sft, tokenizer, pairs(), None, cfg)
    assert "ref" in trainer.model.peft_config and trainer.embeddings_offloaded
    loss, _ = loss_and_grads(trainer)
    assert loss == pytest.approx(0.693147, abs=1e-5)


def test_embedding_offload_roundtrip(tiny_llama_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_path)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
    assert offload_input_embeddings(model, freeze=True)
    emb = model.get_input_embeddings()
    assert isinstance(emb, CPUOffloadedEmbedding) and emb.weight.device.type == "cpu"
    assert all("embed_tokens" not in n for n, _ in model.named_parameters())  # hidden from .to()/optimizers
    model.to("cpu")
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, before)
    assert not offload_input_embeddings(model)  # already offloaded
    assert restore_input_embeddings(model)
    assert isinstance(model.get_input_embeddings(), torch.nn.Embedding)


def test_tied_embeddings_stay(tiny_llama_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_path)
    model.lm_head.weight = model.get_input_embeddings().weight
    assert not offload_input_embeddings(model)
    assert isinstance(model.get_input_embeddings(), torch.nn.Embedding)


def test_profiles_and_overrides(tmp_path):
    fit = HalluguardDPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, memory_profile="fit")
    assert fit.activation_offloading and fit.embeddings_on_cpu and fit.sequences_per_forward == 1
    assert getattr(fit.optim, "value", fit.optim) == "adamw_8bit"
    fast = HalluguardDPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, memory_profile="fast",
                               embeddings_on_cpu=False)
    assert fast.precompute_ref_log_probs and fast.memory_cap_gb == 12.0
    assert fast.embeddings_on_cpu is False  # an explicit value wins over the profile
    with pytest.raises(ValueError, match="memory_profile"):
        HalluguardDPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, memory_profile="tiny")
    with pytest.raises(ValueError, match="sequences_per_forward"):
        HalluguardDPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, sequences_per_forward=0)


def test_micro_batch_sized_to_cap_keeps_effective_batch(tiny_llama_path, tokenizer, tmp_path):
    cfg = HalluguardDPOConfig(**{**common(tmp_path), "per_device_train_batch_size": 1},
                              gradient_accumulation_steps=4, memory_cap_gb=1.0)
    trainer = build_dpo_trainer(AutoModelForCausalLM.from_pretrained(tiny_llama_path), tokenizer, pairs(), None, cfg,
                                peft_config=lora())
    a = trainer.args
    assert a.per_device_train_batch_size * a.gradient_accumulation_steps == 4
    assert a.per_device_train_batch_size == 4  # a tiny model: the whole effective batch fits in one micro-batch
    assert _largest_divisor_at_most(12, 5) == 4 and _largest_divisor_at_most(7, 3) == 1


def test_empty_dataset_is_a_value_error(tiny_llama_path, tokenizer, tmp_path):
    with pytest.raises(ValueError, match="empty"):
        build_dpo_trainer(AutoModelForCausalLM.from_pretrained(tiny_llama_path), tokenizer, Dataset.from_list([]),
                          None, HalluguardDPOConfig(**common(tmp_path)), peft_config=lora())


def _word_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(vocab_size - 2)}
    vocab["<pad>"], vocab["</s>"] = vocab_size - 2, vocab_size - 1
    tk = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>")


@pytest.mark.gpu
@pytest.mark.parametrize("profile", ["fit", "long"])
def test_gpu_4bit_fit_levers_match_stock_trl(tmp_path, profile):
    """On CUDA, NF4 base, bf16, gradient checkpointing: the fit levers (shared prompt, activation offloading,
    embeddings on CPU, 8k vocabulary tiles) and the long ones (plus 128-token MLP tiles and segmented
    attention through SDPA's kernels) against stock TRL on the same batch. bf16 tolerance:
    |loss difference| <= 5e-3 and each LoRA gradient within 5 % (relative L2) of stock's."""
    from transformers import BitsAndBytesConfig, LlamaConfig

    vocab = 2048
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      pad_token_id=vocab - 2, eos_token_id=vocab - 1, tie_word_embeddings=False)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / "m")
    tok = _word_tokenizer(vocab)
    g = torch.Generator().manual_seed(0)

    def words(n):
        return " ".join(f"w{int(i)}" for i in torch.randint(0, vocab - 2, (n,), generator=g))

    data = Dataset.from_list([{"prompt": words(n), "chosen": " " + words(c), "rejected": " " + words(r)}
                              for n, c, r in ((300, 40, 70), (200, 90, 30))])
    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                           bnb_4bit_compute_dtype=torch.bfloat16)

    def load():
        return AutoModelForCausalLM.from_pretrained(tmp_path / "m", quantization_config=q, dtype=torch.bfloat16,
                                                    device_map={"": 0})

    kw = {"per_device_train_batch_size": 2, "max_length": 512, "report_to": [], "bf16": True, "gradient_checkpointing": True,
              "save_strategy": "no", "seed": 0, "disable_tqdm": True}
    stock = DPOTrainer(model=load(), args=DPOConfig(output_dir=str(tmp_path / "a"), **kw), train_dataset=data,
                       processing_class=tok, peft_config=lora())
    ref_loss, ref_grads = loss_and_grads(stock)
    extra = {"mlp_tile_tokens": 128} if profile == "long" else {}
    cfg_ours = HalluguardDPOConfig(output_dir=str(tmp_path / "b"), memory_profile=profile, optim="adamw_torch",
                                   **kw, **extra)
    tiling.CALLS.clear()
    ours = HalluguardDPOTrainer(model=load(), args=cfg_ours, train_dataset=data, processing_class=tok,
                                peft_config=lora())
    with ours.maybe_activation_offload_context:
        loss, grads = loss_and_grads(ours)
    assert ours.shared_prompt_calls() == {"shared": 2, "plain": 0}
    assert ours.embeddings_offloaded
    if profile == "long":
        assert tiling.CALLS["tiled_mlp"] > 0 and tiling.CALLS["segmented_attention"] > 0, tiling.CALLS
    worst = max(float((grads[n].float() - ref_grads[n].float()).norm() / ref_grads[n].float().norm()) for n in grads)
    print(f"GPU equivalence ({profile}): |loss diff| {abs(loss - ref_loss):.2e}, worst LoRA grad rel. L2 diff {worst:.2e}")
    assert abs(loss - ref_loss) <= 5e-3
    assert worst <= 0.05


def test_pair_layout_and_mask():
    from halluguard.train.dpo import _shared_mask, pair_layout

    # TRL's layout: [chosen_0, chosen_1, rejected_0, rejected_1], right padded; prompt = 3 and 2 tokens.
    ids = torch.tensor([[1, 2, 3, 10, 11, 0], [4, 5, 12, 0, 0, 0], [1, 2, 3, 20, 0, 0], [4, 5, 21, 22, 23, 0]])
    attn = (ids != 0).long()
    comp = torch.tensor([[0, 0, 0, 1, 1, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 0, 0], [0, 0, 1, 1, 1, 0]])
    labels = ids.masked_fill(comp == 0, -100)
    assert pair_layout(ids, attn, labels) == [(3, 5, 4), (2, 3, 5)]
    other = ids.clone()
    other[2, 1] = 9  # rejected_0's prompt differs from chosen_0's: no sharing
    assert pair_layout(other, attn, labels) is None
    left = torch.roll(attn, 1, dims=1)  # left padding: not TRL's layout, fall back
    assert pair_layout(ids, left, labels) is None
    assert pair_layout(ids[:3], attn[:3], labels[:3]) is None  # odd number of rows

    m = _shared_mask([(3, 5, 4)], 7, "cpu")[0, 0]  # packed: prompt 0-2, chosen 3-4, rejected 5, pad 6
    assert m[4, :5].all() and not m[4, 5:].any()  # chosen sees prompt + itself, causally
    assert m[5, :3].all() and not m[5, 3:5].any() and m[5, 5]  # rejected sees prompt, not chosen
    assert not m[:6, 6].any() and m[6, 6] and m[6].sum() == 1  # padding: hidden, sees only itself


def test_tiled_mlp_matches_untiled_and_keeps_its_recompute_out_of_outer_hooks():
    """TiledMLPFunction: same output and gradients as the plain MLP (tiles of 5 over 23 tokens, dropout on:
    the backward replays the forward's random masks), and its per-tile recompute in the backward does not go
    through outer saved-tensor hooks (TRL's activation offloading keeps them active during the backward)."""
    from torch import nn

    from halluguard.train.tiling import TiledMLPFunction

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Dropout(0.3), nn.Linear(32, 8))
    x = torch.randn(1, 23, 8, requires_grad=True)
    g = torch.randn(1, 23, 8)
    rng = torch.get_rng_state()
    y_tiled = TiledMLPFunction.apply(mlp, 5, x)
    y_tiled.backward(g)
    grads_tiled = [x.grad.clone()] + [p.grad.clone() for p in mlp.parameters()]
    x.grad = None
    mlp.zero_grad()
    torch.set_rng_state(rng)  # the untiled run draws the same dropout masks, tile after tile
    y_plain = torch.cat([mlp(x[:, s:s + 5]) for s in range(0, 23, 5)], dim=1)
    y_plain.backward(g)
    grads_plain = [x.grad.clone()] + [p.grad.clone() for p in mlp.parameters()]
    torch.testing.assert_close(y_tiled, y_plain)
    for a, b in zip(grads_tiled, grads_plain):
        torch.testing.assert_close(a, b)

    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t.shape) or t, lambda t: t):
        y = TiledMLPFunction.apply(mlp, 5, x)
        n_forward = len(packed)
        y.backward(g)
    assert n_forward == 1 and len(packed) == 1  # only x, saved once in the forward


@pytest.mark.parametrize("reentrant", [False, True], ids=["non_reentrant", "reentrant"])
def test_tiled_mlp_skips_its_checkpoint_recompute_with_the_same_gradients(tiny_llama_path, reentrant):
    """In a Llama layer (`residual + mlp(norm(h))`) the checkpoint's recompute of a tiled MLP returns zeros
    instead of running the tiles (its values feed nothing the backward reads); loss and every gradient stay
    those of the untiled, checkpointed model, for both of torch's checkpoint implementations."""

    def loss_and_grads(tile):
        model = AutoModelForCausalLM.from_pretrained(tiny_llama_path)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
        model.train()
        if tile:
            assert tiling.tile_mlps(model, tile) == len(model.model.layers)
        ids = torch.randint(0, model.config.vocab_size, (2, 23), generator=torch.Generator().manual_seed(0))
        tiling.CALLS.clear()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        return float(loss), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, \
            dict(tiling.CALLS)

    ref_loss, ref_grads, _ = loss_and_grads(None)
    loss, grads, calls = loss_and_grads(5)
    layers = AutoConfig.from_pretrained(tiny_llama_path).num_hidden_layers
    # every layer: one computed forward, one skipped recompute (the backward runs the tiles itself)
    assert calls == {"tiled_mlp": layers, "tiled_mlp_recompute_skipped": layers}, calls
    assert abs(loss - ref_loss) <= LOSS_ATOL and grads.keys() == ref_grads.keys()
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=GRAD_RTOL, atol=GRAD_ATOL, msg=name)


def test_tiled_mlp_computes_its_recompute_where_the_layer_reads_the_mlp_output():
    """A layer with a norm after the MLP (Gemma, OLMo2) saves the MLP output for its backward: there the
    recompute must run the tiles. tile_mlps leaves the skip off for layers outside RESIDUAL_MLP_LAYERS, and
    forcing it on would change the gradients (why the list is an allow-list)."""
    from torch import nn
    from torch.utils.checkpoint import checkpoint


    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.up_proj, self.down_proj = nn.Linear(8, 16), nn.Linear(16, 8)

        def forward(self, x):
            return self.down_proj(torch.relu(self.up_proj(x)))

    class PostNormLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn, self.mlp, self.post_feedforward_layernorm = nn.Identity(), MLP(), nn.LayerNorm(8)

        def forward(self, h):
            return h + self.post_feedforward_layernorm(self.mlp(h))

    def grads(layer, x):
        layer.zero_grad()
        checkpoint(layer, x, use_reentrant=False).pow(2).sum().backward()
        return [p.grad.clone() for p in layer.parameters()]

    torch.manual_seed(0)
    layer, x = PostNormLayer(), torch.randn(1, 23, 8, requires_grad=True)
    ref = grads(layer, x)
    assert tiling.tile_mlps(layer, 5) == 1 and layer.mlp.forward.skip_recompute is False
    tiling.CALLS.clear()
    for a, b in zip(grads(layer, x), ref):
        torch.testing.assert_close(a, b)
    assert tiling.CALLS == {"tiled_mlp": 2}  # the forward and the recompute both ran the tiles
    layer.mlp.forward.skip_recompute = True
    assert any(not torch.allclose(a, b) for a, b in zip(grads(layer, x), ref))
