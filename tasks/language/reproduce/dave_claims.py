"""Paper 000's claims, one verdict each: does our reproduction agree, and with what paired statistics?

The summaries of ``dave-layers`` and ``dave-epochs`` open with this block so a reader sees at once which of the
paper's findings hold on our model (embedding vs all layers vs last blocks; first-epoch vs all-epochs; the
direction influence moves in; ROUGE decline) before the detailed comparison below it. A claim "agrees" only when
the direction matches AND the paired test over targets is significant at 5% (or, for "no impact" claims, the
effect is negligible); everything else is reported as DISAGREES, with the numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.stats import paired_comparison

BEFORE, FINETUNED = "before fine-tuning", "fine-tuned"
ALPHA = 0.05


@dataclass(frozen=True)
class Claim:
    claim: str
    paper: str
    ours: str
    agrees: bool

    def line(self) -> str:
        return f"- {self.claim} [{'agrees' if self.agrees else 'DISAGREES'}]\n    paper: {self.paper}\n    ours:  {self.ours}"


def _row(comps: pd.DataFrame, label: str, metric: str) -> pd.Series:
    return comps[(comps["comparison"] == label) & (comps["metric"] == metric)].iloc[0]


def stat(row) -> str:
    """A paired test in one phrase."""
    return (f"mean diff {row['mean_difference']:+.3g} (95% CI {row['ci_low']:+.3g} to {row['ci_high']:+.3g}), "
            f"t {row['t_statistic']:.3g}, p {row['p_value']:.2g}, d {row['cohens_d']:.3g}, n {int(row['n'])}")


def _significant(row, sign: float) -> bool:
    diff, p = row["mean_difference"], row["p_value"]
    return bool(np.isfinite(diff) and diff * sign > 0 and np.isfinite(p) and p < ALPHA)


def unlearns(comps: pd.DataFrame, label: str, paper: str) -> Claim:
    """A variant raises the forget sentence's perplexity over the fine-tuned model."""
    row = _row(comps, f"{label} vs fine-tuned", "log_perplexity_forget")
    return Claim(f"'{label}' stored-gradient ascent unlearns the target (log forget perplexity up vs fine-tuned)",
                 paper, f"x{math.exp(row['mean_difference']):.3g} forget perplexity; {stat(row)}",
                 _significant(row, +1))


def comparable(comps: pd.DataFrame, a: str, b: str, paper: str) -> Claim:
    """Two variants unlearn about equally: within a factor 2 of each other both in the rise of log forget perplexity
    (Table 4's measure) and in how far they move influence from its before-fine-tuning value (Table 1's)."""
    rise_a = _row(comps, f"{a} vs fine-tuned", "log_perplexity_forget")["mean_difference"]
    rise_b = _row(comps, f"{b} vs fine-tuned", "log_perplexity_forget")["mean_difference"]
    ratio = rise_a / rise_b if rise_b else math.inf
    gap_a = _row(comps, f"before fine-tuning vs {a}", "influence")["mean_difference"]
    gap_b = _row(comps, f"before fine-tuning vs {b}", "influence")["mean_difference"]
    gap_ratio = gap_a / gap_b if gap_b else math.inf
    row = _row(comps, f"{a} vs {b}", "log_perplexity_forget")
    return Claim(f"'{a}' unlearns about as much as '{b}' (within a factor 2 on log forget perplexity rise AND on "
                 "influence before - after)", paper,
                 f"perplexity-rise ratio {ratio:.3g} (x{math.exp(rise_a):.3g} vs x{math.exp(rise_b):.3g}; {a} - {b}: "
                 f"{stat(row)}); influence before - after {gap_a:.4g} vs {gap_b:.4g} (ratio {gap_ratio:.3g}, "
                 "paper 1.10)", bool(0.5 <= ratio <= 2 and 0.5 <= gap_ratio <= 2))


def no_impact(comps: pd.DataFrame, label: str, paper: str) -> Claim:
    """A variant changes neither forget perplexity (<5%) nor forget ROUGE-1 (<0.05) on average."""
    ppl = _row(comps, f"{label} vs fine-tuned", "log_perplexity_forget")
    rouge = _row(comps, f"{label} vs fine-tuned", "rouge1")
    factor = math.exp(ppl["mean_difference"])
    return Claim(f"'{label}' alone has no impact (forget perplexity within 5%, ROUGE-1 within 0.05)", paper,
                 f"x{factor:.3g} forget perplexity ({stat(ppl)}); ROUGE-1 {rouge['mean_difference']:+.3g}",
                 bool(factor < 1.05 and abs(rouge["mean_difference"]) < 0.05))


