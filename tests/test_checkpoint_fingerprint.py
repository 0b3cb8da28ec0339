"""Issue 16, stale data: a language task's checkpoint enters cache keys and records by content, not by path, so
replacing the GPT-2 files at the same path never reuses models fine-tuned from the old ones."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.executor import Executor
from oracles.ensemble import ensure_models, model_spec
from oracles.cache import ModelStore, cache_key
from tasks.language.dave import Dave, DaveTiny
from tasks.language.dave_small import DaveSmall

NONE = np.array([], dtype=np.int64)


def _save_checkpoint(folder, seed: int) -> None:
    tiny = DaveTiny(n_layer=1, n_embd=16, vocab_size=300, epochs=1)
    tiny.make_model(seed).save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)


def _key(task) -> str:
    return cache_key(model_spec(task, NONE, 0))


@pytest.mark.parametrize("cls", [Dave, DaveTiny, DaveSmall])
def test_replacing_the_checkpoint_at_the_same_path_changes_the_key(tmp_path, cls):
    folder = tmp_path / "gpt2"
    _save_checkpoint(folder, seed=0)
    before = cls(model=str(folder), epochs=1)
    assert before.training_recipe()["checkpoint"].startswith("files:")
    assert _key(before) == _key(cls(model=str(folder), epochs=1))  # same files, same key
    _save_checkpoint(folder, seed=1)  # other weights, same path and file names
    after = cls(model=str(folder), epochs=1)
    assert _key(after) != _key(before)
    assert after.training_recipe()["checkpoint"] != before.training_recipe()["checkpoint"]


def test_models_built_here_say_so():
    assert DaveTiny().training_recipe()["checkpoint"] == "built here"
    assert DaveSmall().training_recipe()["checkpoint"] == "pretrained here"
    missing = Dave(model="no-such-org/no-such-model-here").training_recipe()["checkpoint"]
    assert missing.startswith("hub:no-such-org/no-such-model-here")


def test_a_replaced_checkpoint_is_trained_again_not_reused(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        folder, store = tmp_path / "gpt2", ModelStore(tmp_path / "cache")
        _save_checkpoint(folder, seed=0)

        def trained() -> int:
            task = Dave(model=str(folder), epochs=1, lr=1e-3, batch_size=4)
            return ensure_models(task, NONE, [0], device=torch.device("cpu"), store=store, executor=Executor(),
                                 label="originals", progress=False)
        assert trained() == 1
        assert trained() == 0  # unchanged files: cached
        _save_checkpoint(folder, seed=1)
        assert trained() == 1  # new weights at the old path: never the old model
    finally:
        torch.set_num_threads(threads)
