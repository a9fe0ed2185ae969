"""One loader for the generator and the verifier: a model spec in, (model, tokenizer) out.

    from halluguard.loading import ModelSpec, load_model, set_adapter, adapter_disabled

    model, tok = load_model("Qwen/Qwen2.5-7B-Instruct")                      # nf4 by default
    model, tok = load_model("./my-model", quantization="none", dtype="float32")
    spec = ModelSpec("Qwen/Qwen2.5-7B-Instruct", adapters={"sft": "out/sft", "dpo": "out/dpo"})
    model, tok = load_model(spec)          # one 4-bit base, two LoRA adapters; "sft" is active
    set_adapter(model, "dpo")              # switch, no reload of the base
    set_adapter(model, None)               # the bare base (adapters disabled)
    with adapter_disabled(model):          # e.g. the reference pass of a DPO reward
        ...

    model, tok = load_model("KRLabsOrg/lettucedect-base-modernbert-en-v1", head="token-cls",
                            quantization="none")                        # a token classifier
    model, tok = load_model("lytang/MiniCheck-RoBERTa-Large", head="seq-cls", quantization="none")

Quantization is a value ("nf4" | "int8" | "none") so tests and CPU users can turn it off. When
bitsandbytes cannot quantize here the loader raises `QuantizationUnavailable` with the reason; it
loads unquantized instead only when `allow_fallback=True`, and then logs a warning saying so.
Weights are loaded from safetensors only (no pickle), and `trust_remote_code` is off unless asked.

`head` picks the model class: "causal-lm" (generators, judges, the DPO scorer), "seq-cls" (NLI /
HHEM / MiniCheck pair classifiers), "token-cls" (LettuceDetect-style span detectors) or "encoder" (a
bare encoder whose heads the caller owns: the `entail` cross-encoder). Classifier
heads keep their classification layers in full precision when the body is 4-/8-bit, and their
tokenizer keeps its own padding side and token type ids (a causal LM's is set up for batched
generation instead).

Hub ids are looked up in the local Hugging Face cache first and loaded from there without touching
the network. An id that is not cached fails within a few seconds (`HubUnavailable`, which says how to
point at a local folder) when HF_HUB_OFFLINE is set or the hub does not answer a short probe
(HALLUGUARD_HUB_TIMEOUT seconds, default 3; 0 turns the probe off), instead of transformers'
retries (about 50 s).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Defaults (why: docs/models.md). Both ungated, Apache-2.0, instruct-tuned, with chat templates.
DEFAULT_GENERATOR = "Qwen/Qwen2.5-7B-Instruct"
DEFAULT_VERIFIER_BASE = "HuggingFaceTB/SmolLM3-3B"

QUANTIZATIONS = ("nf4", "int8", "none")
DTYPES = ("auto", "bfloat16", "float16", "float32")
HEADS = ("causal-lm", "seq-cls", "token-cls", "encoder")
_HEAD_ALIASES = {
    "causal": "causal-lm", "lm": "causal-lm", "causal_lm": "causal-lm", "generator": "causal-lm",
    "seq_cls": "seq-cls", "sequence-classification": "seq-cls", "seq-classification": "seq-cls",
    "classifier": "seq-cls", "token_cls": "token-cls", "token-classification": "token-cls",
    "base": "encoder", "backbone": "encoder",
}
# Classification heads stay in full precision under 4-/8-bit: they are tiny, their few outputs are the
# score, and bitsandbytes' CPU kernels need output sizes a 2- or 3-way head does not have.
_CLASSIFIER_MODULES = ["classifier", "score", "pooler", "out_proj"]

# Weight files we refuse: they are unpickled on load and can run arbitrary code.
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# owner/name or name, as the hub spells repository ids.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


class QuantizationUnavailable(ValueError):
    """The requested quantization cannot run here (bitsandbytes missing or failing) and fallback is off."""


class HubUnavailable(FileNotFoundError):
    """A hub id that is not in the local cache while the hub cannot be reached (offline, or no answer)."""


@dataclass
class ModelSpec:
    """What to load. Every field can also be passed to `load_model` as a keyword override."""

    model: str
    """Hub id (``owner/name``) or a local directory saved with ``save_pretrained``."""

    head: str = "causal-lm"
    """Which model class to load: ``"causal-lm"`` (text generation), ``"seq-cls"`` (a sequence classifier,
    e.g. NLI / HHEM / MiniCheck) or ``"token-cls"`` (a token classifier, e.g. LettuceDetect)."""

    quantization: str = "nf4"
    """``"nf4"``: 4-bit NormalFloat, double quantization, bf16 compute (fp16 on GPUs without bf16);
    ``"int8"``: LLM.int8(); ``"none"``: full weights in `dtype`."""

    dtype: str = "auto"
    """``"auto"`` | ``"bfloat16"`` | ``"float16"`` | ``"float32"``. Auto = bf16 on a GPU that has it,
    fp16 on an older GPU, float32 on CPU. With nf4 it is also the compute dtype (auto: bf16 on CPU)."""

    device_map: Any = "auto"
    """Passed to ``from_pretrained``: "auto" spreads over the GPUs (CPU when there is none), or "cpu",
    "cuda:0", a dict, or None (load on CPU without accelerate's dispatch)."""

    adapters: dict[str, str] = field(default_factory=dict)
    """Named LoRA adapters (name -> directory with adapter_config.json + adapter_model.safetensors),
    all loaded on one base. The first one is active after loading; switch with `set_adapter`."""

    adapter_trainable: bool = False
    """Load the adapters with trainable weights (to continue training, e.g. DPO from an SFT adapter)."""

    tokenizer: str | None = None
    """Tokenizer id or path when it differs from `model`."""

    trust_remote_code: bool = False
    """Run model code shipped with the checkpoint. Off unless you trust the repository."""

    allow_fallback: bool = False
    """When `quantization` cannot run here, load unquantized (with a warning) instead of raising."""

    revision: str | None = None
    """Hub branch, tag or commit to pin (ignored for local paths)."""

    attn_implementation: str | None = None
    """e.g. "sdpa", "flash_attention_2", "eager"; None lets transformers choose."""

    quant_storage: str | None = None
    """nf4 only: dtype the packed 4-bit weights are stored in ("bfloat16" for DeepSpeed ZeRO-3 / FSDP,
    which shard parameters of one dtype); None keeps bitsandbytes' uint8."""

    def __post_init__(self) -> None:
        if not isinstance(self.model, (str, os.PathLike)) or not str(self.model).strip():
            raise ValueError(f"model must be a hub id or a local path, got {self.model!r}")
        self.model = str(self.model)
        h = str(self.head).strip().lower()
        h = _HEAD_ALIASES.get(h, h)
        if h not in HEADS:
            raise ValueError(f"unknown model head {self.head!r}; choose one of {', '.join(HEADS)}")
        self.head = h
        q = str(self.quantization).lower()
        q = {"4bit": "nf4", "bnb.nf4": "nf4", "8bit": "int8", "bnb.int8": "int8", "bf16": "none"}.get(q, q)
        if q not in QUANTIZATIONS:
            raise ValueError(f"unknown quantization {self.quantization!r}; choose one of {', '.join(QUANTIZATIONS)}")
        self.quantization = q
        d = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32"}.get(
            str(self.dtype).lower(), str(self.dtype).lower())
        if d not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")
        self.dtype = d
        if not isinstance(self.adapters, Mapping):
            raise ValueError("adapters must be a mapping of name -> path, e.g. {'sft': 'out/sft'}")
        self.adapters = {str(k): str(v) for k, v in self.adapters.items()}
        for name in self.adapters:
            if not name or not re.match(r"^[A-Za-z0-9_-]+$", name):
                raise ValueError(f"adapter name {name!r} must be letters, digits, '_' or '-'")


