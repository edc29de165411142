"""Entrypoints of the payouts service: each one validates, opens a unit of work, applies a rule.

Inputs arrive as events (orders: order_paid / order_received / order_completed /
order_refunded; shop: level_changed) through the idempotent inbox; the ledger (``ledger.py``)
turns them into journal entries. Settlement runs on a timer and on demand; payout runs on demand.
"""

from __future__ import annotations

import logging

from nameko.extensions import DependencyProvider
from nameko.rpc import rpc
from nameko.timer import timer
from pydantic import ValidationError

from payouts import ledger
from payouts.domain import Rules
from payouts.models import Base, Settlement
from payouts.provider import SandboxPayoutProvider
from shared import clock
from shared.config import rules as config_rules
from shared.config import test_mode
from shared.contracts.events import LevelChanged, OrderPaid, OrderRefunded, OrderStateChanged
from shared.contracts.payouts import MonthIn, PayoutRunIn, SandboxConfigIn, SettlementRunIn
from shared.db import Database, make_engine
from shared.errors import Forbidden, ValidationFailed
from shared.events import event_handler
from shared.platform import PlatformRpc

log = logging.getLogger(__name__)


class PayoutProviderDependency(DependencyProvider):
    """The payout provider adapter of this container (the sandbox one, configured from
    ``PAYOUTS_SANDBOX_FAIL`` / ``PAYOUTS_SANDBOX_TIMEOUT`` / ``PAYOUTS_SANDBOX_FAIL_TIMES``)."""

    def setup(self):
        config = self.container.config
        self.engine = make_engine(config["DATABASE_URL"])
        self.provider = SandboxPayoutProvider(
            self.engine,
            fail=config.get("PAYOUTS_SANDBOX_FAIL") or None,
            timeout=config.get("PAYOUTS_SANDBOX_TIMEOUT") or None,
            fail_times=int(config.get("PAYOUTS_SANDBOX_FAIL_TIMES") or 0),
        )

    def stop(self):
        self.engine.dispose()

    def get_dependency(self, worker_ctx):
        return self.provider


def _validate(model, data) -> dict:
    try:
        return model.model_validate(data or {}).model_dump()
    except ValidationError as exc:
        raise ValidationFailed(
            "invalid payload",
            details=[
                {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors(include_url=False, include_input=False)
            ],
        )


class PayoutsService(PlatformRpc):
    name = "payouts"
    db = Database(Base.metadata)
    provider = PayoutProviderDependency()

    @property
    def rules(self) -> Rules:
        return Rules.from_config(config_rules(self.config))

    # --- inputs: events ---------------------------------------------------------------------
    @event_handler("orders", "order_paid")
    def on_order_paid(self, event):
        data = OrderPaid.model_validate(event["data"]).model_dump()
        with self.db.unit_of_work() as uow:
            if uow.claim(event, "on_order_paid"):
                ledger.record_paid(uow.session, data, self.rules)

    @event_handler("orders", "order_refunded")
    def on_order_refunded(self, event):
        data = OrderRefunded.model_validate(event["data"]).model_dump()
        with self.db.unit_of_work() as uow:
            if uow.claim(event, "on_order_refunded"):
                ledger.record_refund(uow.session, data)

    @event_handler("orders", "order_received")
    def on_order_received(self, event):
        data = OrderStateChanged.model_validate(event["data"]).model_dump()
        with self.db.unit_of_work() as uow:
            if uow.claim(event, "on_order_received"):
                ledger.record_state(uow.session, data, "received")

    @event_handler("orders", "order_completed")
    def on_order_completed(self, event):
        data = OrderStateChanged.model_validate(event["data"]).model_dump()
        with self.db.unit_of_work() as uow:
            if uow.claim(event, "on_order_completed"):
                ledger.record_state(uow.session, data, "completed")

    @event_handler("shop", "level_changed")
    def on_level_changed(self, event):
        data = LevelChanged.model_validate(event["data"]).model_dump()
        with self.db.unit_of_work() as uow:
            if uow.claim(event, "on_level_changed"):
                ledger.record_level(
                    uow.session,
                    data["shop_id"],
                    data["new_level"],
                    data.get("bonus_bps"),
                    data["month"],
                    event.get("occurred_at") or clock.now(),
                    self.rules,
                )

    # --- settlement -------------------------------------------------------------------------
    @timer(interval=60)
    def settle_on_schedule(self):
        """Every minute, settle when the last run is older than ``settlement_interval_seconds``."""
        with self.db.read() as s:
            last = s.query(Settlement.run_at).order_by(Settlement.id.desc()).limit(1).scalar()
        if (
            last is not None
            and (clock.now() - clock.as_utc(last)).total_seconds()
            < self.rules.settlement_interval_seconds
        ):
            return
        with self.db.unit_of_work() as uow:
            result = ledger.run_settlement(uow.session, clock.now(), self.rules, list_orders=False)
        if result["count"]:
            self.db.provider.notify_outbox()
            log.info(
                "scheduled settlement %s settled %d orders (%d fen)",
                result["settlement_id"],
                result["count"],
                result["total_fen"],
            )

    @rpc
    def run_settlement(self, data=None):
        body = _validate(SettlementRunIn, data)
        as_of = clock.parse(body["as_of"]) if body.get("as_of") else clock.now()
        with self.db.unit_of_work() as uow:
            result = ledger.run_settlement(uow.session, as_of, self.rules)
        self.db.provider.notify_outbox()
        return result

    # --- payout runs ------------------------------------------------------------------------
    @rpc
    def run_payouts(self, data=None):
        body = _validate(PayoutRunIn, data)
        with self.db.unit_of_work() as uow:  # 1: every payout row, pending, before any transfer
            opened = ledger.open_payout_run(uow.session, self.rules, suppliers=body["suppliers"])
        results = ledger.transfer_all(
            self.provider, opened["payouts"], self.rules.payout_attempts_per_run
        )
        with self.db.unit_of_work() as uow:  # 2: mark what moved, post it to the journal
            return ledger.finish_payout_run(uow.session, opened["run_id"], results, uow.emit)

    # --- statements -------------------------------------------------------------------------
    @rpc
    def earnings(self, shop_id):
        with self.db.read() as s:
            return ledger.earnings(s, int(shop_id), self.rules)

    @rpc
    def statement(self, shop_id, month):
        month = _validate(MonthIn, {"month": month})["month"]
        with self.db.read() as s:
            return ledger.statement_csv(s, int(shop_id), month)

    @rpc
    def settled_sales(self, month):
        month = _validate(MonthIn, {"month": month})["month"]
        with self.db.read() as s:
            return ledger.settled_sales(s, month)

    @rpc
    def check_books(self):
        with self.db.read() as s:
            return ledger.check_books(s)

    # --- test mode: the sandbox provider -----------------------------------------------------
    @rpc
    def configure_sandbox(self, data=None):
        if not test_mode(self.config):
            raise Forbidden("the sandbox provider can only be reconfigured in test mode")
        body = _validate(SandboxConfigIn, data)
        return self.provider.configure(body["fail"], body["timeout"], body["fail_times"])
