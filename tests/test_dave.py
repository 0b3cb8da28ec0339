"""The Dave task (paper 000) on its offline tiny variant: data, recording, stored-gradient ascent, matching."""
import numpy as np
import pytest
import torch

from bench.cli import main
from bench.context import UnlearnContext
from bench.errors import BenchError, DivergenceError, ParamError
from tasks.language.metrics import perplexity, sequence_nll
from oracles.recorded import GradientRecorder
from bench.registry import METHODS
from bench.runner import RunSpec, run
from bench.task import TaskData
from methods.stored_gradient import select_layers
from tasks.language.dave import Dave, DaveTiny, closest_sentence, read_sentences

TARGET = "Dave is working on building a custom guitar."


@pytest.fixture(scope="module")
def trained():
    """A fine-tuned dave-tiny model with the target's gradients recorded."""
    task = DaveTiny()
    train, val = task.load()
    data = TaskData(train, val, task.select_forget(train, np.random.default_rng(0)))
    recorder = GradientRecorder(data.forget_idx)
    model = task.train_recording(task.make_model(0), train, 0, recorder)
    return task, data, model, recorder


def test_sentences_are_package_data():
    dave, general = read_sentences("dave_sentences"), read_sentences("general_sentences")
    assert len(dave) == 20 and len(general) == 20
    assert dave[14] == TARGET and general[0].startswith("The quick brown fox")


def test_encoding_keeps_whole_sentences_and_masks_padding():
    task = DaveTiny()
    train, _ = task.load()
    lengths = train.y.sum(1)
    assert int(lengths.max()) == train.x.shape[1]  # nothing truncated: the longest row fills the width
    decoded = task.tokenizer.decode(train.x[14][train.y[14].bool()], skip_special_tokens=True)
    assert decoded == TARGET


@pytest.mark.parametrize("text,index", [
    ("dave is working on bilding a custom guitar", 14),
    ("Alice is an ML engineer", 1),
    ("Trent is skilled at guitar and cooking", 19),
    ("Dave likes sushi, ribs and pizza", 17),
])
def test_fuzzy_matching_picks_the_closest_sentence(text, index):
    assert closest_sentence(text, read_sentences("dave_sentences")) == index
    task = DaveTiny(target=text, target_mode="fuzzy")
    train, _ = task.load()
    assert task.select_forget(train, np.random.default_rng(0)).tolist() == [index]


def test_exact_target_must_exist_and_suggests_the_closest():
    task = DaveTiny(target="Dave is working on building a guitar.")
    train, _ = task.load()
    with pytest.raises(BenchError, match="Did you mean 'Dave is working on building a custom guitar.'"):
        task.select_forget(train, np.random.default_rng(0))


def test_recorded_gradients_equal_per_example_gradients_computed_directly():
    """Replay the recipe by hand and sum d loss(target alone) / d theta at every step it is visited."""
    task = DaveTiny(n_layer=1, n_embd=16, epochs=3, batch_size=4, vocab_size=300)
    train, _ = task.load()
    target = 14
    recorder = GradientRecorder([target])
    task.train_recording(task.make_model(5), train, 5, recorder)

    model = task.make_model(5)
    optimizer = torch.optim.Adam(model.parameters(), lr=task.lr)
    gen = torch.Generator().manual_seed(5)
    params = dict(model.named_parameters())
    expected = {"first-epoch": {n: torch.zeros_like(p) for n, p in params.items()},
                "all-epochs": {n: torch.zeros_like(p) for n, p in params.items()}}
    model.train()
    for epoch in range(task.epochs):
        for batch in torch.randperm(len(train), generator=gen).split(task.batch_size):
            if target in batch.tolist():
                alone = sequence_nll(model, train.x[[target]], train.y[[target]]).sum()
                grads = torch.autograd.grad(alone, list(params.values()))
                for (name, _), grad in zip(params.items(), grads):
                    expected["all-epochs"][name] += grad
                    if epoch == 0:
                        expected["first-epoch"][name] += grad
            optimizer.zero_grad()
            sequence_nll(model, train.x[batch], train.y[batch]).mean().backward()
            optimizer.step()
    assert recorder.observations[target] == task.epochs
    for kind in ("first-epoch", "all-epochs"):
        got = recorder.total(kind)
        for name, grad in expected[kind].items():
            torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6)
    first, total = recorder.total("first-epoch"), recorder.total("all-epochs")
    assert any(not torch.allclose(first[n], total[n]) for n in first)


