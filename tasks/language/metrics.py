"""Language-model metrics for paper 000 (GPT-2 fine-tuned on short sentences, then unlearned).

Conventions shared by every function here:

* A batch of sentences is ``input_ids`` [n, L] right-padded with the pad id and
  ``attention_mask`` [n, L] (1 for real tokens, then only 0s). Right padding is
  checked, because with left padding the "first token" of a row would be a pad.
* The tokenizer has no BOS, so the first token of a sentence is never predicted:
  a sentence of k real tokens has k - 1 predicted tokens (token t + 1 from the
  prefix up to t). Padded positions are neither predicted nor used as context
  (the causal mask already keeps real tokens from seeing later pads).
* Tensors are moved to the model's device, so the functions work on CPU or GPU.
* Evaluation functions (everything except ``sequence_nll``) run in ``eval()`` mode
  so dropout cannot make them random, and put the model back in the mode it was
  in afterwards, so calling them inside a training loop has no side effect.

Influence helpers follow section 3.6.3 of the paper (Koh & Liang influence
functions with a LiSSA inverse-Hessian-vector product) and section 3.5 (cosine
between token activations and stored gradients).
"""

from __future__ import annotations

import contextlib
import math
import re
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from bench.metrics.declared import declare

PERPLEXITY = declare("perplexity", "lower", "exp of the mean token negative log-likelihood of a split (section 3.7), "
                     "mean over models")
# after unlearning, ROUGE of the forget text and self-influence have no better direction by themselves
for _rouge in ("rouge1", "rouge2", "rougeL"):
    declare(_rouge, None, "ROUGE F-measure of greedy generations against the forget text (section 3.7)")
SELF_INFLUENCE = declare("self_influence", None, "-grad L_s . (H + dI)^-1 grad L_s on the embedding (section 3.6.3)")

__all__ = [
    "sequence_nll",
    "token_log_margins",
    "perplexity",
    "greedy_generate",
    "prompt_of",
    "rouge_scores",
    "generation_rouge",
    "lissa_inverse_hvp",
    "influence_score",
    "activation_gradient_influence",
]

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _device_of(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameterless module)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Evaluate without dropout, then restore the caller's train/eval mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _check_batch(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a right-padded [n, L] batch and move it to the model's device."""
    input_ids = torch.as_tensor(input_ids)
    attention_mask = torch.as_tensor(attention_mask)
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be 2-D [n, L], got shape {tuple(input_ids.shape)}")
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape "
            f"{tuple(input_ids.shape)}"
        )
    mask = attention_mask.to(torch.long)
    if ((mask != 0) & (mask != 1)).any():
        raise ValueError("attention_mask must contain only 0 and 1")
    # Right padding: once a row has a 0 it must stay 0 (mask non-increasing along L).
    if mask.shape[1] > 1 and (mask[:, 1:] > mask[:, :-1]).any():
        raise ValueError("batches must be right-padded (attention_mask of the form 1..1 0..0)")
    device = _device_of(model)
    return input_ids.to(device=device, dtype=torch.long), mask.to(device)


def _shifted_logits(
    model: torch.nn.Module, input_ids: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits that predict tokens 1..L-1, their targets, and the mask of predicted real tokens."""
    logits = model(input_ids=input_ids, attention_mask=mask).logits
    pred_logits = logits[:, :-1, :].float()  # [n, L-1, V]; float for a stable log-softmax
    targets = input_ids[:, 1:]  # [n, L-1]
    predicted = mask[:, 1:].bool()  # right padding: target real => context real
    return pred_logits, targets, predicted


