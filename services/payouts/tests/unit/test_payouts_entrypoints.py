"""The payouts entrypoints with their dependencies replaced (nameko's worker_factory)."""

import uuid
from unittest import mock

import pytest
from nameko.testing.services import worker_factory

from payouts.service import PayoutsService
from shared.errors import Forbidden, ValidationFailed


def paid_envelope():
    return {
        "id": str(uuid.uuid4()),
        "type": "order_paid",
        "data": {
            "order_id": 1,
            "buyer_id": 2,
            "supplier_id": 3,
            "shop_id": 4,
            "share_id": None,
            "self_referral": False,
            "paid_fen": 100,
            "lines": [],
            "paid_at": "2026-10-01T00:00:00Z",
        },
    }


def test_an_already_claimed_event_changes_nothing():
    service = worker_factory(PayoutsService, config={"RULES": {}})
    uow = service.db.unit_of_work.return_value.__enter__.return_value
    uow.claim_all.return_value = []  # every event of the batch was claimed before
    with mock.patch("payouts.service.handlers.paid.order_paid") as record:
        service.on_order_paid([paid_envelope()])
    uow.claim_all.assert_called_once()
    record.assert_not_called()


def test_a_new_event_is_claimed_and_recorded_in_the_same_unit_of_work():
    service = worker_factory(PayoutsService, config={"RULES": {}})
    uow = service.db.unit_of_work.return_value.__enter__.return_value
    uow.claim_all.side_effect = lambda events, name: events
    with mock.patch("payouts.service.handlers.paid.order_paid") as record:
        service.on_order_paid([paid_envelope()])
    # accrued and screened by the fraud rules (issue 13) in the claim's unit of work
    assert record.call_args.args[0] is uow
    assert record.call_args.args[2].order_id == 1


def test_a_malformed_order_paid_event_is_refused_before_touching_the_database():
    service = worker_factory(PayoutsService, config={"RULES": {}})
    with pytest.raises(ValidationFailed):
        service.on_order_paid([{"id": "x", "type": "order_paid", "data": {"order_id": "nope"}}])
    service.db.unit_of_work.assert_not_called()


def test_settlement_run_refuses_a_malformed_as_of():
    service = worker_factory(PayoutsService, config={"RULES": {}})
    with pytest.raises(ValidationFailed):
        service.run_settlement({"as_of": "yesterday"})


def test_settled_sales_refuses_a_malformed_month():
    service = worker_factory(PayoutsService, config={"RULES": {}})
    with pytest.raises(ValidationFailed):
        service.settled_sales("2026-13")


def test_sandbox_provider_cannot_be_reconfigured_outside_test_mode():
    service = worker_factory(PayoutsService, config={"XIAOPU_TEST_MODE": 0, "RULES": {}})
    with pytest.raises(Forbidden):
        service.configure_sandbox({"fail": "*"})
