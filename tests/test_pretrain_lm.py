"""Offline pretraining for dave-small: a deterministic stdlib-docstring corpus, packing, a short pretraining run
that must learn some English, the model cache, and the ``pretrain-lm`` subcommand."""
import json
import platform

import pytest
import torch

from bench.cli import main
from oracles.cache import ModelStore
from tasks.language.dave import read_sentences
from tasks.language.pretrain import PretrainConfig, pack_rows, pretrain, sentence_perplexity
from tasks.language.stdlib_corpus import gather, is_prose, module_files, prose_paragraphs

#: a pretraining small enough for CI (about 10 s on one core); it must still lower perplexity >= 2.5x
TINY = dict(n_layer=1, n_embd=32, n_head=2, vocab_size=400, steps=60, batch_size=16, context=32, max_chars=30000,
            warmup=5, lr=5e-3)
TINY_TASK_ARGS = ["n_layer=1", "n_embd=32", "vocab_size=400", "pretrain_steps=60", "pretrain_max_chars=30000"]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        store = ModelStore(tmp_path_factory.mktemp("lm-cache"))
        lm = pretrain(PretrainConfig(**TINY), read_sentences("dave_sentences"), read_sentences("general_sentences"),
                      store=store)
    finally:
        torch.set_num_threads(threads)
    return lm, store


def test_corpus_is_deterministic_prose_with_provenance():
    first, second = gather(max_chars=20000), gather(max_chars=20000)
    assert first.paragraphs == second.paragraphs and first.info == second.info
    assert first.info.python_version == platform.python_version()
    assert first.info.characters >= 20000 and len(first.info.sha256) == 64
    assert len(set(first.paragraphs)) == len(first.paragraphs)
    assert all(is_prose(p) and "\n" not in p for p in first.paragraphs)
    # a larger slice starts with the same paragraphs: files are read in a fixed order
    assert gather(max_chars=40000).paragraphs[:len(first.paragraphs)] == first.paragraphs


def test_docstring_paragraph_filter_keeps_sentences_and_drops_code(tmp_path):
    (tmp_path / "abc.py").write_text('"""Abstract base classes are described here, in plain words.\n\n'
                                     '    indented = code()\n\n>>> 1 + 1\n2\n\nShort."""\n'
                                     'def f():\n    """Return the value of the thing, computed lazily.\n\n'
                                     '    Arguments are ignored entirely by this function."""\n')
    (tmp_path / "zz_not_stdlib.py").write_text('"""This module is not in the standard library list at all."""\n')
    assert [p.name for p in module_files(tmp_path)] == ["abc.py"]
    corpus = gather(root=tmp_path)
    assert corpus.paragraphs == ("Abstract base classes are described here, in plain words.",
                                 "Return the value of the thing, computed lazily.",
                                 "Arguments are ignored entirely by this function.")
    assert prose_paragraphs("a table\n  x | y\n\n") == []


def test_pack_rows_starts_rows_with_eos_and_keeps_paragraphs_whole():
    rows = pack_rows([[1, 2, 3], [4, 5], list(range(10, 20))], context=8, eos_id=0)
    # two short paragraphs share a row; the long one is cut into pieces of context - 1, each after an EOS
    assert rows.tolist() == [[0, 1, 2, 3, 0, 4, 5, 0], [0, *range(10, 17)], [0, 17, 18, 19, 0, 0, 0, 0]]


def test_short_pretraining_lowers_general_sentence_perplexity(tiny_lm):
    lm, _ = tiny_lm
    ppl = lm.report["general_perplexity"]
    assert ppl["before"] > 0.5 * TINY["vocab_size"]  # random weights: about uniform over the vocabulary
    assert ppl["after"] * 2.5 < ppl["before"], ppl
    model = lm.model()
    assert sentence_perplexity(model, lm.tokenizer, read_sentences("general_sentences")) == pytest.approx(
        ppl["after"], rel=1e-5)
    corpus = lm.report["corpus"]
    assert corpus["tokens"] > 1000 and corpus["python_version"] == platform.python_version()
    assert lm.report["tokens_seen"] == TINY["steps"] * TINY["batch_size"] * TINY["context"]


def test_pretrained_model_is_cached_by_content(tiny_lm):
    lm, store = tiny_lm
    again = pretrain(PretrainConfig(**TINY), read_sentences("dave_sentences"), read_sentences("general_sentences"),
                     store=store)
    assert again.cached and not lm.cached
    assert all(torch.equal(again.state_dict[k], v) for k, v in lm.state_dict.items())
    assert again.tokenizer_json == lm.tokenizer_json


def test_cli_pretrain_lm_exports_a_from_pretrained_folder_and_reuses_the_cache(tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    args = ["pretrain-lm", "--out", str(tmp_path / "lm")] + [a for kv in TINY_TASK_ARGS for a in ("--task-arg", kv)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(args) == 0
        first = capsys.readouterr().out
        assert main(args) == 0
        second = capsys.readouterr().out
    finally:
        torch.set_num_threads(threads)
    assert "pretrained now in" in first and "loaded from the model cache" in second
    assert "Table 7" in first and "sha256" in first
    report = json.loads((tmp_path / "lm" / "pretraining.json").read_text())
    assert report["general_perplexity"]["after"] < report["general_perplexity"]["before"]
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "lm")
    tok = AutoTokenizer.from_pretrained(tmp_path / "lm")
    assert sentence_perplexity(model, tok, read_sentences("general_sentences")) == pytest.approx(
        report["general_perplexity"]["after"], rel=1e-4)


def test_cli_pretrain_lm_bad_input_exits_2(tmp_path, capsys):
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    assert main(["pretrain-lm", "--out", str(afile)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["pretrain-lm", "--out", str(tmp_path / "o"), "--task", "dave-tiny"]) == 2
    assert "no pretrained starting model" in capsys.readouterr().err
    assert main(["pretrain-lm", "--out", str(tmp_path / "o"), "--task-arg", "pretrain_stepz=3"]) == 2