def _token_nll(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token NLL [n, L-1] (0 where not predicted) and the predicted-token mask."""
    ids, mask = _check_batch(model, input_ids, attention_mask)
    if ids.shape[1] < 2:
        raise ValueError("sequences need at least 2 positions: the first token is never predicted")
    logits, targets, predicted = _shifted_logits(model, ids, mask)
    nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # [n, L-1]
    # where() rather than multiplication, so a NaN on a padded position cannot leak in.
    nll = torch.where(predicted, nll, torch.zeros_like(nll))
    return nll, predicted


# ---------------------------------------------------------------------------
# likelihood statistics
# ---------------------------------------------------------------------------


def _mean_over_predicted(values: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """Per-sequence mean of per-token ``values`` (0 off ``predicted``); a sequence with no predicted token
    is an error rather than a NaN that would poison a loss."""
    counts = predicted.sum(dim=1)
    if (counts == 0).any():
        bad = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"sequences {bad} have fewer than 2 real tokens: nothing to predict")
    return values.sum(dim=1) / counts.to(values.dtype)


def sequence_nll(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Mean next-token negative log-likelihood of each sequence, shape [n].

    Used both as an evaluation statistic and as the training / gradient-ascent loss,
    so it keeps the autograd graph and leaves the model's train/eval mode alone
    (the caller decides whether dropout is on). Each sequence must have at least
    two real tokens, since the first one is never predicted; otherwise ValueError
    (a silent NaN would poison a training loss).
    """
    nll, predicted = _token_nll(model, input_ids, attention_mask)
    return _mean_over_predicted(nll, predicted)


def token_log_margins(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Per-sequence mean of (correct next-token logit - logsumexp of the other logits), [n].

    This is log p / (1 - p) of the correct token averaged over predicted tokens: the
    language-model analogue of the classification margin whose distribution KLoM
    compares across models. Evaluation statistic: no_grad, eval mode. Sequences with
    fewer than two real tokens raise ValueError (no predicted token to average).
    """
    with torch.no_grad(), _eval_mode(model):
        ids, mask = _check_batch(model, input_ids, attention_mask)
        if ids.shape[1] < 2:
            raise ValueError("sequences need at least 2 positions: the first token is never predicted")
        logits, targets, predicted = _shifted_logits(model, ids, mask)
        correct = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # [n, L-1]
        others = logits.scatter(-1, targets.unsqueeze(-1), float("-inf"))
        margins = correct - torch.logsumexp(others, dim=-1)
        return _mean_over_predicted(torch.where(predicted, margins, torch.zeros_like(margins)), predicted)


def perplexity(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> float:
    """exp of the token-weighted mean NLL over every predicted token of the batch.

    Token-weighted (a corpus perplexity), not the mean of per-sentence perplexities,
    so long sentences count in proportion to their tokens and one badly predicted
    short sentence cannot dominate through the exp. no_grad, eval mode. Returns inf
    when the mean NLL overflows exp (e.g. after aggressive gradient ascent). Raises
    ValueError if the batch has no predicted token at all.
    """
    with torch.no_grad(), _eval_mode(model):
        nll, predicted = _token_nll(model, input_ids, attention_mask)
        total = int(predicted.sum())
        if total == 0:
            raise ValueError("batch has no predicted tokens (every sequence has < 2 real tokens)")
        mean = nll.double().sum().item() / total
    try:
        return math.exp(mean)
    except OverflowError:  # a model wrecked by gradient ascent: report inf, do not crash the run
        return math.inf


# ---------------------------------------------------------------------------
# generation and ROUGE
# ---------------------------------------------------------------------------


def greedy_generate(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy continuation of each prompt; returns the FULL decoded text (prompt + continuation).

    The full text is returned (not only the new part) because ROUGE in the paper is
    computed between the generation and the whole training sentence, which starts
    with the prompt. Prompts are generated one at a time: no padding is involved, so
    a prompt's output does not depend on the other prompts in the list, and greedy
    decoding in eval mode makes the result deterministic. Generation stops at the
    tokenizer's EOS or after ``max_new_tokens``; special tokens are dropped when
    decoding. A prompt that tokenizes to nothing raises ValueError (GPT-2 style
    models have no BOS to start from).
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    eos_id = tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    if pad_id is None:
        raise ValueError("tokenizer needs a pad or eos token for generation")
    device = _device_of(model)
    outputs: list[str] = []
    with torch.no_grad(), _eval_mode(model):
        for prompt in prompts:
            enc = tokenizer(prompt, return_tensors="pt")
            ids = enc["input_ids"].to(device)
            if ids.shape[1] == 0:
                raise ValueError(f"prompt {prompt!r} tokenizes to no tokens")
            if max_new_tokens == 0:
                full = ids[0]
            else:
                gen_kwargs = dict(
                    input_ids=ids,
                    attention_mask=enc["attention_mask"].to(device),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    pad_token_id=pad_id,
                )
                if eos_id is not None:
                    gen_kwargs["eos_token_id"] = eos_id
                full = model.generate(**gen_kwargs)[0]
            outputs.append(
                tokenizer.decode(
                    full.tolist(), skip_special_tokens=True, clean_up_tokenization_spaces=False
                )
            )
    return outputs


def prompt_of(sentence: str, words: int = 2) -> str:
    """The first ``words`` whitespace-separated words of ``sentence``, the generation prompt.

    The prompt is a verbatim prefix of the sentence (spacing kept), so it tokenizes
    like the start of the training sentence. Fewer words than asked: the whole
    sentence (stripped of trailing whitespace).
    """
    if words < 1:
        raise ValueError(f"words must be >= 1, got {words}")
    end = 0
    for i, match in enumerate(re.finditer(r"\S+", sentence)):
        end = match.end()
        if i + 1 == words:
            break
    return sentence[:end]


def rouge_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1 / ROUGE-2 / ROUGE-L F-measures (rouge-score, Porter stemmer) over pairs.

    Keys "rouge1", "rouge2", "rougeL". The rouge-score tokenizer lowercases and keeps
    only alphanumeric tokens, so punctuation and case do not count. ValueError for
    empty or unequal-length lists.
    """
    from rouge_score import rouge_scorer

    predictions = list(predictions)
    references = list(references)
    if not predictions or not references:
        raise ValueError("rouge_scores needs at least one prediction/reference pair")
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions but {len(references)} references"
        )
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)
    totals = {k: 0.0 for k in ROUGE_KEYS}
    for pred, ref in zip(predictions, references):
        # RougeScorer.score(target, prediction): reference first.
        scores = scorer.score(ref, pred)
        for k in ROUGE_KEYS:
            totals[k] += scores[k].fmeasure
    return {k: totals[k] / len(predictions) for k in ROUGE_KEYS}