def more_than(comps: pd.DataFrame, a: str, b: str, claim: str, paper: str) -> Claim:
    row = _row(comps, f"{a} vs {b}", "log_perplexity_forget")
    return Claim(claim, paper, f"{a} - {b} log forget perplexity: {stat(row)}", _significant(row, +1))


def influence_claims(comps: pd.DataFrame, label: str) -> list[Claim]:
    """Fine-tuning makes self-influence more negative; unlearning moves it back towards its before value."""
    out = []
    for metric, name in (("influence", "our LiSSA"), ("influence_paper", "the paper's eqs. 3-4")):
        tune = _row(comps, "before fine-tuning vs fine-tuned", metric)
        out.append(Claim(f"fine-tuning makes self-influence more negative ({name})", "-541.45 -> -1904.87; "
                         "before - fine-tuned +1363.42, t 18.91, p 8.8e-14",
                         f"before - fine-tuned: {stat(tune)}", _significant(tune, +1)))
        back = _row(comps, f"{label} vs fine-tuned", metric)
        towards = math.copysign(1.0, tune["mean_difference"]) if tune["mean_difference"] else 0.0
        fraction = back["mean_difference"] / tune["mean_difference"] if tune["mean_difference"] else math.nan
        out.append(Claim(f"unlearning ('{label}') moves self-influence back towards its before-fine-tuning value "
                         f"({name})", "-1904.87 -> -1009.26 (all layers): 0.66 of the fine-tuning shift undone",
                         f"{label} - fine-tuned: {stat(back)}; fraction of the shift undone {fraction:.3g}",
                         bool(towards and _significant(back, towards))))
    return out


def rouge_decline(curve: pd.DataFrame, label: str) -> Claim:
    """Forget-sentence ROUGE-1 falls between iteration 0 and the last iteration (paired over targets)."""
    runs = curve[curve["variant"] == label]
    first = runs[runs["iteration"] == runs["iteration"].min()].set_index("target")["rouge1"]
    last = runs[runs["iteration"] == runs["iteration"].max()].set_index("target")["rouge1"]
    first, last = first.align(last, join="inner")
    row = paired_comparison(first.to_numpy(), last.to_numpy())
    return Claim(f"forget ROUGE-1 declines over {int(runs['iteration'].max())} iterations of '{label}'",
                 "0.6056 -> 0.1664 over 200 iterations (x0.27)",
                 f"{row['mean_a']:.3g} -> {row['mean_b']:.3g} (x{row['mean_b'] / row['mean_a']:.2f}); start - end: "
                 f"{stat(row)}" if row["mean_a"] else f"{row['mean_a']:.3g} -> {row['mean_b']:.3g}",
                 _significant(row, +1))


def layer_claims(comps: pd.DataFrame, curve: pd.DataFrame) -> list[Claim]:
    return [
        unlearns(comps, "embedding", "'Using only layer 0 was sufficient to remove data points'"),
        comparable(comps, "embedding", "all", "Table 4: perplexity 1.12 vs 1.16; influence before - after 467.81 "
                   "vs 423.99"),
        no_impact(comps, "last:2", "layers 11-12 alone 'had absolutely no impact'"),
        unlearns(comps, "embedding+last:2", "'Including layer 0 ... along with layers 11 and 12 allowed the model to "
                 "modify data'"),
        *influence_claims(comps, "all"),
        rouge_decline(curve, "all"),
    ]


def epoch_claims(comps: pd.DataFrame, curve: pd.DataFrame) -> list[Claim]:
    return [
        more_than(comps, "first-epoch", "all-epochs", "first-epoch stored gradients unlearn MORE than all-epoch ones "
                  "(same lr and iterations)", "Table 4: perplexity 1.45 vs 1.16; first-epoch - model influence "
                  "+27.12, t 8.66"),
        more_than(comps, "first-epoch norm-matched", "all-epochs", "...and still more once the step length is "
                  "equalised (norm-matched; our diagnostic, not a paper table)", "(not tested)"),
        *influence_claims(comps, "all-epochs"),
        rouge_decline(curve, "first-epoch"),
        rouge_decline(curve, "all-epochs"),
    ]


def claims_block(claims: list[Claim]) -> list[str]:
    agreed = sum(c.agrees for c in claims)
    return [f"Claims ({agreed} of {len(claims)} agree; 'agrees' = same direction and paired p < {ALPHA}, or a "
            "negligible effect where the paper claims none):", *(c.line() for c in claims), ""]
