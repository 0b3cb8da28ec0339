"""The leaderboard report: every result record in a folder -> one self-contained HTML page."""
from __future__ import annotations

from bench.report.build import build_report

__all__ = ["build_report"]