# --------------------------------------------------------------------------- availability


@functools.lru_cache(maxsize=None)
def quantization_available(kind: str) -> tuple[bool, str]:
    """Whether bitsandbytes can run `kind` ("nf4" | "int8") on this machine, and why (not).

    A real round trip on a small tensor, because an importable bitsandbytes can still lack kernels for
    the device (bitsandbytes >= 0.45 runs NF4 and int8 on CPU; older builds need CUDA).
    """
    if kind == "none":
        return True, "no quantization"
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is a hard dependency
        return False, f"torch is not installed ({e})"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    where = "CUDA" if device == "cuda" else "CPU (no CUDA GPU found)"
    try:
        import bitsandbytes as bnb
        import bitsandbytes.functional as F
    except Exception as e:  # noqa: BLE001 - ImportError or a broken native library
        return False, f"bitsandbytes is not installed or fails to load ({type(e).__name__}: {e}); pip install bitsandbytes"
    try:
        x = torch.randn(64, 64, device=device, dtype=torch.float32)
        if kind == "nf4":
            q, state = F.quantize_4bit(x, quant_type="nf4", compress_statistics=True)
            err = (F.dequantize_4bit(q, state) - x).abs().mean().item()
        else:
            q, stats, _ = F.int8_vectorwise_quant(x.half())
            err = (F.int8_vectorwise_dequant(q, stats).float() - x).abs().mean().item()
        if not err < 0.5:
            return False, f"bitsandbytes {bnb.__version__} {kind} round trip on {where} is wrong (mean error {err:.3f})"
    except Exception as e:  # noqa: BLE001
        return False, f"bitsandbytes {getattr(bnb, '__version__', '?')} cannot run {kind} on {where}: {type(e).__name__}: {e}"
    return True, f"bitsandbytes {bnb.__version__} {kind} on {where}"


