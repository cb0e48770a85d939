"""docs/conditions.md has a row for every reason the operator can write: each string constant of
plan/conditions.py (LLMDeployment and LLMEngine conditions) and each reason of autoscale/policy.py
(the Autoscaling condition). A new reason without a row, and a row without a reason, fail here."""

from __future__ import annotations

import re
from types import ModuleType

import pytest

from tests.factories import ROOT
from trtllm_operator.autoscale import policy
from trtllm_operator.plan import conditions

DOC = ROOT / "docs" / "conditions.md"
# policy.py's metric names: upper-case string constants that are not reasons
POLICY_NOT_REASONS = {
    policy.QUEUE_COMPUTE_RATIO,
    policy.WAITING_REQUESTS,
    policy.KV_CACHE_UTILIZATION,
    policy.KV_CACHE_DEMAND,
    policy.LOAD_DEMAND,
    policy.SERVED_WORK,
}


def constants(module: ModuleType) -> set[str]:
    """The values of a module's UPPER_CASE string constants."""
    return {
        value
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, str) and not name.startswith("_")
    }


def reason_rows(section: str) -> set[str]:
    """The reasons (first cell, in backticks) of the table under a `## ` heading of the doc."""
    text = DOC.read_text()
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no section {section!r} in {DOC}"
    return set(re.findall(r"^\| `([A-Za-z]+)` \|", match.group(1), re.M))


def policy_reasons() -> set[str]:
    """The autoscaler's decision reasons (its other constants: metrics, directions)."""
    return constants(policy) - POLICY_NOT_REASONS - {policy.UP, policy.DOWN, policy.HOLD}


@pytest.mark.parametrize("reason", sorted(constants(conditions)))
def test_every_condition_reason_has_a_row(reason: str) -> None:
    assert reason in reason_rows("Reasons"), f"{reason}: add a row to {DOC}"


@pytest.mark.parametrize("reason", sorted(policy_reasons()))
def test_every_autoscaler_reason_has_a_row(reason: str) -> None:
    assert reason in reason_rows("Autoscaler reasons"), f"{reason}: add a row to {DOC}"


def test_no_row_names_a_reason_the_operator_does_not_have() -> None:
    assert reason_rows("Reasons") == constants(conditions)
    assert reason_rows("Autoscaler reasons") == policy_reasons()
