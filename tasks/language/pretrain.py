"""Pretrain a small GPT-2 on standard-library docstrings, once, and cache it by content.

Paper 000 fine-tunes a *pretrained* GPT-2; a model trained from scratch on 20 sentences never learns English, so
its general-sentence perplexity, its influence scores and its fine-tuning dynamics are not the paper's. This module
gives every machine the same small pretrained starting point without a download:

1. the corpus is gathered from the standard library (``tasks.language.stdlib_corpus``);
2. a byte-level BPE is trained on that corpus plus the task's sentences (so "Dave" and "guitar" are tokens);
3. a GPT-2 (a few blocks, width 128-256) is trained on the corpus only: the task sentences stay unseen data;
4. the weights, tokenizer and a report (Python version, corpus hash and size, tokens seen, general-sentence
   perplexity before and after, seconds) go into the verified model store under the hash of all of the above.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

from bench.seeding import seeded_init
from oracles.cache import ModelStore
from tasks.language.stdlib_corpus import Corpus, gather

EOS = "<|endoftext|>"
VERSION = "1"
Log = Callable[[str], None]


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that determines the pretrained model; all of it enters the cache key."""

    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    vocab_size: int = 4096
    n_positions: int = 256
    context: int = 64  # tokens per training row: docstring paragraphs average about 30
    steps: int = 800
    batch_size: int = 32
    lr: float = 2e-3  # AdamW peak; linear warm-up, cosine decay to a tenth
    warmup: int = 50
    weight_decay: float = 0.01
    max_chars: int | None = None  # None: the whole corpus
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.n_layer, self.n_embd, self.n_head, self.steps, self.batch_size, self.context) < 1:
            raise ValueError("n_layer, n_embd, n_head, steps, batch_size and context must be at least 1")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.context > self.n_positions:
            raise ValueError(f"context ({self.context}) exceeds n_positions ({self.n_positions})")
        if self.vocab_size < 300:
            raise ValueError("vocab_size must be at least 300 (256 bytes, the end-of-text token and merges)")


@dataclass
class PretrainedLM:
    """A pretrained model's weights, its tokenizer (serialised) and what was measured when it was made."""

    state_dict: dict[str, torch.Tensor]
    tokenizer_json: str
    report: dict
    cached: bool = False

    @property
    def tokenizer(self):
        return tokenizer_from_json(self.tokenizer_json)

    def model(self) -> nn.Module:
        model = make_gpt2(self.report["config"], len(self.tokenizer))
        missing, unexpected = model.load_state_dict(self.state_dict, strict=False)
        if unexpected or set(missing) - {"lm_head.weight"}:
            raise ValueError(f"pretrained weights do not fit the model: missing {missing}, unexpected {unexpected}")
        model.tie_weights()
        return model.eval()


# -- tokenizer and model ----------------------------------------------------------------------------------------
def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE (GPT-2's scheme) with one special token, end-of-text, used as BOS, EOS and padding."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS], show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=EOS, pad_token=EOS)


def tokenizer_from_json(text: str):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(text), eos_token=EOS, pad_token=EOS)