def _cuda_info() -> tuple[bool, bool]:
    import torch

    cuda = torch.cuda.is_available()
    return cuda, bool(cuda and torch.cuda.is_bf16_supported())


def resolve_dtype(spec: ModelSpec):
    """(weights dtype, nf4 compute dtype) as torch dtypes for this spec on this machine."""
    import torch

    cuda, bf16 = _cuda_info()
    if spec.dtype != "auto":
        d = getattr(torch, spec.dtype)
        return d, d
    if cuda:
        d = torch.bfloat16 if bf16 else torch.float16
        return d, d
    # CPU: float32 weights (fast, exact); bitsandbytes' CPU NF4 kernels compute in bf16.
    return torch.float32, torch.bfloat16


# --------------------------------------------------------------------------- paths


def looks_like_local_path(name: str) -> bool:
    """True when `name` can only mean a local path (absolute, ./, ~, backslashes, 2+ slashes)."""
    return (
        name.startswith(("/", "./", "../", "~", ".\\"))
        or "\\" in name
        or name.count("/") >= 2
        or bool(re.match(r"^[A-Za-z]:", name))
        or not _HUB_ID.match(name)
    )


def check_weights_dir(path: Path, what: str = "model") -> None:
    """Refuse a directory whose weights are pickle-only (.bin/.pt), or that holds no weights at all."""
    files = [p.name for p in path.iterdir() if p.is_file()]
    if "adapter_config.json" in files and "config.json" not in files:
        raise ValueError(f"{path} is a LoRA adapter, not a model: load its base model and pass this directory as "
                         f"an adapter, e.g. load_model(BASE, adapters={{'sft': '{path}'}})")
    if any(f.endswith(".safetensors") or f.endswith(".safetensors.index.json") for f in files):
        return
    pickles = sorted(f for f in files if f.endswith(_PICKLE_SUFFIXES))
    if pickles:
        raise ValueError(
            f"{what} directory {path} holds only pickle weights ({', '.join(pickles[:3])}); halluguard loads "
            "safetensors only because unpickling can run arbitrary code. Convert once in a trusted "
            "environment: load it and call save_pretrained(..., safe_serialization=True)."
        )
    raise FileNotFoundError(f"{what} directory {path} has no *.safetensors weights (found: {', '.join(files[:5]) or 'nothing'})")


def _resolve_source(name: str, what: str = "model") -> tuple[str, bool]:
    """(path or hub id, is_local). Raises FileNotFoundError for a local path that does not exist."""
    expanded = os.path.expanduser(name)
    p = Path(expanded)
    if p.exists():
        if not p.is_dir():
            raise NotADirectoryError(f"{what} path {name} is a file; give the directory written by save_pretrained")
        return str(p), True
    if looks_like_local_path(name):
        raise FileNotFoundError(f"{what} path {name} does not exist (and is not a hub id like 'owner/name')")
    return name, False


# --------------------------------------------------------------------------- tokenizers


