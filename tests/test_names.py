"""Paper 000's Name dataset: every Table 6 fact about each of its 20 names; forgetting Dave keeps the others."""
import numpy as np
import pytest

from bench.errors import BenchError
from bench.task import TaskData
from tasks.language.dave import DaveTiny, read_sentences
from tasks.language.names import indices_about, name_dataset, names_of, retell, subject

TABLE6 = read_sentences("dave_sentences")


def test_name_dataset_has_400_sentences_name_major():
    names = names_of(TABLE6)
    assert len(names) == 20 and "Dave" in names and len(set(names)) == 20  # Dave and 19 other unique names
    data = name_dataset(TABLE6)
    assert len(data) == 400 and len(set(data)) == 400
    assert data[:20] == [retell(s, "Gnarls") for s in TABLE6]
    dave = names.index("Dave")
    assert data[20 * dave: 20 * dave + 20] == [retell(s, "Dave") for s in TABLE6]
    assert data[20 * dave] == "Dave weighs 270 pounds."
    assert data[20 * dave + 14] == "Dave is working on building a custom guitar."  # Table 6's own Dave sentence


def test_only_the_leading_subject_is_replaced():
    mallory = TABLE6[12]
    assert subject(mallory) == "Mallory" and subject("Laura's favorite music.") == "Laura"
    assert retell(mallory, "Dave") == mallory.replace("Mallory", "Dave", 1)
    assert "Frank Herbert" in retell(mallory, "Dave")
    with pytest.raises(ValueError):
        subject("the lower-case start")


def test_names_task_forgets_every_dave_sentence_and_keeps_the_others():
    task = DaveTiny(dataset="names")
    train, val = task.load()
    assert len(train) == 400 and len(val) == 20
    forget = task.select_forget(train, np.random.default_rng(0))
    assert forget.tolist() == indices_about(task.sentences["train"], "Dave") == list(range(280, 300))
    texts = task.text_splits(TaskData(train, val, forget))
    assert len(texts["forget"]) == 20 and all(s.startswith("Dave") for s in texts["forget"])
    assert len(texts["retain"]) == 380 and not any(s.startswith("Dave") for s in texts["retain"])
    other = DaveTiny(dataset="names", forget_name="Alice").select_forget(train, np.random.default_rng(0))
    assert other.tolist() == list(range(20, 40))


def test_unknown_forget_name_suggests_one():
    task = DaveTiny(dataset="names", forget_name="Dav")
    train, _ = task.load()
    with pytest.raises(BenchError, match="Did you mean 'Dave'"):
        task.select_forget(train, np.random.default_rng(0))


def test_dave_small_starts_from_its_pretrained_weights_and_fine_tunes():
    import torch

    from tasks.language.metrics import perplexity
    from tasks.language.dave_small import DaveSmall
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = DaveSmall(n_layer=1, n_embd=32, vocab_size=400, pretrain_steps=60, pretrain_max_chars=30000,
                         epochs=3, lr=3e-3)
        model = task.make_model(0)
        pretrained = task.pretrained.model()
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), pretrained.state_dict().values()))
        train, val = task.load()
        assert perplexity(model, val.x, val.y) == pytest.approx(task.pretrained.report["general_perplexity"]["after"],
                                                                rel=1e-5)
        before = perplexity(model, train.x, train.y)
        task.train(model, train, 0)
        assert perplexity(model, train.x, train.y) < 0.5 * before
    finally:
        torch.set_num_threads(threads)
