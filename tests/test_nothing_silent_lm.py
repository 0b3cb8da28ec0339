"""Issue 16's hostile cases for the language tasks (and the one linear case no other test keeps): bad Dave
parameters are exit 2 naming the parameter, a tokenizer that yields no tokens is exit 2, not 'perfect
unlearning', and gdga at defaults on a wide linear task is caught as divergence."""
from __future__ import annotations

import pytest

from bench.cli import main


def _run(tmp_path, capsys, *args):
    code = main(["run", *args, "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert not list((tmp_path / "out").rglob("*.json"))
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize("task,arg,message", [
    ("dave-tiny", "epochs=0", "task 'dave-tiny' parameter 'epochs' must be in [1, 10000], got 0; give e.g. epochs=40"),
    ("dave-tiny", "lr=0", "parameter 'lr' must be in (0, 1000000], got 0.0"),
    ("dave-tiny", "lr=nan", "parameter 'lr' must be a finite number"),
    ("dave-tiny", "batch_size=0", "parameter 'batch_size' must be in [1, 10000000], got 0"),
    ("dave-tiny", "batch_size=-5", "parameter 'batch_size' must be in [1, 10000000], got -5"),
    ("dave-tiny", "max_length=2", "parameter 'max_length' must be in [3, 8192], got 2"),
    ("dave-tiny", "n_layer=0", "parameter 'n_layer' must be in [1, 256], got 0"),
    ("dave-tiny", "n_embd=30", "parameter 'n_embd' must be a multiple of 4 (the model has 4 attention heads), got 30"),
    ("dave-tiny", "vocab_size=0", "parameter 'vocab_size' must be in [1, 1000000], got 0"),
    ("dave", "epochs=0", "task 'dave' parameter 'epochs' must be in [1, 10000], got 0"),
    ("dave-small", "pretrain_steps=0", "parameter 'pretrain_steps' must be in [1, 10000000], got 0"),
    ("dave-small", "pretrain_threads=0", "parameter 'pretrain_threads' must be in [1, 1024], got 0"),
    ("dave-small", "pretrain_max_chars=0", "parameter 'pretrain_max_chars' must be >= 1, got 0"),
])
def test_bad_dave_parameters_exit_2(tmp_path, capsys, task, arg, message):
    code, err = _run(tmp_path, capsys, "--method", "noop", "--task", task, "--task-arg", arg)
    assert code == 2, err
    assert message in err


def test_bad_stored_ga_parameters_exit_2(tmp_path, capsys):
    code, err = _run(tmp_path, capsys, "--method", "stored-ga", "--task", "dave-tiny", "--method-arg", "steps=-1")
    assert code == 2 and "'steps' must be in [0, 100000], got -1" in err


def test_a_tokenizer_that_yields_no_tokens_is_refused(tmp_path, capsys):
    """Empty sequences have perplexity 1 and KLoM 0: they would score as perfect unlearning."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    bpe = Tokenizer(models.BPE(vocab={"<|endoftext|>": 0}, merges=[]))  # no byte tokens, no unknown token
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    folder = tmp_path / "model"
    PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>",
                            pad_token="<|endoftext|>").save_pretrained(folder)
    GPT2LMHeadModel(GPT2Config(vocab_size=1, n_embd=8, n_layer=1, n_head=2, n_positions=64, bos_token_id=0,
                               eos_token_id=0)).save_pretrained(folder)
    code, err = _run(tmp_path, capsys, "--method", "noop", "--task", "dave", "--task-arg", f"model={folder}")
    assert code == 2
    assert "produced no tokens for 20 of 20 sentences" in err and "use a tokenizer that covers the text" in err


def test_gdga_at_defaults_on_a_wide_linear_task_is_divergence(tmp_path, capsys):
    code, err = _run(tmp_path, capsys, "--method", "gdga", "--task", "linear-gaussian", "--task-arg", "d=2000")
    assert code == 3 and "gdga diverged at iteration" in err and "lower the lr" in err
