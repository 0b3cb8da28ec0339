"""`bench perf` smoke test: the epsilon measurement runs at quick size and reports exact fast/slow agreement."""
import pytest

from bench.errors import BenchError
from bench.perf import run_perf


def test_quick_epsilon_report_and_unknown_name():
    report = run_perf(quick=True, only=["epsilon"], log=lambda m: None)
    assert "[epsilon]" in report
    assert "match: yes" in report
    with pytest.raises(BenchError, match="epsilon"):
        run_perf(quick=True, only=["epsilom"], log=lambda m: None)
