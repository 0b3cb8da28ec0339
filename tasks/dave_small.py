"""``dave-small``: paper 000's setting offline, a pretrained small GPT-2 fine-tuned on the Dave sentences.

The starting model is pretrained here on standard-library docstrings (``tasks.lm_pretrain``) the first time it is
needed and then comes from the model cache (``$BENCH_CACHE``), keyed by the corpus hash and every pretraining
setting, so all runs and reproductions on one machine share it. Fine-tuning follows the paper's recipe (Adam,
batch size 1, 15 epochs) with a learning rate scaled for a model this small.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from bench.errors import BenchError
from bench.registry import register_task
from tasks.dave import DaveTiny, read_sentences
from tasks.lm_pretrain import PretrainConfig, PretrainedLM, pretrain


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@register_task
@dataclass(kw_only=True)
class DaveSmall(DaveTiny):
    """A small GPT-2 pretrained offline on stdlib docstrings (cached), fine-tuned on paper 000's Dave sentences."""

    name = "dave-small"
    version = "1"
    default_lr = 1e-4  # stored-gradient ascent step: 200 iterations move the forget sentence without wrecking the rest

    model: str = "pretrained"  # "pretrained": built and cached here; anything else: from_pretrained, as for dave
    n_layer: int = 4
    n_embd: int = 128
    vocab_size: int = 4096
    pretrain_steps: int = 800
    pretrain_max_chars: int | None = None  # None: the whole docstring corpus; smaller for quick tests
    pretrain_threads: int = 1  # one thread beats two contending ones for a model this small
    epochs: int = 15  # the paper's
    lr: float = 1e-3
    batch_size: int = 1  # the paper's

    def pretrain_config(self) -> PretrainConfig:
        return PretrainConfig(n_layer=self.n_layer, n_embd=self.n_embd, vocab_size=self.vocab_size,
                              n_positions=2 * self.max_length, steps=self.pretrain_steps,
                              max_chars=self.pretrain_max_chars)

    @cached_property
    def pretrained(self) -> PretrainedLM:
        """The pretrained model, from the cache or trained now (minutes) and cached."""
        from oracles.store import ModelStore, default_cache_root
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, self.pretrain_threads))
        try:
            return pretrain(self.pretrain_config(), tokenizer_text(), read_sentences("general_sentences"),
                            store=ModelStore(default_cache_root(), log=_log), log=_log)
        finally:
            torch.set_num_threads(threads)

    @cached_property
    def tokenizer(self):
        if self.model != "pretrained":
            return super().tokenizer
        return self.pretrained.tokenizer

    def make_model(self, seed: int) -> nn.Module:
        """The pretrained weights (every seed starts from the same pretrained model, as with real GPT-2)."""
        if self.model != "pretrained":
            return super().make_model(seed)
        return self.pretrained.model()

    def export_pretrained(self, out) -> dict:
        """Write the pretrained model as a ``from_pretrained`` folder with ``pretraining.json``; return the report."""
        from tasks.lm_pretrain import save_folder
        if self.model != "pretrained":
            raise BenchError(f"model={self.model!r} is loaded, not pretrained here: nothing to export")
        save_folder(self.pretrained, out)
        return {**self.pretrained.report, "cached": self.pretrained.cached}


def tokenizer_text() -> list[str]:
    """Task text the tokenizer learns besides the corpus (never trained on): Table 6 and Table 7. The Name
    dataset recombines Table 6's names and facts, so one pretrained model serves both datasets."""
    return read_sentences("dave_sentences") + read_sentences("general_sentences")