def load_tokenizer(name: str, *, trust_remote_code: bool = False, revision: str | None = None,
                   local_files_only: bool = False):
    """A tokenizer ready for batched generation: left padding, a pad token (eos when missing)."""
    from transformers import AutoTokenizer

    kw = {"local_files_only": True} if local_files_only else {}
    tok = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code, revision=revision, **kw)
    prepare_tokenizer(tok)
    return tok


def prepare_tokenizer(tok):
    """Left padding (so generated tokens follow the prompt in every row) and a pad token."""
    tok.padding_side = "left"
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ValueError("tokenizer has neither a pad nor an eos token; set one before batching")
        tok.pad_token = tok.eos_token
    # Causal LMs' forward/generate reject token_type_ids (BERT-style tokenizers emit them).
    if "token_type_ids" in getattr(tok, "model_input_names", []):
        tok.model_input_names = [n for n in tok.model_input_names if n != "token_type_ids"]
    return tok


def _quantization_config(quant: str, compute_dtype, quant_storage: str | None = None, head: str = "causal-lm"):
    import torch
    from transformers import BitsAndBytesConfig

    # A classifier's head stays in full precision (see _CLASSIFIER_MODULES); a causal LM's lm_head is
    # left to transformers, which keeps it unquantized by itself.
    skip = {"llm_int8_skip_modules": list(_CLASSIFIER_MODULES)} if head != "causal-lm" else {}
    if quant == "nf4":
        extra = {"bnb_4bit_quant_storage": getattr(torch, quant_storage)} if quant_storage else {}
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
            **extra,
            **skip,
        )
    return BitsAndBytesConfig(load_in_8bit=True, **skip)


# --------------------------------------------------------------------------- the hub, offline first


