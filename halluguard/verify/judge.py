"""`judge` verifier: a (4-bit) causal LM is asked, per summary sentence, "is this supported? Yes/No".

    from halluguard.verify import get_verifier
    v = get_verifier("judge", model="HuggingFaceTB/SmolLM3-3B", quantization="nf4")
    report = v.verify(source, summary)

The score is read from the next-token distribution, never from generated text: P(yes) is the
probability mass of the tokenizer's yes-variants ("Yes", " Yes", "yes", ...) renormalised over
yes + no. When yes and no together carry less than `min_mass` of the probability (the model wanted to
say something else), or the prompt cannot fit the model's context, the sentence is `unknown` — never
`supported` — and a summary whose sentences are all unknown gets the label "unknown".

A source longer than the context is cut into token-budgeted chunks with overlap; the sentence's
support is the highest P(yes) over the chunks that gave a readable answer (as in MiniCheck).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from halluguard.types import Evidence, Report
from halluguard.verify._common import (
    ApproxTokenizer,
    TextPiece,
    build_report,
    chunk_source,
    count_tokens,
    lexical_evidence,
    load_causal_lm,
    model_context,
    model_device,
    split_sentences,
)
from halluguard.verify.base import Verifier, validate_batch

JUDGE_SYSTEM = (
    "You are a careful fact checker. You decide whether a claim is fully supported by a source document, "
    "using only the document. Answer with a single word: Yes or No."
)
JUDGE_TEMPLATE = (
    "Document:\n{source}\n\nClaim:\n{sentence}\n\n"
    "Is every part of the claim supported by the document? Answer Yes or No."
)
DEFAULT_MAX_CONTEXT = 8192
YES_VARIANTS = ("Yes", " Yes", "yes", " yes", "YES", " YES", "\nYes")
NO_VARIANTS = ("No", " No", "no", " no", "NO", " NO", "\nNo")


def answer_token_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Token ids that start a "yes" and a "no" answer: the variants that are ONE token.

    Raises ValueError when the tokenizer has no single-token yes or no (then P(yes) cannot be read
    from one next-token distribution).
    """
    def single(variants: Sequence[str], word: str) -> set[int]:
        ids = set()
        for v in variants:
            enc = tokenizer.encode(v, add_special_tokens=False)
            if len(enc) == 1 and tokenizer.decode(enc).strip().lower() == word:
                ids.add(int(enc[0]))
            elif len(enc) == 2 and v.startswith(("\n", " ")) and tokenizer.decode(enc[1:]).strip().lower() == word:
                ids.add(int(enc[1]))  # "\nYes" -> ["\n", "Yes"]: the word token is what follows a newline
        return ids

    yes, no = single(YES_VARIANTS, "yes"), single(NO_VARIANTS, "no")
    if not yes or not no:
        raise ValueError("the judge model's tokenizer has no single-token 'Yes'/'No'; use another model")
    return sorted(yes - no), sorted(no - yes)


def yes_no_mass(alternatives: Sequence[tuple[str, float]]) -> tuple[float, float]:
    """(P(yes), P(no)) summed over a server's top first-token alternatives [(token, logprob)]; tokens
    match after stripping spaces/punctuation, case-insensitively ("Yes", " yes", "YES.")."""
    import math

    y = n = 0.0
    for tok, lp in alternatives:
        t = str(tok).strip().strip(".,!:;\"'").lower()
        if t == "yes":
            y += math.exp(lp)
        elif t == "no":
            n += math.exp(lp)
    return y, n


@dataclass
class Answer:
    """One judged (chunk, sentence) prompt."""

    p_yes: float | None  # renormalised P(yes); None when unreadable
    mass: float  # P(yes-variants) + P(no-variants) before renormalising
    why: str = ""  # why it is unknown, if it is


def read_answer(yes_prob: float, no_prob: float, min_mass: float) -> Answer:
    """P(yes) renormalised over yes+no, or unknown when yes+no carry less than `min_mass`."""
    mass = yes_prob + no_prob
    if mass < min_mass or mass <= 0.0:
        return Answer(None, mass, f"yes/no probability {mass:.3g} < {min_mass:g}: the model did not answer Yes or No")
    return Answer(yes_prob / mass, mass)


