"""Entrypoints of the payouts service: each one validates with the contract model, opens a
unit of work (or a read session) and calls one handler (``payouts.handlers``) or query
(``payouts.queries``).

Inputs arrive as events (orders: order_paid / order_received / order_completed /
order_refunded; shop: level_changed) through the idempotent inbox. Settlement runs on a timer
and on demand; payout runs on demand. See ``services/payouts/README.md``.
"""

from __future__ import annotations

import logging

from nameko.extensions import DependencyProvider
from nameko.rpc import rpc
from nameko.timer import timer

from payouts import handlers, queries
from payouts.domain import PayoutRules
from payouts.models import Base
from payouts.provider import SandboxPayoutProvider
from shared import clock
from shared.config import test_mode
from shared.contracts.events import (
    LevelChanged,
    OrderPaid,
    OrderRefunded,
    OrderStateChanged,
    RefundDecided,
    RefundRequested,
)
from shared.contracts.payouts import MonthIn, PayoutRunIn, SandboxConfigIn, SettlementRunIn
from shared.db import Database, make_engine
from shared.errors import Forbidden
from shared.events import event_handler
from shared.platform import PlatformRpc
from shared.validation import an_id, validated

log = logging.getLogger(__name__)


class PayoutProviderDependency(DependencyProvider):
    """The payout provider adapter of this container: the sandbox one, configured from
    ``PAYOUTS_SANDBOX_FAIL`` / ``PAYOUTS_SANDBOX_TIMEOUT`` / ``PAYOUTS_SANDBOX_FAIL_TIMES``.

    It has its own engine on purpose: the sandbox stands in for a remote payment system, so
    it books each transfer in its own committed transaction, outside the payout run's units
    of work (a transfer that went through must stay booked when the run's second transaction
    fails), from the run's transfer threads. A real provider is an HTTP client and needs none.
    """

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


class PayoutsService(PlatformRpc):
    name = "payouts"
    db = Database(Base.metadata)
    provider = PayoutProviderDependency()

    @property
    def rules(self) -> PayoutRules:
        return PayoutRules.from_config(self.config)

    # --- inputs: events ---------------------------------------------------------------------
    @event_handler("orders", "order_paid")
    def on_order_paid(self, event):
        data = validated(OrderPaid, event["data"])
        with self.db.unit_of_work() as uow:
            if uow.claim(event, "on_order_paid"):
                handlers.accrual.order_paid(uow, self.rules, data)

    @event_handler("orders", "order_refunded")
    def on_order_refunded(self, event):
        data = validated(OrderRefunded, event["data"])
        with self.db.unit_of_work() as uow:
            if uow.claim(event, "on_order_refunded"):
                handlers.accrual.order_refunded(uow, self.rules, data)

    @event_handler("orders", "refund_requested")
    def on_refund_requested(self, event):
        data = validated(RefundRequested, event["data"])
        with self.db.unit_of_work() as uow:
            if uow.claim(event, "on_refund_requested"):
                handlers.refunds.refund_requested(uow, data)

    @event_handler("orders", "refund_decided")
    def on_refund_decided(self, event):
        data = validated(RefundDecided, event["data"])
        with self.db.unit_of_work() as uow:
            if uow.claim(event, "on_refund_decided"):
                handlers.refunds.refund_decided(uow, data)

    @event_handler("shop", "level_changed")
    def on_level_changed(self, event):
        data = validated(LevelChanged, event["data"])
        effective_at = event.get("occurred_at") or clock.now()
        with self.db.unit_of_work() as uow:
            if uow.claim(event, "on_level_changed"):
                handlers.accrual.level_changed(uow, self.rules, data, effective_at)

    @event_handler("orders", "order_received")
    def on_order_received(self, event):
        data = validated(OrderStateChanged, event["data"])
        with self.db.unit_of_work() as uow:
            if uow.claim(event, "on_order_received"):
                handlers.settlement.order_received(uow, data)

    @event_handler("orders", "order_completed")
    def on_order_completed(self, event):
        data = validated(OrderStateChanged, event["data"])
        with self.db.unit_of_work() as uow:
            if uow.claim(event, "on_order_completed"):
                handlers.settlement.order_completed(uow, data)

    # --- settlement -------------------------------------------------------------------------
    @timer(interval=60)
    def settle_on_schedule(self):
        """Every minute: settle when the last run is ``settlement_interval_seconds`` old."""
        with self.db.unit_of_work() as uow:
            result = handlers.settlement.run_if_due(uow, self.rules, clock.now())
        if result and result["count"]:
            self.db.provider.notify_outbox()  # the run wrote its events set-based, not via emit
            log.info(
                "scheduled settlement %s settled %d orders (%d fen)",
                result["settlement_id"],
                result["count"],
                result["total_fen"],
            )

    @rpc
    def run_settlement(self, data=None):
        body = validated(SettlementRunIn, data)
        as_of = clock.parse(body.as_of) if body.as_of else clock.now()
        with self.db.unit_of_work() as uow:
            result = handlers.settlement.run(uow, self.rules, as_of)
        self.db.provider.notify_outbox()  # the run wrote its events set-based, not via emit
        return result

    # --- payout runs ------------------------------------------------------------------------
    @rpc
    def run_payouts(self, data=None):
        body = validated(PayoutRunIn, data)
        rules = self.rules
        with self.db.unit_of_work() as uow:  # 1: every payout row, pending, before any transfer
            opened = handlers.payout_runs.open_run(uow, rules, suppliers=body.suppliers)
        results = handlers.payout_runs.transfer_all(
            self.provider, opened["payouts"], rules.payout_attempts_per_run
        )
        with self.db.unit_of_work() as uow:  # 2: mark what moved, post it to the journal
            return handlers.payout_runs.finish_run(uow, opened["run_id"], results)

    # --- reads ------------------------------------------------------------------------------
    @rpc
    def earnings(self, shop_id):
        shop = an_id(shop_id, "shop")
        with self.db.read() as s:
            return queries.earnings(s, shop)

    @rpc
    def statement(self, shop_id, month):
        shop = an_id(shop_id, "shop")
        month = validated(MonthIn, {"month": month}).month
        with self.db.read() as s:
            return queries.statement_csv(s, shop, month)

    @rpc
    def supplier_balance(self, supplier_id):
        supplier = an_id(supplier_id, "supplier")
        with self.db.read() as s:
            return queries.supplier_balance(s, supplier)

    @rpc
    def supplier_statement(self, supplier_id, month):
        supplier = an_id(supplier_id, "supplier")
        month = validated(MonthIn, {"month": month}).month
        with self.db.read() as s:
            return queries.supplier_statement_csv(s, supplier, month)

    @rpc
    def settled_sales(self, month):
        month = validated(MonthIn, {"month": month}).month
        with self.db.read() as s:
            return queries.settled_sales(s, month)

    @rpc
    def check_books(self):
        with self.db.read() as s:
            return queries.check_books(s)

    # --- test mode: the sandbox provider -----------------------------------------------------
    @rpc
    def configure_sandbox(self, data=None):
        if not test_mode(self.config):
            raise Forbidden("the sandbox provider can only be reconfigured in test mode")
        body = validated(SandboxConfigIn, data)
        return self.provider.configure(body.fail, body.timeout, body.fail_times)