def _hub_cached(repo_id: str, revision: str | None) -> bool:
    """True when `repo_id`'s config.json is in the local Hugging Face cache (so it was downloaded once)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json", revision=revision), str)
    except Exception:  # noqa: BLE001 - an odd id or cache layout: treat as not cached
        return False


def _offline_reason() -> str | None:
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return f"{var}=1 is set"
    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:  # read once when huggingface_hub was imported
            return "HF_HUB_OFFLINE was set when huggingface_hub was imported"
    except ImportError:  # pragma: no cover - a transformers dependency
        pass
    return None


def _hub_endpoint() -> str:
    try:
        from huggingface_hub import constants

        default = constants.ENDPOINT
    except ImportError:  # pragma: no cover
        default = "https://huggingface.co"
    return (os.environ.get("HF_ENDPOINT") or default).rstrip("/")


_PROBES: dict[str, tuple[float, str | None]] = {}  # endpoint -> (when, why unreachable or None)


def _probe_hub(endpoint: str, timeout: float) -> str | None:
    """None when `endpoint` answers HTTP within `timeout` seconds, else why not. Any HTTP status counts
    as an answer. Runs in a thread so a hanging DNS lookup cannot outlast the timeout; proxies from the
    environment apply (urllib). Remembered for 60 s, so a model and its tokenizer probe once."""
    import threading
    import time
    import urllib.error
    import urllib.request

    hit = _PROBES.get(endpoint)
    if hit and time.monotonic() - hit[0] < 60:
        return hit[1]
    out: dict[str, str | None] = {}

    def go() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
            out["why"] = None
        except urllib.error.HTTPError:
            out["why"] = None  # it answered
        except Exception as e:  # noqa: BLE001 - DNS, refused, timeout, TLS: all mean "cannot use it now"
            out["why"] = f"{endpoint} cannot be reached ({type(e).__name__}: {e})"

    t = threading.Thread(target=go, daemon=True, name="halluguard-hub-probe")
    t.start()
    t.join(timeout + 0.5)
    why = f"{endpoint} did not answer within {timeout:g} s" if t.is_alive() else out.get("why")
    _PROBES[endpoint] = (time.monotonic(), why)
    return why


def hub_unreachable_reason() -> str | None:
    """Why the hub cannot be used right now (offline flag, or no answer to a short probe), or None."""
    why = _offline_reason()
    if why:
        return why
    try:
        timeout = float(os.environ.get("HALLUGUARD_HUB_TIMEOUT", "3"))
    except ValueError:
        raise ValueError(f"HALLUGUARD_HUB_TIMEOUT must be a number of seconds, got "
                         f"{os.environ['HALLUGUARD_HUB_TIMEOUT']!r}") from None
    return _probe_hub(_hub_endpoint(), timeout) if timeout > 0 else None


def _unavailable(repo_id: str, why: str, partly: bool = False) -> HubUnavailable:
    name = repo_id.rsplit("/", 1)[-1]
    where = "only partly in" if partly else "not in"
    return HubUnavailable(
        f"cannot load {repo_id!r}: it is {where} the local Hugging Face cache and the hub cannot be used "
        f"({why}). Download it once where there is internet (`hf download {repo_id} --local-dir models/{name}`) "
        f"and pass that folder instead of the hub id (e.g. --model models/{name}), or set HF_HOME to a cache "
        "that holds it."
    )


def hub_cache_only(repo_id: str, revision: str | None = None) -> bool:
    """Whether to load hub id `repo_id` from the local cache only (True) or let transformers download it
    (False). Raises `HubUnavailable` within a few seconds when it is not cached and the hub is unusable."""
    if _hub_cached(repo_id, revision):
        return True
    why = hub_unreachable_reason()
    if why:
        raise _unavailable(repo_id, why)
    return False


# --------------------------------------------------------------------------- loading


def _check_sources(spec: ModelSpec) -> tuple[str, bool, dict[str, str]]:
    """(model path or hub id, is_local, adapter name -> path), after the safety checks on local dirs."""
    source, local = _resolve_source(spec.model)
    if local:
        check_weights_dir(Path(source))
    adapter_dirs = {}
    for name, path in spec.adapters.items():
        p, is_local = _resolve_source(path, what=f"adapter {name!r}")
        if is_local:
            _check_adapter_dir(Path(p), name)
        adapter_dirs[name] = p
    return source, local, adapter_dirs


def _settle_quantization(spec: ModelSpec, cuda: bool) -> ModelSpec:
    """The spec with the quantization that will really run: raise, or fall back when allowed."""
    if spec.quantization == "none":
        return spec
    ok, why = quantization_available(spec.quantization)
    if not ok:
        if not spec.allow_fallback:
            raise QuantizationUnavailable(
                f"cannot load {spec.model} in {spec.quantization}: {why}. Pass allow_fallback=True "
                "(--allow-fallback) to load it unquantized instead, or quantization='none'."
            )
        logger.warning("%s unavailable (%s); loading %s UNQUANTIZED because allow_fallback=True",
                       spec.quantization, why, spec.model)
        return dataclasses.replace(spec, quantization="none")
    if not cuda:
        logger.warning("no CUDA GPU: loading %s in %s on the CPU with bitsandbytes' CPU kernels (slow "
                       "for large models)", spec.model, spec.quantization)
    return spec


def _from_pretrained_kwargs(spec: ModelSpec, local: bool, cuda: bool) -> dict[str, Any]:
    weights_dtype, compute_dtype = resolve_dtype(spec)
    kwargs: dict[str, Any] = dict(
        trust_remote_code=spec.trust_remote_code,
        use_safetensors=True,
        dtype=compute_dtype if spec.quantization == "nf4" and cuda else weights_dtype,
    )
    if spec.revision and not local:
        kwargs["revision"] = spec.revision
    # Classifiers go on one device unless there is a GPU to place them on: several encoder classes
    # (and HHEM's remote code) cannot be dispatched with device_map="auto".
    if spec.device_map is not None and (spec.head == "causal-lm" or cuda):
        kwargs["device_map"] = spec.device_map
    if spec.attn_implementation:
        kwargs["attn_implementation"] = spec.attn_implementation
    if spec.quantization != "none":
        kwargs["quantization_config"] = _quantization_config(spec.quantization, compute_dtype,
                                                             spec.quant_storage, spec.head)
    return kwargs


def _auto_class(head: str):
    import transformers

    return {"causal-lm": transformers.AutoModelForCausalLM,
            "seq-cls": transformers.AutoModelForSequenceClassification,
            "token-cls": transformers.AutoModelForTokenClassification,
            # A bare encoder whose heads live outside transformers (the `entail` cross-encoder).
            "encoder": transformers.AutoModel}[head]


def _load_weights(spec: ModelSpec, source: str, local: bool, cache_only: bool, kwargs: dict[str, Any]):
    auto = _auto_class(spec.head)
    try:
        return auto.from_pretrained(source, **kwargs, **({"local_files_only": True} if cache_only else {}))
    except OSError as e:
        if local:
            raise
        if cache_only:  # config cached, weights not (an interrupted download): fetch them if we can
            why = hub_unreachable_reason()
            if why:
                raise _unavailable(spec.model, why, partly=True) from None
            return _load_weights(spec, source, local, False, kwargs)
        raise FileNotFoundError(
            f"could not load {spec.model!r}: not a local directory, and the hub gave: {e}".splitlines()[0]
        ) from e


def _load_model_tokenizer(spec: ModelSpec, source: str, local: bool, cache_only: bool):
    """The tokenizer: prepared for generation (causal LMs); as saved (classifiers), or None when a
    classifier's repository has none (HHEM brings its own inside the model)."""
    name = source
    if spec.tokenizer:
        name, tok_local = _resolve_source(spec.tokenizer, what="tokenizer")
        cache_only = False if tok_local else hub_cache_only(name)
    revision = spec.revision if not local and not spec.tokenizer else None
    try:
        return _tokenizer_for_head(spec, name, revision, cache_only)
    except Exception:  # noqa: BLE001 - not in the cache (weights were), or no tokenizer files at all
        if not cache_only:
            raise
    why = hub_unreachable_reason()  # the model came from the cache; its tokenizer files did not
    if why and spec.head == "causal-lm":
        raise _unavailable(name, why, partly=True) from None
    return _tokenizer_for_head(spec, name, revision, False) if not why else None


