"""Every registered method passes every rule of the method contract, one pytest case per (method, rule)."""
import pytest

from bench.contract import method_checks
from bench.registry import METHODS

CHECKS = [check for name in METHODS.names() for check in method_checks(METHODS.get(name))]


@pytest.mark.parametrize("check", CHECKS, ids=str)
def test_registered_method_honours_contract(check):
    check()