def generation_rouge(
    model,
    tokenizer,
    sentences: list[str],
    prompt_words: int = 2,
    max_new_tokens: int | None = None,
    prefix: str = "",
) -> tuple[dict[str, float], list[str]]:
    """Prompt with each sentence's first words, generate greedily, ROUGE the full texts.

    ``prefix`` is prepended to every prompt, e.g. the start-of-text token a model was trained with
    (it must then be a special token, so decoding drops it from the generations).

    This is the paper's memorisation probe: a model that still knows a sentence
    regenerates it from its opening words. The default ``max_new_tokens`` is the
    token length of the longest sentence + 2, enough to regenerate any sentence in
    full. The prompt words are part of both generation and reference, so even a
    model that knows nothing gets a small non-zero ROUGE-1. Returns (scores,
    generations), generations in the order of ``sentences``.
    """
    sentences = list(sentences)
    if not sentences:
        raise ValueError("generation_rouge needs at least one sentence")
    if max_new_tokens is None:
        longest = max(len(tokenizer(s)["input_ids"]) for s in sentences)
        max_new_tokens = longest + 2
    prompts = [prefix + prompt_of(s, prompt_words) for s in sentences]
    generations = greedy_generate(model, tokenizer, prompts, max_new_tokens)
    return rouge_scores(generations, sentences), generations


# ---------------------------------------------------------------------------
# influence functions (section 3.6.3)
# ---------------------------------------------------------------------------


def _flat_dot(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(xs, ys))