def _tokenizer_for_head(spec: ModelSpec, name: str, revision: str | None, cache_only: bool):
    if spec.head == "causal-lm":
        return load_tokenizer(name, trust_remote_code=spec.trust_remote_code, revision=revision,
                              local_files_only=cache_only)
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, trust_remote_code=spec.trust_remote_code, revision=revision,
                                             **({"local_files_only": True} if cache_only else {}))
    except Exception:  # noqa: BLE001 - no tokenizer files; the caller decides whether it needs one
        if cache_only:
            raise
        return None


def load_model(spec_or_id: ModelSpec | str | Mapping[str, Any], **overrides: Any) -> tuple[Any, Any]:
    """Load (model, tokenizer) from a `ModelSpec`, a hub id / path, or a dict of ModelSpec fields.

    Keyword overrides replace spec fields: ``load_model(spec, quantization="none")``,
    ``load_model(path, head="token-cls")``. Raises FileNotFoundError (missing local path),
    `HubUnavailable` (a hub id neither cached nor downloadable now; within seconds), ValueError (bad
    spec, pickle-only weights, unknown adapter), QuantizationUnavailable (4/8-bit impossible here and
    allow_fallback=False). The returned model is in eval mode and carries ``model.halluguard_spec``
    (the effective spec, with quantization "none" after a fallback). The tokenizer is None only for a
    classifier whose repository has none.
    """
    spec = _to_spec(spec_or_id, overrides)
    import torch  # noqa: F401 - heavy imports only once a model is really loaded

    source, local, adapter_dirs = _check_sources(spec)
    cuda, _ = _cuda_info()
    spec = _settle_quantization(spec, cuda)
    cache_only = False if local else hub_cache_only(spec.model, spec.revision)
    model = _load_weights(spec, source, local, cache_only, _from_pretrained_kwargs(spec, local, cuda))
    tokenizer = _load_model_tokenizer(spec, source, local, cache_only)
    gen = getattr(model, "generation_config", None)
    if spec.head == "causal-lm" and gen is not None and gen.pad_token_id is None:
        gen.pad_token_id = tokenizer.pad_token_id

    if adapter_dirs:
        model = _attach_adapters(model, adapter_dirs, trainable=spec.adapter_trainable)
    if not spec.adapter_trainable:
        model.eval()
    model.halluguard_spec = spec
    return model, tokenizer


