"""`bench perf` smoke test: the epsilon measurement runs at quick size and reports exact fast/slow agreement."""
import re

import pytest

from bench.errors import BenchError
from bench.perf import run_perf


def test_quick_epsilon_report_and_unknown_name():
    report = run_perf(quick=True, only=["epsilon"], log=lambda m: None)
    assert "[epsilon]" in report
    assert "match: yes" in report
    with pytest.raises(BenchError, match="epsilon"):
        run_perf(quick=True, only=["epsilom"], log=lambda m: None)


def test_help_lists_every_measurement_by_the_name_only_takes(capsys):
    from bench.cli import PERF_MEASUREMENTS, main
    from bench.perf import MEASUREMENTS
    assert PERF_MEASUREMENTS == tuple(MEASUREMENTS)
    assert main(["perf", "--help"]) == 0
    shown = re.sub(r"-\s+", "-", capsys.readouterr().out)  # argparse wraps lines after hyphens
    assert all(name in shown for name in MEASUREMENTS)