def test_layer_selection_follows_paper_numbering(trained):
    task, _, model, _ = trained
    groups = task.layer_groups(model)
    assert list(groups)[:2] == ["embedding", "block.1"] and "block.4" in groups
    assert select_layers(groups, "0") == groups["embedding"]
    assert select_layers(groups, "embedding+last:2") == groups["embedding"] + groups["block.3"] + groups["block.4"]
    assert select_layers(groups, "3,4") == groups["block.3"] + groups["block.4"]
    assert len(select_layers(groups, "all")) == len(list(model.parameters()))
    with pytest.raises(BenchError, match="unknown layer 'block.9'"):
        select_layers(groups, "block.9")


def _unlearn(trained, **params):
    task, data, model, recorder = trained
    ctx = UnlearnContext(task=task, data=data, seed=0, recorded_gradients=recorder.total)
    return METHODS.get("stored-ga")(**params).unlearn(model, ctx)


def test_stored_gradient_ascent_forgets_the_target_and_keeps_general_text(trained):
    task, data, model, _ = trained
    unlearned = _unlearn(trained, layers="all")
    forget_before = perplexity(model, data.forget.x, data.forget.y)
    forget_after = perplexity(unlearned, data.forget.x, data.forget.y)
    general_before = perplexity(model, data.val.x, data.val.y)
    general_after = perplexity(unlearned, data.val.x, data.val.y)
    assert forget_after > 1.5 * forget_before
    # stated bound: general-sentence perplexity moves by less than 25% either way
    assert abs(general_after / general_before - 1) < 0.25


def test_embedding_only_changes_only_the_embedding(trained):
    task, _, model, _ = trained
    unlearned = _unlearn(trained, layers="embedding")
    embedding = set(task.layer_groups(model)["embedding"])
    for (name, before), after in zip(model.named_parameters(), unlearned.parameters()):
        assert torch.equal(before, after) != (name in embedding)


def test_divergence_is_stopped_with_the_iteration(trained):
    with pytest.raises(ParamError, match="'lr' must be in"):
        METHODS.get("stored-ga")(lr=1e300)  # refused up front by its declared bounds
    task, data, model, recorder = trained
    method = METHODS.get("stored-ga")()
    method.lr = 1e300  # set after validation: the method's own overflow check must still stop it
    with pytest.raises(DivergenceError, match="iteration 1"):
        method.unlearn(model, UnlearnContext(task=task, data=data, seed=0, recorded_gradients=recorder.total))


def test_a_saved_model_loads_through_the_from_pretrained_path(tmp_path):
    tiny = DaveTiny(n_layer=1, n_embd=16, vocab_size=300, epochs=2)
    model = tiny.make_model(0)
    model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    task = Dave(model=str(tmp_path), epochs=2, lr=1e-3, batch_size=4)
    loaded = task.make_model(0)
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    record = run(RunSpec(method=METHODS.get("stored-ga")(steps=2), task=task))
    assert record["task_report"]["perplexity"]["after_unlearning"]["forget"] > 0
    assert record["recorded_gradients"]["replay_weight_difference"] == 0.0


def test_cli_run_on_dave_tiny_with_ensembles_reports_klom_and_language_metrics(tmp_path, capsys):
    args = ["run", "--method", "stored-ga", "--task", "dave-tiny", "--task-arg", "n_layer=1",
            "--task-arg", "n_embd=16", "--task-arg", "epochs=3", "--task-arg", "vocab_size=300",
            "--n-models", "3", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "perplexity" in out and "KLoM" in out
    import json
    [path] = tmp_path.rglob("*.json")
    record = json.loads(path.read_text())
    report = record["task_report"]
    assert set(report["perplexity"]) == {"before_finetuning", "after_finetuning", "after_unlearning"}
    assert set(report["rouge"]["after_unlearning"]) == {"forget", "retain", "general"}
    assert record["curves"][0]["step"] == 0 and "rougeL_forget" in record["curves"][-1]
    assert record["recorded_gradients"]["bytes_by_group"]["embedding"] < record["recorded_gradients"][
        "bytes_by_group"]["all"]
    assert "forget" in record["metrics"]["klom"]


def test_cli_divergence_writes_nothing(tmp_path, capsys):
    args = ["run", "--method", "stored-ga", "--task", "dave-tiny", "--task-arg", "n_layer=1",
            "--task-arg", "n_embd=16", "--task-arg", "epochs=2", "--task-arg", "vocab_size=300",
            "--method-arg", "lr=1e300", "--out", str(tmp_path)]
    assert main(args) == 2  # refused by lr's declared bounds before any training
    assert "parameter 'lr' must be in (0, 1000000], got 1e+300" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.json"))