def _to_spec(spec_or_id: ModelSpec | str | Mapping[str, Any], overrides: Mapping[str, Any]) -> ModelSpec:
    names = {f.name for f in dataclasses.fields(ModelSpec)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown model option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    if isinstance(spec_or_id, ModelSpec):
        return dataclasses.replace(spec_or_id, **overrides) if overrides else spec_or_id
    if isinstance(spec_or_id, Mapping):
        unknown = sorted(set(spec_or_id) - names)
        if unknown:
            raise ValueError(f"unknown model option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return ModelSpec(**{**spec_or_id, **overrides})
    if isinstance(spec_or_id, (str, os.PathLike)):
        return ModelSpec(model=str(spec_or_id), **overrides)
    raise ValueError(f"expected a ModelSpec, hub id, path or dict, got {type(spec_or_id).__name__}")


# --------------------------------------------------------------------------- adapters


def _check_adapter_dir(path: Path, name: str) -> None:
    if not (path / "adapter_config.json").is_file():
        raise FileNotFoundError(f"adapter {name!r}: {path} has no adapter_config.json (not a PEFT adapter directory)")
    files = [p.name for p in path.iterdir()]
    if "adapter_model.safetensors" not in files:
        pickles = [f for f in files if f.endswith(_PICKLE_SUFFIXES)]
        if pickles:
            raise ValueError(f"adapter {name!r}: {path} holds only pickle weights ({pickles[0]}); "
                             "halluguard loads safetensors only (re-save with safe_serialization=True)")
        raise FileNotFoundError(f"adapter {name!r}: {path} has no adapter_model.safetensors")


def _attach_adapters(model, adapter_dirs: Mapping[str, str], trainable: bool = False):
    from peft import PeftModel

    names = list(adapter_dirs)
    first = names[0]
    model = PeftModel.from_pretrained(model, adapter_dirs[first], adapter_name=first, is_trainable=trainable)
    for name in names[1:]:
        model.load_adapter(adapter_dirs[name], adapter_name=name, is_trainable=trainable)
    model.set_adapter(first, inference_mode=not trainable)
    model.halluguard_adapter = first
    model.halluguard_adapter_trainable = trainable
    return model


def list_adapters(model) -> list[str]:
    """Names of the LoRA adapters loaded on `model` (empty for a plain model)."""
    cfg = getattr(model, "peft_config", None)
    return list(cfg) if isinstance(cfg, Mapping) else []


def active_adapter(model) -> str | None:
    """The adapter in use, or None when the base runs alone (no adapters, or adapters disabled)."""
    if not list_adapters(model):
        return None
    return getattr(model, "halluguard_adapter", None) if not _adapters_disabled(model) else None


def _adapters_disabled(model) -> bool:
    return bool(getattr(model, "halluguard_adapters_disabled", False))


def _set_disabled(model, disabled: bool) -> None:
    # PeftModel.base_model is the LoraModel tuner; toggling its layers keeps weights in place.
    tuner = model.base_model
    if disabled:
        tuner.disable_adapter_layers()
    else:
        tuner.enable_adapter_layers()
    model.halluguard_adapters_disabled = disabled
    if not getattr(model, "halluguard_adapter_trainable", False):
        # PEFT's enable/disable marks the adapter trainable again; an inference model stays frozen.
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.requires_grad_(False)


def set_adapter(model, name: str | None) -> None:
    """Make adapter `name` active, or run the bare base with `None`. Never reloads the base weights.

    ``set_adapter(model, "dpo")``; ``set_adapter(model, None)``. Raises ValueError for an unknown name.
    """
    names = list_adapters(model)
    if name is None:
        if names and not _adapters_disabled(model):
            _set_disabled(model, True)
        return
    if name not in names:
        have = ", ".join(names) if names else "none (the model was loaded without adapters)"
        raise ValueError(f"unknown adapter {name!r}; loaded adapters: {have}")
    if _adapters_disabled(model):
        _set_disabled(model, False)
    if getattr(model, "halluguard_adapter", None) != name:
        # inference_mode=True keeps a frozen adapter frozen (PEFT would otherwise mark it trainable).
        model.set_adapter(name, inference_mode=not getattr(model, "halluguard_adapter_trainable", False))
        model.halluguard_adapter = name


@contextlib.contextmanager
def adapter_disabled(model) -> Iterator[Any]:
    """Run the base model alone inside the block, then restore the previous adapter state.

    ``with adapter_disabled(model): ref_logits = model(**batch).logits`` — the DPO reference pass on
    the same weights. A model without adapters passes through unchanged.
    """
    if not list_adapters(model) or _adapters_disabled(model):
        yield model
        return
    _set_disabled(model, True)
    try:
        yield model
    finally:
        _set_disabled(model, False)