class JudgeVerifier(Verifier):
    """LLM-as-judge with P(yes) from next-token logits.

    Args:
        model: hub id / local path of a causal LM, or a loaded model (then pass `tokenizer`).
        adapter: optional LoRA adapter directory to load on the base.
        quantization: "nf4" (4-bit, for GPUs), "int8" or "none"; dtype/device_map/allow_fallback/
            trust_remote_code/revision go to `halluguard.loading.load_model`.
        threshold: P(hallucinated) = 1 - P(yes) >= threshold -> unsupported / hallucinated.
        min_mass: the least P(yes)+P(no) for an answer to count; below it the sentence is unknown.
        chunk_tokens, chunk_overlap: source chunking (default: as much source as fits the context).
        max_length: the context length to use (default: the model's, capped at 8192 tokens).
        batch_size: prompts per forward pass (left-padded).
        template, system: the prompt; `template` must contain {source} and {sentence}.
        base_url, api_key: judge through an OpenAI-compatible server (vLLM, llama.cpp) instead; then
            `model` is the served model or LoRA name, `tokenizer` (optional) counts tokens exactly,
            `max_length` is the server's context (default 8192), `top_logprobs` (<= 20) how many
            first-token alternatives to read, `concurrency` how many requests are in flight and
            `max_retries` how often a failed request is retried (with backoff) before its row fails.
    """

    name = "judge"

    def __init__(
        self,
        model: Any = None,
        *,
        tokenizer: Any = None,
        adapter: str | None = None,
        quantization: str = "none",
        dtype: str = "auto",
        device_map: Any = "auto",
        allow_fallback: bool = False,
        trust_remote_code: bool = False,
        revision: str | None = None,
        threshold: float = 0.5,
        min_mass: float = 0.2,
        chunk_tokens: int | None = None,
        chunk_overlap: int = 64,
        max_length: int | None = None,
        batch_size: int = 8,
        template: str | None = None,
        system: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        top_logprobs: int = 20,
        concurrency: int = 8,
        max_retries: int = 5,
    ) -> None:
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if not 0.0 <= float(min_mass) <= 1.0:
            raise ValueError(f"min_mass must be in [0, 1], got {min_mass}")
        self.threshold, self.min_mass = float(threshold), float(min_mass)
        self.template = template or JUDGE_TEMPLATE
        for key in ("{source}", "{sentence}"):
            if key not in self.template:
                raise ValueError(f"judge template must contain {key}")
        self.system = JUDGE_SYSTEM if system is None else system
        self.chunk_tokens, self.chunk_overlap = chunk_tokens, max(0, int(chunk_overlap))
        self.batch_size = max(1, int(batch_size))
        self.base_url = base_url
        if base_url:
            self._init_openai(model, base_url, api_key, tokenizer, max_length, top_logprobs, concurrency, max_retries)
            return
        if model is None or (isinstance(model, str) and not model.strip()):
            raise ValueError("the judge backend needs a model: a hub id or local path of an instruct causal LM "
                             "(e.g. HuggingFaceTB/SmolLM3-3B), or base_url= for an OpenAI-compatible server")
        if isinstance(model, str):
            self.model_name = model
            self.model, tok = load_causal_lm(
                model, quantization=quantization, dtype=dtype, device_map=device_map,
                adapters={"judge": adapter} if adapter else None, trust_remote_code=trust_remote_code,
                allow_fallback=allow_fallback, revision=revision,
            )
            self.tokenizer = tokenizer or tok
        else:
            if tokenizer is None:
                raise ValueError("pass tokenizer= with a pre-loaded judge model")
            self.model, self.tokenizer = model, tokenizer
            self.model_name = getattr(getattr(model, "config", None), "_name_or_path", type(model).__name__)
        self.model.eval()
        self.yes_ids, self.no_ids = answer_token_ids(self.tokenizer)
        # Long-context models (32k+) would otherwise get whole long sources in one batched prompt; a judge
        # reads 8k-token chunks as well and far cheaper. max_length= lifts the cap.
        self.max_length = model_context(self.model, self.tokenizer, max_length)
        if max_length is None:
            self.max_length = min(self.max_length, DEFAULT_MAX_CONTEXT)

    # ------------------------------------------------------------------ prompts

    def messages(self, source: str, sentence: str) -> list[dict[str, str]]:
        """The chat messages asking whether `sentence` is supported by `source`."""
        user = self.template.replace("{source}", source).replace("{sentence}", sentence)
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [{"role": "user", "content": user}]

    def prompt_ids(self, source: str, sentence: str) -> list[int]:
        """Token ids of the full prompt, ending where the answer's first token goes."""
        tok = self.tokenizer
        msgs = self.messages(source, sentence)
        if getattr(tok, "chat_template", None):
            # enable_thinking=False: hybrid-reasoning templates (Qwen3, SmolLM3) would otherwise open a
            # <think> block and the first token would not be the answer; other templates ignore it.
            enc = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=True,
                                          enable_thinking=False)
            return list(enc["input_ids"])
        text = "\n\n".join(m["content"] for m in msgs) + "\nAnswer:"
        return list(tok(text)["input_ids"])

    # ------------------------------------------------------------------ model

    def answer_probs(self, prompts: Sequence[list[int]]) -> list[tuple[float, float]]:
        """(P(yes-variants), P(no-variants)) of the next token after each prompt, batched."""
        import torch

        device = model_device(self.model)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id or 0
        out: list[tuple[float, float]] = [(0.0, 0.0)] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        yes = torch.tensor(self.yes_ids)
        no = torch.tensor(self.no_ids)
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            width = max(len(prompts[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # left padding: every prompt ends at the last column
                p = prompts[i]
                ids[row, width - len(p):] = torch.tensor(p)
                mask[row, width - len(p):] = 1
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.no_grad():
                kw = {"input_ids": ids.to(device), "attention_mask": mask.to(device),
                      "position_ids": pos.to(device), "use_cache": False}  # one pass: no KV cache needed
                try:
                    logits = self.model(**kw, logits_to_keep=1).logits[:, -1, :]
                except TypeError:  # models without logits_to_keep
                    logits = self.model(**kw).logits[:, -1, :]
            probs = torch.softmax(logits.float(), dim=-1).cpu()
            py = probs[:, yes].sum(-1).tolist()
            pn = probs[:, no].sum(-1).tolist()
            for row, i in enumerate(idx):
                out[i] = (float(py[row]), float(pn[row]))
        return out

    def _budget(self, sentence: str) -> int:
        """Tokens of source that fit beside `sentence` in one prompt (<= 0: nothing fits)."""
        overhead = self._prompt_len("", sentence)
        # 8 tokens of slack: a chunk can tokenize a little longer inside the prompt than alone.
        room = self.max_length - overhead - 8
        return room if self.chunk_tokens is None else min(self.chunk_tokens, room)

    # ------------------------------------------------------------------ verify

    def verify_batch(
        self,
        sources: Sequence[str],
        summaries: Sequence[str],
        progress: Callable[[int, int], None] | None = None,
        group_size: int = 4,
    ) -> list[Report]:
        """Verify many pairs; prompts of `group_size` rows share batched forward passes."""
        validate_batch(sources, summaries)
        if self.base_url:  # remote: enough rows per group to keep `concurrency` requests in flight
            group_size = max(group_size, self.concurrency)
        reports: list[Report] = []
        total = len(sources)
        for g in range(0, total, max(1, group_size)):
            rows = list(range(g, min(total, g + max(1, group_size))))
            plans, jobs = [], []  # jobs: (row_pos, sentence_idx, chunk, prompt)
            for rp, r in enumerate(rows):
                sents = split_sentences(summaries[r])
                chunk_cache: dict[int, list[TextPiece]] = {}
                plan = []
                for si, s in enumerate(sents):
                    budget = self._budget(s.text)
                    if budget < 16:
                        plan.append(("too-long", []))
                        continue
                    if budget not in chunk_cache:
                        chunk_cache[budget] = chunk_source(sources[r], self._counter(), budget, self.chunk_overlap)
                    chunks = chunk_cache[budget]
                    plan.append(("ok", chunks))
                    for c in chunks:
                        jobs.append((rp, si, c, c.text))
                plans.append((sents, plan))
            answers = self._answers([(sources[rows[rp]], c_text, plans[rp][0][si].text) for rp, si, _, c_text in jobs])
            per: dict[tuple[int, int], list[tuple[TextPiece, Answer]]] = {}
            for (rp, si, c, _), a in zip(jobs, answers):
                per.setdefault((rp, si), []).append((c, a))
            for rp, r in enumerate(rows):
                sents, plan = plans[rp]
                scores, evidence, reasons = [], [], []
                n_chunks = 1
                for si, s in enumerate(sents):
                    status, chunks = plan[si]
                    n_chunks = max(n_chunks, len(chunks))
                    if status == "too-long":
                        scores.append(None)
                        evidence.append([])
                        reasons.append([f"the prompt for this sentence does not fit the context ({self.max_length} tokens)"])
                        continue
                    readable = [(c, a) for c, a in per.get((rp, si), []) if a.p_yes is not None]
                    if not readable:
                        answered = per.get((rp, si), [])
                        why = answered[0][1].why if answered else "no answer"
                        scores.append(None)
                        evidence.append([])
                        reasons.append([why])
                        continue
                    c, a = max(readable, key=lambda ca: ca[1].p_yes)
                    ev = [Evidence(c.start, c.end, c.text, round(a.p_yes, 6))]
                    if len(split_sentences(c.text)) > 1:  # the closest source sentence first, then the chunk
                        lex = lexical_evidence(s.text, sources[r], within=c)
                        if lex is not None:
                            ev.insert(0, lex)
                    scores.append(1.0 - a.p_yes)
                    evidence.append(ev)
                    reasons.append([f"P(yes)={a.p_yes:.3f} (yes+no mass {a.mass:.3g})"])
                reports.append(build_report(
                    self.name, sents, scores, self.threshold, evidence=evidence, reasons=reasons,
                    extra={"model": self.model_name, "chunks": n_chunks, "min_mass": self.min_mass},
                ))
            if progress is not None:
                progress(len(reports), total)
        return reports

    def _counter(self) -> Any:
        """What counts tokens for chunking: the model's tokenizer (or an estimate for a server)."""
        return self.tokenizer

    def _prompt_len(self, source: str, sentence: str) -> int:
        if not self.base_url:
            return len(self.prompt_ids(source, sentence))
        # Remote: the server applies its own chat template; allow ~8 tokens of markup per message.
        msgs = self.messages(source, sentence)
        return sum(count_tokens(self.tokenizer, m["content"]) + 8 for m in msgs) + 8

    def _answers(self, items: Sequence[tuple[str, str, str]]) -> list[Answer]:
        """Answer (full source, chunk text, sentence) prompts. A prompt that would not fit is unknown."""
        if self.base_url:
            return self._openai_answers(items)
        prompts = [self.prompt_ids(chunk, sent) for _, chunk, sent in items]
        fits = [i for i, p in enumerate(prompts) if len(p) <= self.max_length]
        probs = self.answer_probs([prompts[i] for i in fits])
        out = [Answer(None, 0.0, f"prompt longer than the context ({self.max_length} tokens)")] * len(items)
        for i, (py, pn) in zip(fits, probs):
            out[i] = read_answer(py, pn, self.min_mass)
        return out

    # ------------------------------------------------------------------ OpenAI-compatible server

    def _openai_answers(self, items: Sequence[tuple[str, str, str]]) -> list[Answer]:
        """Concurrent requests (the client limits how many are in flight and retries with backoff).

        A prompt the server refuses as too long (HTTP 400 about context/tokens) is unknown; any other
        failure raises, so a batch run reports the row as failed and retries it on resume rather than
        recording a verdict nobody read.
        """
        from concurrent.futures import ThreadPoolExecutor

        from halluguard.openai_client import OpenAIError

        def one(item: tuple[str, str, str]) -> Answer:
            _, chunk, sentence = item
            if self._prompt_len(chunk, sentence) > self.max_length:
                return Answer(None, 0.0, f"prompt longer than the context ({self.max_length} tokens)")
            try:
                alts = self.client.top_logprobs(self.messages(chunk, sentence), top_logprobs=self.top_logprobs)
            except OpenAIError as e:
                msg = str(e).lower()
                if e.status == 400 and any(w in msg for w in ("context", "token", "too long", "length")):
                    return Answer(None, 0.0, f"the server refused the prompt as too long: {str(e)[:160]}")
                if "no logprobs" in msg:
                    raise ValueError(f"{self.model_name}: {e}") from None
                raise
            return read_answer(*yes_no_mass(alts), self.min_mass)

        if len(items) <= 1:
            return [one(it) for it in items]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items))) as pool:
            return list(pool.map(one, items))

    def _init_openai(self, model, base_url, api_key, tokenizer, max_length, top_logprobs, concurrency,
                     max_retries) -> None:
        """Judge through an OpenAI-compatible server (vLLM, llama.cpp): P(yes) from the first answer
        token's `top_logprobs`. `model` is the server's model (or LoRA adapter) name; `tokenizer` (a
        path/id or a tokenizer) makes chunking exact, else tokens are over-estimated from the text."""
        from halluguard.openai_client import OpenAIClient

        if not isinstance(model, str) or not model.strip():
            raise ValueError("the judge backend with base_url= needs model= (the served model or LoRA name)")
        if not 1 <= int(top_logprobs) <= 20:
            raise ValueError(f"top_logprobs must be 1-20 (the OpenAI API limit), got {top_logprobs}")
        self.client = OpenAIClient(base_url, api_key=api_key, model=model, concurrency=max(1, int(concurrency)),
                                   max_retries=max(0, int(max_retries)))
        self.model, self.model_name = None, f"{model} @ {self.client.base_url}"
        if isinstance(tokenizer, str):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        self.tokenizer = tokenizer if tokenizer is not None else ApproxTokenizer()
        self.exact_tokens = tokenizer is not None
        self.max_length = int(max_length or 8192)
        self.top_logprobs = int(top_logprobs)
        self.concurrency = max(1, int(concurrency))


__all__ = ["JUDGE_SYSTEM", "JUDGE_TEMPLATE", "JudgeVerifier", "answer_token_ids", "read_answer", "yes_no_mass"]
