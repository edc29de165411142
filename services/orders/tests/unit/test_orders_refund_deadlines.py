"""Refund deadlines (issue 17): the rule and the timer's handler through a fake unit of work."""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_orders_handlers import BUYER_V, NOW, paid_order, types, uow  # noqa: F401 (fixture)

from orders import domain
from orders.handlers import refund_deadlines, refunds
from orders.payments import SandboxProvider
from shared.contracts.orders import RefundIn, Viewer

pytestmark = pytest.mark.unit


def test_the_supplier_decides_within_48_hours_by_default():
    rules = domain.OrderRules()
    assert domain.refund_decide_by(NOW, rules) == NOW + timedelta(hours=48)
    assert domain.refund_decide_by(NOW, domain.OrderRules(refund_decision_hours=2)) == NOW + (
        timedelta(hours=2)
    )
    assert not domain.refund_overdue(NOW + timedelta(seconds=1), NOW)
    assert domain.refund_overdue(NOW, NOW) and not domain.refund_overdue(None, NOW)


def test_the_timeout_action_defaults_to_approve_and_a_typo_escalates():
    assert domain.refund_timeout_action(domain.OrderRules()) == "approve"
    assert domain.refund_timeout_action(domain.OrderRules(refund_timeout_action="Escalate")) == (
        "escalate"
    )
    assert domain.refund_timeout_action(domain.OrderRules(refund_timeout_action="aprove")) == (
        "escalate"
    )


def _asked(uow, amount_fen=3980):  # noqa: F811
    order = paid_order(uow)
    asked = refunds.request_refund(
        uow, order.id, BUYER_V, RefundIn(amount_fen=amount_fen, reason="broken"), NOW
    )
    return order, asked


def test_past_its_deadline_an_undecided_refund_is_approved_once(uow):  # noqa: F811
    order, asked = _asked(uow)
    due = NOW + timedelta(hours=48)
    assert refund_deadlines.overdue(uow.session, due - timedelta(seconds=1)) == []
    assert refund_deadlines.overdue(uow.session, due) == [asked["id"]]
    done = refund_deadlines.on_deadline(
        uow, SandboxProvider("s"), domain.OrderRules(), asked["id"], due
    )
    assert done is not None and done.answer["status"] == "approved"
    assert order.status == "refunded"
    assert types(uow)[-2:] == ["order_refunded", "refund_decided"]
    assert uow.events[-1][1]["decided_by"] == refund_deadlines.TIMER
    again = refund_deadlines.on_deadline(
        uow, SandboxProvider("s"), domain.OrderRules(), asked["id"], due
    )
    assert again is None and refund_deadlines.overdue(uow.session, due) == []


def test_with_escalate_the_refund_waits_in_the_platforms_queue(uow):  # noqa: F811
    order, asked = _asked(uow, amount_fen=100)
    due = NOW + timedelta(hours=49)
    rules = domain.OrderRules(refund_timeout_action="escalate")
    done = refund_deadlines.on_deadline(uow, SandboxProvider("s"), rules, asked["id"], due)
    assert done is not None
    assert done.answer["status"] == "requested" and done.answer["escalated"] is True
    # the parties are told it escalated; no money moved, no decision emitted
    assert types(uow)[-2:] == ["refund_requested", "refund_escalated"]
    assert uow.events[-1][1]["refund_id"] == asked["id"]
    assert refund_deadlines.overdue(uow.session, due) == []  # escalated once
    decided = refunds.decide_refund(
        uow, SandboxProvider("s"), asked["id"], Viewer(role="admin", id="admin"), True, due
    )
    assert decided.answer["status"] == "approved"


def test_a_refund_the_supplier_decided_is_left_alone(uow):  # noqa: F811
    _, asked = _asked(uow, amount_fen=100)
    refunds.decide_refund(
        uow, SandboxProvider("s"), asked["id"], Viewer(role="supplier", id="7"), False, NOW
    )
    due = NOW + timedelta(days=3)
    assert refund_deadlines.overdue(uow.session, due) == []
    assert (
        refund_deadlines.on_deadline(
            uow, SandboxProvider("s"), domain.OrderRules(), asked["id"], due
        )
        is None
    )
