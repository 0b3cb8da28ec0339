"""Paper 000 (stored-gradient unlearning of GPT-2 on the "Dave" sentences), Tables 1, 3, 4 and 5 on dave-small.

By default the model is ``dave-small``: a small GPT-2 pretrained offline on standard-library docstrings and then
fine-tuned, as the paper fine-tunes pretrained GPT-2; ``dave-layers-scratch`` / ``dave-epochs-scratch`` run the
same tables on ``dave-tiny`` trained from scratch. Unlearning runs the paper's 200 iterations (Table 5's curve).

One model is fine-tuned once while every training sentence's gradients are recorded; each of the 20 sentences
is then unlearned in turn from that same model with stored-gradient ascent. Every phase and variant is
measured on the same targets, so phases can be compared with paired t-tests as in the paper's Table 1.

``dave-layers`` varies which layers' stored gradients are applied (paper section 4.3); ``dave-epochs`` varies
whether the gradients are those of the first epoch or of all epochs (section 5.3).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import matplotlib
import numpy as np
import pandas as pd
import torch
from torch import nn

from bench.context import UnlearnContext
from tasks.language.metrics import generation_rouge, greedy_generate, influence_score, perplexity, prompt_of, rouge_scores
from oracles.recorded import GradientRecorder
from bench.stats import describe, paired_comparison
from bench.atomic import write_atomic
from bench.task import Split, TaskData
from bench.plotting import png_bytes
from tasks.language.reproduce.narrative import fill, fill_lines
from methods.stored_gradient import StoredGradientAscent, select_layers

if TYPE_CHECKING:
    from tasks.language.dave import Dave

matplotlib.use("Agg")

Log = Callable[[str], None]
BEFORE, FINETUNED = "before fine-tuning", "fine-tuned"
ROUGE = ("rouge1", "rouge2", "rougeL")
PERPLEXITIES = ("perplexity_forget", "perplexity_retain", "perplexity_general", "perplexity_dave")
#: metrics compared pairwise: self-influence by our LiSSA and by the paper's eqs. 3-4, plus direct measures of forgetting
COMPARED = ("influence", "influence_paper", "log_perplexity_forget", "rouge1", "rougeL")
PAPER_STEPS = 200  # Table 5's unlearning curve; Table 3's unlearning rows summarise the same runs

# Paper 000's numbers (GPT-2 small, 15 epochs), quoted in the summaries.
PAPER = {
    "influence": {BEFORE: -541.45, FINETUNED: -1904.87, "all": -1009.26, "embedding": -1032.49},
    "perplexity": {BEFORE: 29129.39, FINETUNED: 1.07, "embedding": 1.12, "all": 1.16, "first-epoch": 1.45},
    "before_minus_after": {"all": 423.99, "embedding": 467.81, "first-epoch": 396.87},
    "first_epoch_minus": {"embedding": 70.94, "all": 27.12},
    "rouge1_curve": (0.6056, 0.1664, 200),
    "rouge1_finetuned": 0.61,
}


@dataclass(frozen=True)
class Variant:
    """One way of unlearning: which stored gradients, which layers, and whether the step is norm-matched."""

    label: str
    gradients: str = "all-epochs"
    layers: str = "all"
    norm_matched: bool = False  # scale lr so the step has the all-epochs gradient's norm (same layers)


LAYER_VARIANTS = (Variant("embedding", layers="embedding"), Variant("all"), Variant("last:2", layers="last:2"),
                  Variant("embedding+last:2", layers="embedding+last:2"))
EPOCH_VARIANTS = (Variant("first-epoch", gradients="first-epoch"), Variant("all-epochs"),
                  Variant("all-epochs/embedding", layers="embedding"),
                  Variant("first-epoch norm-matched", gradients="first-epoch", norm_matched=True))


# -- the fine-tuned model and its recorded gradients ----------------------------------------------------------
@dataclass
class Fixture:
    """Everything shared by all targets: the task, its data, the model before and after fine-tuning, gradients."""

    task: Dave
    train: Split
    val: Split
    initial: nn.Module
    finetuned: nn.Module
    recorder: GradientRecorder
    train_seconds: float

    @property
    def sentences(self) -> list[str]:
        return self.task.sentences["train"]

    def data(self, target: int) -> TaskData:
        return TaskData(self.train, self.val, np.array([target]))

    def gradients(self, target: int) -> Callable[[str], dict[str, torch.Tensor]]:
        return lambda kind: self.recorder.sums[kind][target]

    @cached_property
    def train_buckets(self) -> list[tuple[torch.Tensor, int]]:
        return _length_buckets(self.train.y)


def prepare(task: Dave, seed: int, device: str, log: Log) -> Fixture:
    """Fine-tune once while recording every sentence's gradients (a recorder over all 20 costs ~3x training)."""
    train, val = (split.to(device) for split in task.load())
    initial = task.make_model(seed).to(device)
    finetuned = task.make_model(seed).to(device)
    recorder = GradientRecorder(range(len(train)))
    log(f"fine-tuning {task.name} ({task.epochs} epochs) while recording the gradients of all {len(train)} sentences")
    start = time.perf_counter()
    task.train(finetuned, train, seed, recorder=recorder)
    return Fixture(task, train, val, initial.eval(), finetuned.eval(), recorder, time.perf_counter() - start)


