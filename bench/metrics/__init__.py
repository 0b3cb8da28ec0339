"""Forgetting-quality metrics: KLoM and the NeurIPS 2023 challenge epsilon / scores.

``SCORER_VERSION`` enters every result record: records scored by different versions of these
definitions are never compared in one leaderboard table. History: 1, the first scorer; 2, the
challenge epsilon made conformant with the official scorer (right-threshold count, equal-range
rule, undecided examples at the cap) and KLoM's EasyDUB convention added.
"""

from bench.metrics.epsilon import (
    ChallengeForget,
    EpsilonScores,
    challenge_forget,
    confidence_statistic,
    epsilons,
    final_score,
    forget_score,
    score_epsilons,
)
from bench.metrics.klom import CONVENTIONS, klom, klom_summary

SCORER_VERSION = 2

__all__ = [
    "CONVENTIONS",
    "SCORER_VERSION",
    "ChallengeForget",
    "EpsilonScores",
    "challenge_forget",
    "confidence_statistic",
    "epsilons",
    "final_score",
    "forget_score",
    "klom",
    "klom_summary",
    "score_epsilons",
]