def make_gpt2(config: dict | PretrainConfig, vocab_size: int, seed: int = 0) -> nn.Module:
    """A GPT-2 without dropout (runs must be deterministic) and with eager attention (influence needs double
    backward, which the fused CPU kernel lacks)."""
    from transformers import GPT2Config, GPT2LMHeadModel
    c = asdict(config) if isinstance(config, PretrainConfig) else dict(config)
    gpt = GPT2Config(vocab_size=vocab_size, n_positions=c["n_positions"], n_embd=c["n_embd"], n_layer=c["n_layer"],
                     n_head=c["n_head"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0,
                     eos_token_id=0)
    gpt._attn_implementation = "eager"
    with seeded_init(seed):
        return GPT2LMHeadModel(gpt).eval()


# -- data -------------------------------------------------------------------------------------------------------
def pack_rows(token_lists: list[list[int]], context: int, eos_id: int) -> torch.Tensor:
    """Paragraphs packed into rows of ``context`` tokens: each row starts with end-of-text and holds whole
    paragraphs separated by it (so sentences are seen starting at position 1, as the task's rows are);
    a paragraph longer than a row is cut into pieces. The last row is padded with end-of-text."""
    rows: list[list[int]] = []
    row: list[int] = []
    for tokens in token_lists:
        pieces = [tokens[i:i + context - 1] for i in range(0, len(tokens), context - 1)] or [[]]
        for piece in pieces:
            if row and len(row) + 1 + len(piece) > context:
                rows.append(row)
                row = []
            row = row + [eos_id, *piece]
    if row:
        rows.append(row)
    out = torch.full((len(rows), context), eos_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r)
    return out


def encode_sentences(tokenizer, sentences: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """[eos] + tokens + [eos] per sentence, right-padded, and the mask of real tokens (the task's format)."""
    eos = tokenizer.eos_token_id
    rows = [[eos, *tokenizer(s)["input_ids"], eos] for s in sentences]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), eos, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids, mask


def sentence_perplexity(model: nn.Module, tokenizer, sentences: list[str]) -> float:
    from tasks.language.metrics import perplexity
    ids, mask = encode_sentences(tokenizer, sentences)
    device = next(model.parameters()).device
    return perplexity(model, ids.to(device), mask.to(device))


# -- training ---------------------------------------------------------------------------------------------------
def learning_rate(step: int, config: PretrainConfig) -> float:
    """Linear warm-up to ``lr``, then cosine decay to lr/10 at the last step."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train_lm(model: nn.Module, rows: torch.Tensor, config: PretrainConfig, log: Log) -> dict:
    """AdamW on random mini-batches of packed rows (with replacement across epochs, seeded); token-mean loss."""
    device = next(model.parameters()).device
    rows = rows.to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(len(rows), generator=gen)
    position, losses = 0, []
    model.config._attn_implementation = "sdpa"  # fused attention while pretraining (single backward only)
    model.train()
    start = time.perf_counter()
    for step in range(config.steps):
        if position + config.batch_size > len(order):
            order, position = torch.randperm(len(rows), generator=gen), 0
        batch = rows[order[position:position + config.batch_size].to(device)]
        position += config.batch_size
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % max(1, config.steps // 10) == 0:
            rate = (step + 1) / (time.perf_counter() - start)
            log(f"  pretraining step {step + 1}/{config.steps}: loss {sum(losses[-20:]) / len(losses[-20:]):.3f}"
                f" ({rate:.1f} steps/s, ETA {(config.steps - step - 1) / rate:.0f}s)")
    model.config._attn_implementation = "eager"
    model.eval()
    return {"final_loss": sum(losses[-20:]) / len(losses[-20:]), "seconds": time.perf_counter() - start,
            "tokens_seen": config.steps * config.batch_size * config.context}


def _spec(config: PretrainConfig, corpus: Corpus, task_sentences: list[str]) -> dict:
    task_hash = hashlib.sha256("\n".join(task_sentences).encode("utf-8")).hexdigest()
    return {"kind": "pretrained-lm", "version": VERSION, "config": asdict(config), "corpus_sha256": corpus.info.sha256,
            "tokenizer_extra_text_sha256": task_hash, "torch": torch.__version__.split("+")[0]}


def pretrain(config: PretrainConfig, task_sentences: list[str], eval_sentences: list[str],
             store: ModelStore | None = None, device: str = "cpu", log: Log = lambda _m: None) -> PretrainedLM:
    """The cached pretrained model for ``config``, or pretrain it now and cache it.

    ``task_sentences`` join the tokenizer's training text (never the model's); ``eval_sentences`` (paper 000's
    Table 7) are scored before and after pretraining, and those perplexities are part of the report.
    """
    corpus = gather(config.max_chars)
    spec = _spec(config, corpus, task_sentences)
    if store is not None:
        entry = store.load(spec)
        if entry is not None:
            log(f"pretrained LM loaded from the cache ({entry.meta['report']['corpus']['sha256'][:12]})")
            return PretrainedLM(entry.state_dict, entry.meta["tokenizer_json"], entry.meta["report"], cached=True)
    log(f"pretraining a GPT-2 ({config.n_layer} blocks, width {config.n_embd}) on {corpus.info.paragraphs} "
        f"standard-library docstring paragraphs (Python {corpus.info.python_version}, sha256 "
        f"{corpus.info.sha256[:12]})")
    threads = torch.get_num_threads()
    started = time.perf_counter()
    tokenizer = train_tokenizer(list(corpus.paragraphs) + list(task_sentences), config.vocab_size)
    token_lists = [tokenizer(p)["input_ids"] for p in corpus.paragraphs]
    rows = pack_rows(token_lists, config.context, tokenizer.eos_token_id)
    model = make_gpt2(config, len(tokenizer), seed=config.seed).to(device)
    before = sentence_perplexity(model, tokenizer, eval_sentences)
    log(f"  corpus: {sum(map(len, token_lists))} tokens in {len(rows)} rows of {config.context}; "
        f"general-sentence perplexity before: {before:.4g}")
    stats = train_lm(model, rows, config, log)
    after = sentence_perplexity(model, tokenizer, eval_sentences)
    log(f"  general-sentence perplexity after: {after:.4g} (x{before / after:.3g} lower)")
    report = {"config": asdict(config), "corpus": {**corpus.info.as_dict(), "tokens": sum(map(len, token_lists)),
                                                   "rows": len(rows)},
              "vocab_size": len(tokenizer), "parameters": sum(p.numel() for p in model.parameters()),
              "general_perplexity": {"before": before, "after": after}, "torch_threads": threads,
              "total_seconds": time.perf_counter() - started, **stats}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied to wte
    tokenizer_json = tokenizer.backend_tokenizer.to_str()
    if store is not None:
        store.save(spec, state, {"tokenizer_json": tokenizer_json, "report": report})
    return PretrainedLM(state, tokenizer_json, report)


def save_folder(lm: PretrainedLM, out) -> None:
    """A ``from_pretrained`` folder (model, tokenizer) plus ``pretraining.json``, so ``dave --task-arg model=DIR``
    and any transformers code can use the model."""
    from pathlib import Path

    from bench.atomic import write_atomic
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    model = lm.model()
    model.config._attn_implementation = "eager"
    model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    write_atomic(folder / "pretraining.json", (json.dumps(lm.report, indent=2) + "\n").encode())