def _check_params(params: Sequence[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    params = list(params)
    if not params:
        raise ValueError("params is empty")
    for p in params:
        if not p.requires_grad:
            raise ValueError("every parameter in params must require grad")
    return params


def _grad(loss_fn: Callable[[], torch.Tensor], params, *, create_graph: bool) -> list[torch.Tensor]:
    loss = loss_fn()
    if loss.dim() != 0:
        raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
    grads = torch.autograd.grad(loss, params, create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def lissa_inverse_hvp(
    model: torch.nn.Module,
    loss_fn: Callable[[], torch.Tensor],
    v: list[torch.Tensor],
    params: list[torch.nn.Parameter],
    *,
    damping: float = 0.01,
    scale: float = 25.0,
    iterations: int = 100,
    normalize: bool = False,
) -> list[torch.Tensor]:
    """LiSSA estimate of the damped inverse-Hessian-vector product (H + damping*scale*I)^-1 v.

    Koh & Liang need H^-1 v without forming H; LiSSA iterates
        h_0 = v,   h_{j+1} = v + (1 - damping) h_j - H h_j / scale
    where H is the Hessian of ``loss_fn()`` w.r.t. ``params`` and H h is a
    Hessian-vector product by double backward (grad of grad . h). The fixed point
    h* satisfies (damping I + H / scale) h* = v, so the returned h / scale equals
    (H + damping * scale * I)^-1 v. The recursion converges only when the spectral
    radius of (1 - damping) I - H / scale is < 1, i.e. every Hessian eigenvalue lies
    in (-damping*scale, (2 - damping)*scale): choose ``scale`` above the largest
    eigenvalue; the error shrinks like (1 - damping - lambda_min/scale)^iterations.
    A non-finite iterate raises FloatingPointError (diverged: raise ``scale``).

    ``loss_fn`` is evaluated once (in eval mode, so dropout is off) and its graph is
    reused for every product: a deterministic full-batch LiSSA rather than the
    stochastic mini-batch variant. ``normalize=True`` divides h by (||h|| + 1e-12)
    after each step, the paper's eq. (4); the result (still divided by scale) then
    has norm 1/scale and is only a direction, in general not parallel to the exact
    inverse-HVP. ``v`` must match ``params`` in number and shapes. Returns tensors
    shaped like ``params``, detached.
    """
    params = _check_params(params)
    v = [torch.as_tensor(x).detach() for x in v]
    if len(v) != len(params):
        raise ValueError(f"v has {len(v)} tensors but params has {len(params)}")
    for x, p in zip(v, params):
        if x.shape != p.shape:
            raise ValueError(f"v tensor shape {tuple(x.shape)} != parameter shape {tuple(p.shape)}")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    v = [x.to(device=p.device, dtype=p.dtype) for x, p in zip(v, params)]

    with _eval_mode(model):
        grads = _grad(loss_fn, params, create_graph=True)
        h = [x.clone() for x in v]
        for step in range(iterations):
            gh = _flat_dot(grads, h)
            if not gh.requires_grad:  # loss is linear in params: H = 0
                hvp = [torch.zeros_like(p) for p in params]
            else:
                hvp = torch.autograd.grad(gh, params, retain_graph=True, allow_unused=True)
                hvp = [torch.zeros_like(p) if x is None else x for p, x in zip(params, hvp)]
            h = [
                (vi + (1.0 - damping) * hi - hv.detach() / scale).detach()
                for vi, hi, hv in zip(v, h, hvp)
            ]
            if normalize:
                norm = torch.sqrt(sum((hi.double() ** 2).sum() for hi in h))
                h = [hi / (norm.to(hi.dtype) + 1e-12) for hi in h]
            if not all(torch.isfinite(hi).all() for hi in h):
                raise FloatingPointError(
                    f"LiSSA diverged at iteration {step + 1}: increase scale (or damping)"
                )
    return [hi / scale for hi in h]


def _hvp(grads: list[torch.Tensor], h: list[torch.Tensor], params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    """H h by double backward through the kept first-order graph (zeros where the loss is linear)."""
    gh = _flat_dot(grads, h)
    if not gh.requires_grad:
        return [torch.zeros_like(p) for p in params]
    hvp = torch.autograd.grad(gh, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if x is None else x.detach() for p, x in zip(params, hvp)]


def paper_lissa_inverse_hvp(
    model: torch.nn.Module,
    loss_fn: Callable[[], torch.Tensor],
    v: list[torch.Tensor],
    params: list[torch.nn.Parameter],
    *,
    damping: float = 0.01,
    scale: float = 25.0,
    iterations: int = 50,
    eps: float = 1e-12,
) -> list[torch.Tensor]:
    """Paper 000's "inverse-HVP", eqs. (3) and (4) exactly as printed (section 3.6.3).

        h_0 = v,   u = v + (1 - damping) * H h_i / scale   (eq. 3, hvp = H h_i),
        h_{i+1} = u / (||u|| + eps)                         (eq. 4),

    and the final unit vector h is the IHVP of eq. (5). How it differs from ``lissa_inverse_hvp`` (the LiSSA of
    Agarwal et al. and Koh & Liang, h_{j+1} = v + (1 - damping) h_j - H h_j / scale, result h / scale):

    - eq. (3) has no ``(1 - damping) h_i`` term and ADDS the scaled HVP, so it is the power-series recursion for
      (I - c H)^{-1} v with c = (1 - damping) / scale, not for an inverse Hessian;
    - eq. (4) then fixes the norm: the fixed point is a unit vector h with (s I - c H) h = v for the scalar
      s = ||v + c H h|| > c * lambda_max, i.e. h is proportional to (s I - c H)^{-1} v. When c * lambda_max << s
      (typical: v is a gradient of norm >> 1) this is v / ||v|| plus a small correction ALONG H v, the opposite
      sign to an inverse-Hessian correction. The influence -g . h is then about -g . v / ||v||: for
      self-influence, minus the gradient norm;
    - ``damping`` only rescales the Hessian term and ``scale`` only divides it; neither damps an inverse.

    Its iteration converges when the map h -> normalise(v + c H h) contracts (c ||H|| < s suffices in
    practice). The paper states no values for damping, scale or the iteration count; the defaults are Koh &
    Liang's PyTorch defaults (0.01, 25) and the task's 50 iterations. Returns unit-norm tensors shaped like
    ``params``, detached; a non-finite iterate raises FloatingPointError.
    """
    params = _check_params(params)
    v = [torch.as_tensor(x).detach() for x in v]
    if len(v) != len(params) or any(x.shape != p.shape for x, p in zip(v, params)):
        raise ValueError("v must match params in number and shapes")
    if scale <= 0 or iterations < 0:
        raise ValueError(f"scale must be > 0 and iterations >= 0, got {scale} and {iterations}")
    v = [x.to(device=p.device, dtype=p.dtype) for x, p in zip(v, params)]
    with _eval_mode(model):
        grads = _grad(loss_fn, params, create_graph=True)
        h = _unit([x.clone() for x in v], eps)
        for step in range(iterations):
            hvp = _hvp(grads, h, params)
            h = _unit([(vi + (1.0 - damping) * hv / scale).detach() for vi, hv in zip(v, hvp)], eps)
            if not all(torch.isfinite(hi).all() for hi in h):
                raise FloatingPointError(f"paper LiSSA diverged at iteration {step + 1}: increase scale")
    return h


def _unit(h: list[torch.Tensor], eps: float) -> list[torch.Tensor]:
    norm = torch.sqrt(sum((hi.double() ** 2).sum() for hi in h))
    return [hi / (norm.to(hi.dtype) + eps) for hi in h]


ESTIMATORS = ("lissa", "paper")


def influence_score(
    model: torch.nn.Module,
    train_loss_fn: Callable[[], torch.Tensor],
    test_loss_fn: Callable[[], torch.Tensor],
    params: list[torch.nn.Parameter],
    *,
    hessian_loss_fn: Callable[[], torch.Tensor] | None = None,
    estimator: str = "lissa",
    **lissa_kwargs,
) -> float:
    """Koh & Liang influence, eq. (5): - grad L_train . (H + damping*scale*I)^-1 grad L_test.

    Estimates how the test loss changes when the training point is up-weighted
    (negative: the training point helps the test point). The Hessian is that of
    ``hessian_loss_fn`` (the full training objective in Koh & Liang); by default it
    is ``train_loss_fn``, since with only the two losses at hand the training loss
    is the one the model was fit to. The inverse-HVP comes from
    ``lissa_inverse_hvp(..., **lissa_kwargs)`` (damping, scale, iterations,
    normalize; with normalize=True the score is only meaningful up to scale), or with
    ``estimator="paper"`` from ``paper_lissa_inverse_hvp`` (paper 000's eqs. 3-4 as printed).
    Eq. (5)'s sum over training points is the sum of these scores.
    """
    params = _check_params(params)
    with _eval_mode(model):
        g_test = [g.detach() for g in _grad(test_loss_fn, params, create_graph=False)]
        g_train = [g.detach() for g in _grad(train_loss_fn, params, create_graph=False)]
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown influence estimator {estimator!r}; use one of {ESTIMATORS}")
    inverse = lissa_inverse_hvp if estimator == "lissa" else paper_lissa_inverse_hvp
    ihvp = inverse(
        model,
        hessian_loss_fn if hessian_loss_fn is not None else train_loss_fn,
        g_test,
        params,
        **lissa_kwargs,
    )
    return float(-_flat_dot(g_train, ihvp).item())


# ---------------------------------------------------------------------------
# activation / gradient cosine (section 3.5)
# ---------------------------------------------------------------------------


def activation_gradient_influence(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    embedding_gradient: torch.Tensor,
) -> float:
    """Mean cosine between each token's input activation and its stored embedding-gradient row.

    The paper's influence_{i,j} = a_i . g_j / (|a_i| |g_j|) names neither a layer nor
    how a data point's gradient g_j is paired with a token. Concrete reading used
    here: a_i is the input embedding of token i (word embedding from
    ``model.get_input_embeddings()`` plus, GPT-2 specific, the position embedding
    ``model.transformer.wpe`` at position i; the position part is skipped when the
    model has no ``transformer.wpe``), g_i is the row of the stored gradient of the
    word-embedding matrix (``embedding_gradient``, shape [V, d]) for token t_i, which
    is the only part of that gradient token i's embedding received. The score is the
    mean of cos(a_i, g_i) over the real tokens of the batch; a token whose gradient
    row is all zero (or whose activation is zero) contributes 0 and still counts in
    the mean. ``input_ids`` may be [L] or [n, L] (right-padded). Range [-1, 1].
    """
    ids = torch.as_tensor(input_ids)
    mask = torch.as_tensor(attention_mask)
    if ids.dim() == 1:
        ids, mask = ids.unsqueeze(0), mask.unsqueeze(0)
    ids, mask = _check_batch(model, ids, mask)
    emb = model.get_input_embeddings()
    grad = torch.as_tensor(embedding_gradient)
    if grad.shape != emb.weight.shape:
        raise ValueError(
            f"embedding_gradient shape {tuple(grad.shape)} != embedding weight shape "
            f"{tuple(emb.weight.shape)}"
        )
    real = mask.bool()
    if not real.any():
        raise ValueError("no real tokens in the batch")
    with torch.no_grad():
        act = emb(ids).double()  # [n, L, d]
        wpe = getattr(getattr(model, "transformer", None), "wpe", None)
        if wpe is not None:
            positions = torch.arange(ids.shape[1], device=ids.device)
            act = act + wpe(positions).double().unsqueeze(0)
        g = grad.detach().to(device=ids.device, dtype=torch.float64)[ids]  # [n, L, d]
        dots = (act * g).sum(-1)
        norms = act.norm(dim=-1) * g.norm(dim=-1)
        cos = torch.where(norms > 0, dots / norms.clamp_min(1e-300), torch.zeros_like(dots))
        return float(cos[real].mean().item())
