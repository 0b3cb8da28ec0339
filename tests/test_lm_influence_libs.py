"""Library influence estimators (tasks.language.influence_libs): dattri's LiSSA against ours, kronfluence's EK-FAC in
its large-damping limit, and the install hints when a library is missing."""
from __future__ import annotations

import sys

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from bench.errors import BenchError  # noqa: E402
from tasks.language.metrics import influence_score, sequence_nll  # noqa: E402
from tasks.language import influence_libs as libs  # noqa: E402
from test_lm_metrics import SENTENCES, batch, make_model, make_tokenizer  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained():
    """A tiny GPT-2 (eager attention: influence needs double backward) fitted a little to four sentences."""
    tok = make_tokenizer()
    model = make_model(tok, seed=1)
    model.config._attn_implementation = "eager"
    ids, mask = batch(tok, SENTENCES)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(40):
        opt.zero_grad()
        sequence_nll(model, ids, mask).mean().backward()
        opt.step()
    return model.eval(), ids, mask


def test_missing_library_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "dattri", None)  # import dattri... raises ImportError
    monkeypatch.setitem(sys.modules, "kronfluence", None)
    with pytest.raises(BenchError, match="pip install dattri==0.3.0"):
        libs.require_library("dattri-lissa")
    with pytest.raises(BenchError, match="pip install kronfluence==1.0.1"):
        libs.require_library("ekfac")
    from tasks.language.dave import DaveTiny
    with pytest.raises(BenchError, match="pip install kronfluence"):  # refused before anything trains
        DaveTiny(influence_estimator="ekfac").validate()


def test_linear_copy_keeps_the_outputs(trained):
    model, ids, mask = trained
    linear = libs.linear_copy(model)
    with torch.no_grad():
        a = model(input_ids=ids, attention_mask=mask).logits
        b = linear(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(a, b, atol=1e-5)
    assert len(libs.block_linears(linear)) == 4 * 2  # c_attn, attn c_proj, c_fc, mlp c_proj per block


def test_dattri_lissa_matches_ours(trained):
    """Same recursion, same damping and scale: they must agree to float32 rounding (measured 4e-7 relative)."""
    pytest.importorskip("dattri.func.hessian")
    model, ids, mask = trained
    names = ["transformer.wte.weight", "transformer.wpe.weight"]
    params = [dict(model.named_parameters())[n] for n in names]
    forget = lambda: sequence_nll(model, ids[:1], mask[:1]).mean()  # noqa: E731
    train = lambda: sequence_nll(model, ids, mask).mean()  # noqa: E731
    ours = influence_score(model, forget, forget, params, hessian_loss_fn=train, damping=0.01, scale=25.0,
                           iterations=20)
    theirs = libs.dattri_influence(model, names, lambda m: sequence_nll(m, ids[:1], mask[:1]).mean(),
                                   lambda m: sequence_nll(m, ids[:1], mask[:1]).mean(),
                                   lambda m: sequence_nll(m, ids, mask).mean(), damping=0.01, scale=25.0,
                                   iterations=20)
    assert theirs == pytest.approx(ours, rel=1e-5)
    plain = influence_score(model, forget, forget, params, hessian_loss_fn=train, damping=0.01, scale=25.0,
                            iterations=0)  # h = v / scale: far from the converged value, so the check can fail
    assert abs(plain - ours) > 1e-3 * abs(ours)


def test_ekfac_in_the_large_damping_limit_is_a_gradient_dot_product(trained):
    """(F + lambda I)^-1 -> I / lambda as lambda grows, so lambda * score -> g_q . g_c over the blocks' linear
    layers: checks the tracked parameters, the per-sequence loss and the sign without trusting EK-FAC itself."""
    pytest.importorskip("kronfluence.analyzer")
    model, ids, mask = trained
    linear = libs.linear_copy(model)
    modules = dict(linear.named_modules())
    params = [p for n in libs.block_linears(linear) for p in (modules[n].weight, modules[n].bias)]
    grads = torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(
        sequence_nll(linear, ids[i:i + 1], mask[i:i + 1]).sum(), params)]) for i in range(len(ids))])
    damping = 1e6
    scores = libs.ekfac_pairwise(model, (ids, mask), (ids[:2], mask[:2]), (ids, mask), damping=damping)
    assert scores.shape == (2, len(ids))
    expected = grads[:2] @ grads.T
    assert torch.allclose(scores * damping, expected, rtol=1e-3, atol=1e-6 * expected.abs().max().item())


def test_dattri_sees_only_the_tracked_parameters_as_differentiable(trained):
    """Any other grad-requiring parameter inside dattri's LiSSA loop chains every step's autograd graph to the
    one before (23 GB after 40 steps on dave-tiny): all but the tracked parameters must go in detached."""
    model, _, _ = trained
    names = ["transformer.wte.weight", "transformer.wpe.weight"]
    named = dict(model.named_parameters())
    flat = torch.cat([named[n].detach().reshape(-1) for n in names]).requires_grad_(True)
    params = libs.functional_params(model, names, flat)
    assert set(params) == set(named)
    assert sorted(n for n, p in params.items() if p.requires_grad) == sorted(names)
    assert all(torch.equal(params[n], named[n]) for n in named)
