"""Forgetting-quality metrics: KLoM and the NeurIPS 2023 challenge epsilon / scores."""

from bench.metrics.epsilon import confidence_statistic, epsilons, final_score, forget_score
from bench.metrics.klom import klom, klom_summary

__all__ = [
    "confidence_statistic",
    "epsilons",
    "final_score",
    "forget_score",
    "klom",
    "klom_summary",
]
