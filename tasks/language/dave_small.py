"""``dave-small``: paper 000's setting offline, a pretrained small GPT-2 fine-tuned on the Dave sentences.

The starting model is pretrained here on standard-library docstrings (``tasks.language.pretrain``) the first time it is
needed and then comes from the model cache (``$BENCH_CACHE``), keyed by the corpus hash and every pretraining
setting, so all runs and reproductions on one machine share it. Fine-tuning follows the paper's recipe (Adam,
batch size 1, 15 epochs) with a learning rate scaled for a model this small.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated

import torch
from torch import nn

from bench.bounds import Epochs, Range, StepSize, TrainBatch
from bench.errors import BenchError, ParamError
from bench.registry import register_task
from tasks.language.dave import Dave, DaveTiny, read_sentences
from tasks.language.pretrain import PretrainConfig, PretrainedLM, pretrain


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
    n_layer: Annotated[int, Range(1, 256)] = 4
    n_embd: Annotated[int, Range(4, 16384)] = 128  # split over 4 attention heads: a multiple of 4
    vocab_size: Annotated[int, Range(1, 1_000_000)] = 4096
    pretrain_steps: Annotated[int, Range(1, 10_000_000)] = 800
    pretrain_max_chars: Annotated[int | None, Range(1, None)] = None  # None: the whole docstring corpus
    pretrain_threads: Annotated[int, Range(1, 1024)] = 1  # one thread beats two contending ones for a model this small
    epochs: Epochs = 15  # the paper's
    lr: StepSize = 1e-3
    batch_size: TrainBatch = 1  # the paper's

    def validate(self, label: str | None = None) -> None:
        super(DaveTiny, self).validate(label)
        if self.model == "pretrained" and self.n_embd % 4:
            raise ParamError(f"{label or f'task {self.name!r}'} parameter 'n_embd' must be a multiple of 4 (the "
                             f"model has 4 attention heads), got {self.n_embd}; give e.g. n_embd={self.n_embd // 4 * 4 or 4}")

    @cached_property
    def checkpoint_fingerprint(self) -> str:
        """Pretrained here (keyed by the pretraining parameters and corpus), or a loaded checkpoint's content."""
        return "pretrained here" if self.model == "pretrained" else Dave.checkpoint_fingerprint.func(self)

    def pretrain_config(self) -> PretrainConfig:
        return PretrainConfig(n_layer=self.n_layer, n_embd=self.n_embd, vocab_size=self.vocab_size,
                              n_positions=2 * self.max_length, steps=self.pretrain_steps,
                              max_chars=self.pretrain_max_chars)

    @cached_property
    def pretrained(self) -> PretrainedLM:
        """The pretrained model, from the cache or trained now (minutes) and cached."""
        from oracles.cache import ModelStore, default_cache_root
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
        from tasks.language.pretrain import save_folder
        if self.model != "pretrained":
            raise BenchError(f"model={self.model!r} is loaded, not pretrained here: nothing to export")
        save_folder(self.pretrained, out)
        return {**self.pretrained.report, "cached": self.pretrained.cached}


def tokenizer_text() -> list[str]:
    """Task text the tokenizer learns besides the corpus (never trained on): Table 6 and Table 7. The Name
    dataset recombines Table 6's names and facts, so one pretrained model serves both datasets."""
    return read_sentences("dave_sentences") + read_sentences("general_sentences")