# -- measurements -----------------------------------------------------------------------------------------------
def _length_buckets(mask: torch.Tensor) -> list[tuple[torch.Tensor, int]]:
    """Group rows of similar length (a new group when 1.5x longer than its shortest) so padding is not computed."""
    lengths = mask.sum(dim=1).tolist()
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[i] <= 1.5 * lengths[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return [(torch.tensor(g, device=mask.device), int(max(lengths[i] for i in g))) for g in groups]


def mean_loss(task, model: nn.Module, split: Split, buckets: list[tuple[torch.Tensor, int]]) -> torch.Tensor:
    """The task's mean per-sentence loss, computed on length-cropped groups: same value, about half the work."""
    losses = [task.loss(model, split.x[rows, :width], split.y[rows, :width]) for rows, width in buckets]
    return torch.cat(losses).mean()


def self_influence(fx: Fixture, model: nn.Module, target: int, iterations: int, estimator: str = "lissa") -> float:
    """The task's influence score (embedding parameters, damping 0.01, scale 25) with fewer iterations; estimator
    ``lissa`` (ours, a damped inverse-HVP) or ``paper`` (eqs. 3-4 as printed; see tasks.language.metrics)."""
    forget = fx.data(target).forget
    forget_buckets = _length_buckets(forget.y)
    names = set(fx.task.layer_groups(model)["embedding"])
    params = [p for n, p in model.named_parameters() if n in names]
    forget_loss = lambda: mean_loss(fx.task, model, forget, forget_buckets)  # noqa: E731
    train_loss = lambda: mean_loss(fx.task, model, fx.train, fx.train_buckets)  # noqa: E731
    return influence_score(model, forget_loss, forget_loss, params, hessian_loss_fn=train_loss,
                           damping=0.01, scale=25.0, iterations=iterations, estimator=estimator)


def forget_rouge(task, model: nn.Module, sentence: str) -> tuple[dict[str, float], str]:
    """ROUGE of the greedy continuation of the sentence's first 2 words, prompted as in training (after EOS).

    Training rows start with EOS, so a prompt without it shifts every position by one; the from-scratch tiny
    model (learned positions, no pretraining) then fails to regenerate even sentences it knows perfectly.
    """
    prompt = task.tokenizer.eos_token + prompt_of(sentence, 2)
    new_tokens = len(task.tokenizer(sentence)["input_ids"]) + 2
    text = greedy_generate(model, task.tokenizer, [prompt], new_tokens)[0]
    return rouge_scores([text], [sentence]), text


def perplexities(fx: Fixture, model: nn.Module, target: int) -> dict[str, float]:
    """Perplexity of the target, the other 19 sentences, the general sentences and all 20 Dave sentences."""
    data = fx.data(target)
    splits = {"forget": data.forget, "retain": data.retain, "general": fx.val, "dave": fx.train}
    return {f"perplexity_{name}": perplexity(model, s.x, s.y) for name, s in splits.items()}


def measure(fx: Fixture, model: nn.Module, target: int, influence_iterations: int) -> dict:
    """One data-point row: influence, perplexities, ROUGE and the generated text."""
    scores, text = forget_rouge(fx.task, model, fx.sentences[target])
    row = {"influence": self_influence(fx, model, target, influence_iterations),
           "influence_paper": self_influence(fx, model, target, influence_iterations, estimator="paper")}
    row.update(perplexities(fx, model, target))
    row.update(scores)
    row["generation"] = text
    return row


# -- unlearning ---------------------------------------------------------------------------------------------------
def _norm(gradients: dict[str, torch.Tensor], names: list[str]) -> float:
    return math.sqrt(sum(float(gradients[n].double().pow(2).sum()) for n in names if n in gradients))


def step_size(fx: Fixture, target: int, variant: Variant, lr: float | None) -> float:
    """The variant's lr: the given one (or the task's), rescaled for norm-matched variants."""
    base = fx.task.default_lr if lr is None else lr
    if not variant.norm_matched:
        return base
    names = select_layers(fx.task.layer_groups(fx.finetuned), variant.layers)
    sums = fx.recorder.sums
    return base * _norm(sums["all-epochs"][target], names) / _norm(sums[variant.gradients][target], names)


def unlearn(fx: Fixture, target: int, variant: Variant, steps: int, lr: float | None,
            observer: Callable[[int, nn.Module], None] | None = None) -> nn.Module:
    """Stored-gradient ascent on one sentence, from the shared fine-tuned model (which is left untouched)."""
    method = StoredGradientAscent(steps=steps, lr=step_size(fx, target, variant, lr), gradients=variant.gradients,
                                  layers=variant.layers)
    ctx = UnlearnContext(task=fx.task, data=fx.data(target), seed=0, recorded_gradients=fx.gradients(target),
                         observer=observer)
    return method.unlearn(fx.finetuned, ctx)


def data_points(fx: Fixture, targets: list[int], variants: tuple[Variant, ...], steps: int, lr: float | None,
                influence_iterations: int, log: Log) -> pd.DataFrame:
    """One row per (target, phase): before fine-tuning, fine-tuned, and after each unlearning variant."""
    rows = []
    for count, target in enumerate(targets, 1):
        start = time.perf_counter()
        models = {BEFORE: (fx.initial, None), FINETUNED: (fx.finetuned, None)}
        models.update({f"unlearned: {v.label}": (unlearn(fx, target, v, steps, lr), v) for v in variants})
        for phase, (model, variant) in models.items():
            row = {"target": target, "sentence": fx.sentences[target], "phase": phase,
                   "variant": variant.label if variant else "", "gradients": variant.gradients if variant else "",
                   "layers": variant.layers if variant else "", "steps": steps if variant else 0,
                   "lr": step_size(fx, target, variant, lr) if variant else math.nan}
            row.update(measure(fx, model, target, influence_iterations))
            rows.append(row)
        log(f"  target {count}/{len(targets)} (sentence {target}) measured in {time.perf_counter() - start:.1f}s")
    points = pd.DataFrame(rows)
    points["log_perplexity_forget"] = np.log(points["perplexity_forget"])
    return points


def rouge_curve(fx: Fixture, targets: list[int], variants: tuple[Variant, ...], steps: int, every: int,
                lr: float | None) -> pd.DataFrame:
    """The forget sentence's ROUGE and perplexities every ``every`` iterations of a longer unlearning run."""
    rows = []
    for variant in variants:
        for target in targets:
            data, sentence = fx.data(target), fx.sentences[target]

            def record(iteration: int, model: nn.Module, target: int = target, variant: Variant = variant) -> None:
                if iteration % every and iteration != steps:
                    return
                scores, _ = forget_rouge(fx.task, model, sentence)
                rows.append({"variant": variant.label, "target": target, "iteration": iteration, **scores,
                             "perplexity_forget": perplexity(model, data.forget.x, data.forget.y),
                             "perplexity_retain": perplexity(model, data.retain.x, data.retain.y)})

            record(0, fx.finetuned)
            unlearn(fx, target, variant, steps, lr, observer=record)
    return pd.DataFrame(rows)


# -- tables -------------------------------------------------------------------------------------------------------
def phase_order(points: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(points["phase"]))


def comparisons(points: pd.DataFrame, pairs: list[tuple[str, str, str]]) -> pd.DataFrame:
    """Paired t-tests (a - b over targets) for each (label, phase a, phase b) and each compared metric."""
    rows = []
    for metric in COMPARED:
        wide = points.pivot(index="target", columns="phase", values=metric)
        for label, a, b in pairs:
            pair = wide[[a, b]].replace([np.inf, -np.inf], np.nan).dropna()
            row = {"metric": metric, "comparison": label, "phase_a": a, "phase_b": b}
            if len(pair) >= 2:
                row.update(paired_comparison(pair[a].to_numpy(), pair[b].to_numpy()))
            else:
                row.update({"n": len(pair), "mean_difference": math.nan, "t_statistic": math.nan,
                            "p_value": math.nan, "ci_low": math.nan, "ci_high": math.nan, "cohens_d": math.nan})
            rows.append(row)
    return pd.DataFrame(rows)


def descriptive(points: pd.DataFrame) -> pd.DataFrame:
    """Table 3 analog: mean/median/std/min/max of influence and ROUGE per phase."""
    rows = []
    for metric in ("influence", *ROUGE):
        for phase in phase_order(points):
            values = points.loc[points["phase"] == phase, metric]
            rows.append({"metric": metric, "phase": phase, **describe(values.to_numpy())})
    return pd.DataFrame(rows)


def perplexity_table(points: pd.DataFrame) -> pd.DataFrame:
    """Table 4 analog: mean perplexity over targets at each stage."""
    table = points.groupby("phase", sort=False)[list(PERPLEXITIES)].mean()
    return table.loc[phase_order(points)]


def curve_table(curve: pd.DataFrame) -> pd.DataFrame:
    """Table 5 analog: mean over targets of the forget sentence's ROUGE (and perplexities) per iteration."""
    columns = [*ROUGE, "perplexity_forget", "perplexity_retain"]
    return curve.groupby(["variant", "iteration"], sort=False)[columns].mean().reset_index()


def _fmt(frame: pd.DataFrame) -> str:
    return frame.to_string(float_format=lambda v: f"{v:.4g}")


def tables_text(title: str, points: pd.DataFrame, comps: pd.DataFrame, curve: pd.DataFrame) -> str:
    """The four tables as aligned text, in the paper's numbering."""
    table1 = comps[["metric", "comparison", "n", "t_statistic", "p_value", "mean_difference", "ci_low", "ci_high",
                    "cohens_d"]]
    parts = [title, "",
             "Table 1 analog: paired t-tests over targets (difference = a - b; influence is the paper's metric)",
             _fmt(table1.set_index(["metric", "comparison"])), "",
             "Table 3 analog: descriptive statistics per phase", _fmt(descriptive(points).set_index(["metric", "phase"])),
             "", "Table 4 analog: perplexity, mean over targets (forget = the target sentence, retain = the other "
             "Dave sentences, general = Table 7 sentences, dave = all 20)", _fmt(perplexity_table(points)), "",
             "Table 5 analog: forget-sentence ROUGE during unlearning, mean over targets",
             _fmt(curve_table(curve).set_index(["variant", "iteration"]))]
    return "\n".join(parts) + "\n"


# -- figure -------------------------------------------------------------------------------------------------------
def plot(points: pd.DataFrame, curve: pd.DataFrame, title: str) -> bytes:
    """Influence and forget perplexity per phase (box + points), forget ROUGE over unlearning iterations."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    order = phase_order(points)
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    for ax, metric, label in ((axes[0], "influence", "self-influence (LiSSA, embedding params; symlog)"),
                              (axes[1], "perplexity_forget", "forget-sentence perplexity (log)")):
        sns.boxplot(data=points, x="phase", y=metric, order=order, color="0.85", fliersize=0, ax=ax)
        sns.stripplot(data=points, x="phase", y=metric, order=order, size=3, color="C0", ax=ax)
        if metric == "influence":
            smallest = points[metric].abs().replace(0, np.nan).min()
            ax.set_yscale("symlog", linthresh=float(smallest) if np.isfinite(smallest) else 1e-3)
        else:
            ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=35)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
    long = curve.melt(id_vars=["variant", "target", "iteration"], value_vars=list(ROUGE), var_name="score")
    hue = "score" if curve["variant"].nunique() == 1 else "variant"
    data = long if hue == "score" else long[long["score"] == "rouge1"]
    sns.lineplot(data=data, x="iteration", y="value", hue=hue, style=hue, markers=True, errorbar=("ci", 95),
                 ax=axes[2])
    axes[2].set_ylabel("forget-sentence ROUGE (mean over targets, 95% CI)" if hue == "score"
                       else "forget-sentence ROUGE-1 (mean over targets, 95% CI)")
    axes[2].set_xlabel("unlearning iterations")
    axes[2].set_ylim(0, 1.05)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return png_bytes(fig, dpi=110)


# -- summary helpers ----------------------------------------------------------------------------------------------
def phase_mean(points: pd.DataFrame, phase: str, metric: str) -> float:
    return float(points.loc[points["phase"] == phase, metric].mean())


def returned_fraction(points: pd.DataFrame, phase: str) -> float:
    """How much of fine-tuning's shift in mean influence an unlearning phase undoes (paper: ~0.66)."""
    before, tuned = phase_mean(points, BEFORE, "influence"), phase_mean(points, FINETUNED, "influence")
    return (phase_mean(points, phase, "influence") - tuned) / (before - tuned)


def _comp(comps: pd.DataFrame, label: str, metric: str = "influence") -> pd.Series:
    return comps[(comps["comparison"] == label) & (comps["metric"] == metric)].iloc[0]


def _agree(same: bool) -> str:
    return "agrees" if same else "DISAGREES"


def common_lines(fx: Fixture, points: pd.DataFrame, steps: int, lr: float | None, iterations: int,
                 variants: tuple[Variant, ...]) -> list[str]:
    """Setup, perplexity and influence comparisons with the paper, shared by both experiments."""
    task, paper = fx.task, PAPER
    before_i, tuned_i = phase_mean(points, BEFORE, "influence"), phase_mean(points, FINETUNED, "influence")
    before_p, tuned_p = phase_mean(points, BEFORE, "perplexity_dave"), phase_mean(points, FINETUNED, "perplexity_dave")
    tuned_f, tuned_g = (phase_mean(points, FINETUNED, m) for m in ("perplexity_forget", "perplexity_general"))
    lr_used = task.default_lr if lr is None else lr

    def per_variant(metric: str, spec: str, labelled: bool = True) -> str:
        return ", ".join(f"{phase_mean(points, _phase(v.label), metric):{spec}}" + (f" ({v.label})" if labelled else "")
                         for v in variants)

    return fill_lines(
        "common", task_name=task.name, task_description=_describe_task(task), train_seconds=f"{fx.train_seconds:.0f}",
        n_targets=points["target"].nunique(), steps=steps, lr=f"{lr_used:g}",
        paper_defaults=(" (the paper's 200 iterations, the task's default lr)"
                        if steps == PAPER_STEPS and lr is None else ""),
        iterations=iterations, step_check=_step_check(points, _all_layers_all_epochs(variants), steps, lr),
        paper_ppl_before=f"{paper['perplexity'][BEFORE]:g}", paper_ppl_tuned=paper["perplexity"][FINETUNED],
        ppl_before=f"{before_p:.4g}", ppl_before_short=f"{before_p:.3g}", ppl_tuned=f"{tuned_p:.3g}",
        ppl_unlearned=per_variant("perplexity_dave", ".3g"),
        ppl_forget_tuned=f"{tuned_f:.3g}", ppl_forget_unlearned=per_variant("perplexity_forget", ".3g"),
        ppl_general_tuned=f"{tuned_g:.4g}", ppl_general_unlearned=per_variant("perplexity_general", ".4g", False),
        general_note=(f" (pretrained: {_pretrained_general(task)})" if _is_pretrained(task) else
                      " (a from-scratch model never learned general English, so this is a drift check, not utility)"),
        paper_inf_before=paper["influence"][BEFORE], paper_inf_tuned=paper["influence"][FINETUNED],
        paper_inf_all=paper["influence"]["all"], paper_inf_embedding=paper["influence"]["embedding"],
        paper_returned_all=f"{_paper_returned('all'):.2f}", paper_returned_embedding=f"{_paper_returned('embedding'):.2f}",
        inf_before=f"{before_i:.4g}", inf_tuned=f"{tuned_i:.4g}", inf_unlearned=per_variant("influence", ".4g"),
        finetune_agrees=_agree(abs(tuned_i) > abs(before_i)),
        finetune_direction="away from zero" if abs(tuned_i) > abs(before_i) else "towards zero",
        finetune_factor=f"{abs(tuned_i / before_i):.3g}",
        before_model="pretrained on docstrings" if _is_pretrained(task) else "randomly initialised",
        fractions=", ".join(f"{returned_fraction(points, _phase(v.label)):.3g} ({v.label})" for v in variants),
        fraction_verdict=_fraction_verdict(points, variants),
        paper_estimator_before=f"{phase_mean(points, BEFORE, 'influence_paper'):.4g}",
        paper_estimator_tuned=f"{phase_mean(points, FINETUNED, 'influence_paper'):.4g}",
        paper_estimator_unlearned=per_variant("influence_paper", ".4g"))


def _all_layers_all_epochs(variants: tuple[Variant, ...]) -> Variant:
    return next(v for v in variants if v.layers == "all" and v.gradients == "all-epochs" and not v.norm_matched)


def _step_check(points: pd.DataFrame, variant: Variant, steps: int, lr: float | None) -> str:
    """Say whether the step size/count used does something without wrecking the model (the brief's sanity check)."""
    phase = _phase(variant.label)
    factor = {m: phase_mean(points, phase, m) / phase_mean(points, FINETUNED, m)
              for m in ("perplexity_forget", "perplexity_retain", "perplexity_general")}
    works = factor["perplexity_forget"] > 1.2 and factor["perplexity_general"] < 2 and factor["perplexity_retain"] < 2
    default = steps == PAPER_STEPS and lr is None
    verdict = ("measurable forgetting without damage" if works else
               "CHECK THE STEP SIZE: " + ("too weak" if factor["perplexity_forget"] <= 1.2 else "collateral damage"))
    return (f"Step-size check ({variant.label}, {steps} iterations"
            + (", the defaults" if default else "") + f"): mean forget perplexity x{factor['perplexity_forget']:.3g}, "
            f"retain x{factor['perplexity_retain']:.3g}, general x{factor['perplexity_general']:.3g} over the "
            f"fine-tuned model: {verdict}.")


def _fraction_verdict(points: pd.DataFrame, variants: tuple[Variant, ...]) -> str:
    """Whether unlearning moves influence back towards its before-fine-tuning value, as in the paper."""
    fractions = {v.label: returned_fraction(points, _phase(v.label)) for v in variants}
    back = [label for label, f in fractions.items() if f > 0.05]
    beyond = [label for label, f in fractions.items() if f > 1.5]
    if not back:
        return "No variant moves influence back towards its before-fine-tuning value: DISAGREES with the paper."
    text = f"Direction agrees for {', '.join(back)} (back towards the before-fine-tuning value)"
    if beyond:
        worst = max(beyond, key=fractions.get)
        text += (f"; {', '.join(beyond)} overshoot it by far, unlike the paper's partial return: the score mostly "
                 "tracks the forget gradient's norm, and ascent makes that gradient larger than at random "
                 f"initialisation (forget perplexity after {worst}: "
                 f"{phase_mean(points, _phase(worst), 'perplexity_forget'):.3g}, untrained: "
                 f"{phase_mean(points, BEFORE, 'perplexity_forget'):.3g})")
    return text + "."


def _paper_returned(variant: str) -> float:
    inf = PAPER["influence"]
    return (inf[variant] - inf[FINETUNED]) / (inf[BEFORE] - inf[FINETUNED])


def _is_pretrained(task) -> bool:
    return getattr(task, "model", "") == "pretrained"


def _pretrained_general(task) -> str:
    """The pretrained model's general-sentence perplexity before and after its pretraining, from its report."""
    ppl = task.pretrained.report["general_perplexity"]
    return f"{ppl['after']:.4g} after pretraining, {ppl['before']:.4g} at random initialisation"


def _describe_task(task) -> str:
    if _is_pretrained(task):
        r = task.pretrained.report
        return (f"GPT-2 config with {task.n_layer} blocks, width {task.n_embd}, pretrained offline for "
                f"{r['config']['steps']} steps ({r['tokens_seen']} tokens) on {r['corpus']['tokens']} tokens of Python "
                f"{r['corpus']['python_version']} standard-library docstrings (sha256 {r['corpus']['sha256'][:12]}), "
                f"then fine-tuned {task.epochs} epochs, Adam lr {task.lr:g}, batch {task.batch_size}")
    if getattr(task, "model", "") == "tiny":
        return (f"GPT-2 config with {task.n_layer} blocks, width {task.n_embd}, trained from scratch for "
                f"{task.epochs} epochs, Adam lr {task.lr:g}, batch {task.batch_size}")
    return f"{task.model}, fine-tuned {task.epochs} epochs, Adam lr {task.lr:g}, batch {task.batch_size}"


def rouge_lines(fx: Fixture, points: pd.DataFrame, curve: pd.DataFrame, label: str) -> list[str]:
    """ROUGE comparison with the paper's Tables 3 and 5, plus the effect of prompting without EOS."""
    table = curve_table(curve)
    table = table[table["variant"] == label]
    start, end, iters = table.iloc[0], table.iloc[-1], int(table["iteration"].max())
    p_start, p_end, p_iters = PAPER["rouge1_curve"]
    plain = generation_rouge(fx.finetuned, fx.task.tokenizer, fx.sentences)[0]["rouge1"]
    drop_ours, drop_paper = end["rouge1"] / start["rouge1"], p_end / p_start
    tuned_rouge1 = phase_mean(points, FINETUNED, "rouge1")
    return fill_lines(
        "rouge", paper_start=p_start, paper_end=p_end, paper_iterations=p_iters, paper_drop=f"{drop_paper:.2f}",
        paper_finetuned=PAPER["rouge1_finetuned"], label=label, iterations=iters, our_drop=f"{drop_ours:.2f}",
        **{f"{key}_{which}": f"{row[key]:.3g}" for which, row in (("start", start), ("end", end))
           for key in ("rouge1", "rouge2", "rougeL")},
        retain_start=f"{start['perplexity_retain']:.3g}", retain_end=f"{end['perplexity_retain']:.3g}",
        direction_agrees=_agree(drop_ours < 1),
        magnitude=(f", magnitude {'similar' if abs(drop_ours - drop_paper) < 0.25 else 'different'}."
                   if drop_ours < 1 else "."),
        finetuned_rouge1=f"{tuned_rouge1:.3g}", plain=f"{plain:.3g}",
        plain_note=(", because a model that learned positions only from these rows shifts by one."
                    if plain < 0.9 * tuned_rouge1 else "."))


def _describe_curve(curve: pd.DataFrame, variant: str) -> str:
    table = curve_table(curve)
    table = table[table["variant"] == variant]
    first, last = table.iloc[0], table.iloc[-1]
    return (f"ROUGE-1 {first['rouge1']:.3g} -> {last['rouge1']:.3g}, forget perplexity "
            f"{first['perplexity_forget']:.3g} -> {last['perplexity_forget']:.3g}")


# -- the two experiments ------------------------------------------------------------------------------------------
@dataclass
class Settings:
    """What both experiments share: the task, which targets, and the unlearning/measurement budget."""

    task: Dave
    targets: list[int]
    steps: int
    curve_steps: int
    curve_every: int
    lr: float | None
    influence_iterations: int
    seed: int
    device: str


def _settings(task, targets, steps, curve_steps, curve_every, lr, influence_iterations, seed, device) -> Settings:
    if task is None:
        from bench.registry import TASKS
        task = TASKS.get("dave-small")()
    if getattr(task, "dataset", "dave") != "dave":
        raise ValueError("the reproductions unlearn Table 6's sentences one at a time: use dataset=dave")
    n = len(task.sentences["train"])
    targets = list(range(n)) if targets is None else [int(t) for t in targets]
    if len(targets) < 2 or any(not 0 <= t < n for t in targets) or len(set(targets)) != len(targets):
        raise ValueError(f"targets must be at least 2 distinct sentence indices in 0..{n - 1}, got {targets}")
    if steps < 1 or curve_steps < 1 or curve_every < 1:
        raise ValueError("steps, curve_steps and curve_every must be at least 1")
    return Settings(task, targets, steps, curve_steps, curve_every, lr, influence_iterations, seed, device)


def _run(name: str, s: Settings, variants: tuple[Variant, ...], curve_variants: tuple[Variant, ...],
         log: Log) -> tuple[Fixture, pd.DataFrame, pd.DataFrame]:
    fx = prepare(s.task, s.seed, s.device, log)
    log(f"{name}: measuring {len(s.targets)} targets x {2 + len(variants)} phases")
    points = data_points(fx, s.targets, variants, s.steps, s.lr, s.influence_iterations, log)
    log(f"{name}: ROUGE curve, {s.curve_steps} iterations every {s.curve_every} for "
        + ", ".join(v.label for v in curve_variants))
    curve = rouge_curve(fx, s.targets, curve_variants, s.curve_steps, s.curve_every, s.lr)
    return fx, points, curve


def _write(out: Path, name: str, title: str, points: pd.DataFrame, comps: pd.DataFrame, curve: pd.DataFrame,
           summary: str) -> str:
    folder = Path(out) / name
    write_atomic(folder / "data_points.csv", points.to_csv(index=False).encode())
    write_atomic(folder / "comparisons.csv", comps.to_csv(index=False).encode())
    write_atomic(folder / "curve.csv", curve.to_csv(index=False).encode())
    write_atomic(folder / "tables.txt", tables_text(title, points, comps, curve).encode())
    write_atomic(folder / "figure.png", plot(points, curve, title))
    write_atomic(folder / "summary.txt", (summary + "\n").encode())
    return summary + f"\n\nwrote {folder}/: data_points.csv, comparisons.csv, curve.csv, tables.txt, figure.png, summary.txt"


def _baseline_pairs(variants) -> list[tuple[str, str, str]]:
    """The comparisons both experiments make: fine-tuning itself, and each variant against both baselines."""
    pairs = [("before fine-tuning vs fine-tuned", BEFORE, FINETUNED)]
    pairs += [(f"before fine-tuning vs {v.label}", BEFORE, _phase(v.label)) for v in variants]
    pairs += [(f"{v.label} vs fine-tuned", _phase(v.label), FINETUNED) for v in variants]
    return pairs


def _phase(label: str) -> str:
    return f"unlearned: {label}"


def reproduce_layers(out: Path, log: Log = print, *, task=None, targets: list[int] | None = None,
                     steps: int = PAPER_STEPS, curve_steps: int = PAPER_STEPS, curve_every: int = 10,
                     lr: float | None = None, influence_iterations: int = 5, seed: int = 0, device: str = "cpu",
                     name: str = "dave-layers") -> str:
    """Paper 000 section 4.3: embedding-only, all-layer, last-2-block and embedding+last-2 stored-gradient ascent.
    ``task`` defaults to dave-small (pretrained); writes ``out/name/``."""
    s = _settings(task, targets, steps, curve_steps, curve_every, lr, influence_iterations, seed, device)
    all_layers = LAYER_VARIANTS[1]
    fx, points, curve = _run("dave-layers", s, LAYER_VARIANTS, (all_layers,), log)
    pairs = _baseline_pairs(LAYER_VARIANTS) + [
        ("embedding vs all", _phase("embedding"), _phase("all")),
        ("embedding vs last:2", _phase("embedding"), _phase("last:2"))]
    comps = comparisons(points, pairs)
    title = (f"Paper 000 Tables 1/3/4/5 (layers) on {s.task.name}: {len(s.targets)} targets, stored-gradient "
             f"ascent with all-epoch gradients, {s.steps} iterations")
    summary = summarize_layers(fx, points, comps, curve, s)
    return _write(out, name, title, points, comps, curve, summary)


def summarize_layers(fx: Fixture, points: pd.DataFrame, comps: pd.DataFrame, curve: pd.DataFrame,
                     s: Settings) -> str:
    """Plain statements of where our layer results agree or disagree with the paper's (``templates/layers.txt``)."""
    from tasks.language.reproduce.dave_claims import claims_block, layer_claims
    emb, all_ = _comp(comps, "before fine-tuning vs embedding"), _comp(comps, "before fine-tuning vs all")
    ratio_paper = PAPER["before_minus_after"]["embedding"] / PAPER["before_minus_after"]["all"]
    ratio_ours = emb["mean_difference"] / all_["mean_difference"]
    tuned = phase_mean(points, FINETUNED, "log_perplexity_forget")
    rise = {v.label: math.exp(phase_mean(points, _phase(v.label), "log_perplexity_forget") - tuned)
            for v in LAYER_VARIANTS}
    last = _comp(comps, "embedding vs last:2", "log_perplexity_forget")
    return fill(
        "layers", claims="\n".join(claims_block(layer_claims(comps, curve))),
        common="\n".join(common_lines(fx, points, s.steps, s.lr, s.influence_iterations, LAYER_VARIANTS)),
        ratio_paper=f"{ratio_paper:.2f}", embedding_difference=f"{emb['mean_difference']:.4g}",
        all_difference=f"{all_['mean_difference']:.4g}", ratio_ours=f"{ratio_ours:.3g}",
        comparable_agrees=_agree(0.5 < ratio_ours < 2), ratio_note=_ratio_note(ratio_ours),
        rises=", ".join(f"x{r:.3g} ({label})" for label, r in rise.items()),
        embedding_agrees=_agree(_raises(comps, "embedding")), rise_embedding=f"{rise['embedding']:.3g}",
        p_embedding=_p(comps, "embedding"), weaker_or_stronger="weaker" if rise["embedding"] < rise["all"] else "stronger",
        rise_all=f"{rise['all']:.3g}", rise_last2=f"{rise['last:2']:.3g}", p_last2=_p(comps, "last:2"),
        last2_verdict=("a tiny effect (however consistent), close to the paper's 'no impact'" if rise["last:2"] < 1.05
                       else "a clear effect, unlike the paper"),
        last2_t=f"{last['t_statistic']:.3g}", last2_p=f"{last['p_value']:.2g}",
        rise_embedding_last2=f"{rise['embedding+last:2']:.3g}",
        embedding_last2_agrees=_agree(_raises(comps, "embedding+last:2")), layer_norms=_layer_norms(fx, s.targets),
        rouge="\n".join(rouge_lines(fx, points, curve, "all")), n_targets=len(s.targets))


def reproduce_epochs(out: Path, log: Log = print, *, task=None, targets: list[int] | None = None,
                     steps: int = PAPER_STEPS, curve_steps: int = PAPER_STEPS, curve_every: int = 10,
                     lr: float | None = None, influence_iterations: int = 5, seed: int = 0, device: str = "cpu",
                     name: str = "dave-epochs") -> str:
    """Paper 000 section 5.3: first-epoch vs all-epoch stored gradients (all layers), plus all-epoch embedding.
    ``task`` defaults to dave-small (pretrained); writes ``out/name/``."""
    s = _settings(task, targets, steps, curve_steps, curve_every, lr, influence_iterations, seed, device)
    fx, points, curve = _run("dave-epochs", s, EPOCH_VARIANTS, EPOCH_VARIANTS[:2], log)
    pairs = _baseline_pairs(EPOCH_VARIANTS) + [
        ("first-epoch vs all-epochs", _phase("first-epoch"), _phase("all-epochs")),
        ("first-epoch vs embedding", _phase("first-epoch"), _phase("all-epochs/embedding")),
        ("first-epoch norm-matched vs all-epochs", _phase("first-epoch norm-matched"), _phase("all-epochs"))]
    comps = comparisons(points, pairs)
    title = (f"Paper 000 Tables 1/3/4/5 (epochs) on {s.task.name}: {len(s.targets)} targets, stored-gradient "
             f"ascent, first-epoch vs all-epoch gradients, {s.steps} iterations")
    summary = summarize_epochs(fx, points, comps, curve, s)
    return _write(out, name, title, points, comps, curve, summary)


def summarize_epochs(fx: Fixture, points: pd.DataFrame, comps: pd.DataFrame, curve: pd.DataFrame,
                     s: Settings) -> str:
    """Plain statements of where our first-epoch vs all-epochs results agree or disagree with the paper's
    (``templates/epochs.txt``)."""
    from tasks.language.reproduce.dave_claims import claims_block, epoch_claims
    fe_all, fe_emb = _comp(comps, "first-epoch vs all-epochs"), _comp(comps, "first-epoch vs embedding")
    tuned = phase_mean(points, FINETUNED, "log_perplexity_forget")
    rise = {v.label: math.exp(phase_mean(points, _phase(v.label), "log_perplexity_forget") - tuned)
            for v in EPOCH_VARIANTS}
    return fill(
        "epochs", claims="\n".join(claims_block(epoch_claims(comps, curve))),
        common="\n".join(common_lines(fx, points, s.steps, s.lr, s.influence_iterations, EPOCH_VARIANTS)),
        first_vs_all=f"{fe_all['mean_difference']:+.4g}", first_vs_all_p=f"{fe_all['p_value']:.2g}",
        first_vs_embedding=f"{fe_emb['mean_difference']:+.4g}", first_vs_embedding_p=f"{fe_emb['p_value']:.2g}",
        first_epoch_verdict=_first_epoch_verdict(points, fe_all["mean_difference"]),
        rises=", ".join(f"x{r:.3g} ({label})" for label, r in rise.items()),
        first_epoch_agrees=_agree(rise["first-epoch"] > rise["all-epochs"]),
        norm_ratio=f"{_norm_ratio(fx, s.targets):.3g}", rise_norm_matched=f"{rise['first-epoch norm-matched']:.3g}",
        rise_all_epochs=f"{rise['all-epochs']:.3g}",
        direction_verdict=("the first-epoch DIRECTION is the more effective one, in line with the paper's claim once "
                           "step length is equalised." if rise["first-epoch norm-matched"] > rise["all-epochs"]
                           else "even at equal step length the first-epoch direction unlearns less here."),
        curve_steps=s.curve_steps, curve_first_epoch=_describe_curve(curve, "first-epoch"),
        curve_all_epochs=_describe_curve(curve, "all-epochs"),
        rouge="\n".join(rouge_lines(fx, points, curve, "all-epochs")), n_targets=len(s.targets))


def _ratio_note(ratio: float) -> str:
    """Finish the embedding-vs-all sentence: comparable, one further than the other, or opposite signs."""
    if 0.5 < ratio < 2:
        return "."
    if ratio <= 0:
        return "; they end on opposite sides of the before-fine-tuning influence."
    return f"; at the same step size all layers end {1 / ratio:.3g}x as far from the before-fine-tuning influence."


def _raises(comps: pd.DataFrame, label: str) -> bool:
    """Did this variant raise the forget perplexity over the fine-tuned model, significantly (paired, 5%)?"""
    row = _comp(comps, f"{label} vs fine-tuned", "log_perplexity_forget")
    return bool(row["mean_difference"] > 0 and row["p_value"] < 0.05)


def _p(comps: pd.DataFrame, label: str) -> str:
    row = _comp(comps, f"{label} vs fine-tuned", "log_perplexity_forget")
    return f"paired t-test vs fine-tuned on log forget perplexity p {row['p_value']:.2g}"


def _layer_norms(fx: Fixture, targets: list[int]) -> str:
    """Median over targets of the all-epoch gradient norm restricted to each layer variant."""
    groups = fx.task.layer_groups(fx.finetuned)
    parts = []
    for variant in LAYER_VARIANTS:
        names = select_layers(groups, variant.layers)
        norms = [_norm(fx.recorder.sums["all-epochs"][t], names) for t in targets]
        parts.append(f"{variant.label} {np.median(norms):.3g}")
    return "median |g|: " + ", ".join(parts)


def _first_epoch_verdict(points: pd.DataFrame, difference: float) -> str:
    """The sign of first-epoch minus all-epochs only means 'closer to before' if neither stalls nor overshoots."""
    before = phase_mean(points, BEFORE, "influence")
    gap = {label: abs(phase_mean(points, _phase(label), "influence") - before) for label in ("first-epoch", "all-epochs")}
    moved = returned_fraction(points, _phase("first-epoch"))
    closer = gap["first-epoch"] < gap["all-epochs"]
    text = f"Sign {_agree(difference > 0)} with the paper's; first-epoch ends {'closer to' if closer else 'further from'} "
    text += f"the before-fine-tuning influence than all-epochs ({_agree(closer)})"
    if moved < 0.05:
        text += (f", but only because it barely moved from the fine-tuned value (fraction undone {moved:.2g}), "
                 "not because it unlearned more")
    return text + "."


def _norm_ratio(fx: Fixture, targets: list[int]) -> float:
    """Median over targets of |all-epochs gradient| / |first-epoch gradient|, all parameters."""
    sums = fx.recorder.sums
    ratios = [_norm(sums["all-epochs"][t], list(sums["all-epochs"][t])) /
              _norm(sums["first-epoch"][t], list(sums["first-epoch"][t])) for t in targets]
    return float(np.median(ratios))


def _scratch_task():
    from bench.registry import TASKS
    return TASKS.get("dave-tiny")()


def reproduce_layers_scratch(out: Path, log: Log = print, **kwargs) -> str:
    """``dave-layers`` on dave-tiny trained from scratch (no pretraining): the setting before issue 18."""
    return reproduce_layers(out, log, task=kwargs.pop("task", None) or _scratch_task(), name="dave-layers-scratch",
                            **kwargs)


def reproduce_epochs_scratch(out: Path, log: Log = print, **kwargs) -> str:
    """``dave-epochs`` on dave-tiny trained from scratch (no pretraining)."""
    return reproduce_epochs(out, log, task=kwargs.pop("task", None) or _scratch_task(), name="dave-epochs-scratch",
                            **kwargs)


reproduce = reproduce_layers
