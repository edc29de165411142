"""Entrypoints of the payouts service: each one validates with the contract model, opens a
unit of work (or a read session) and calls one handler (``payouts.handlers``) or query
(``payouts.queries``).

Inputs arrive as events (orders: order_paid / order_received / order_completed /
order_refunded / refund_requested / refund_decided (the ``refund_open`` hold); shop:
level_changed, shop_opened / shop_activated (the keeper's fingerprints), shop_suspended /
shop_reinstated) through the idempotent inbox. Every paid order is screened
by the fraud rules; admins clear or forfeit the holds. Settlement runs on a timer
and on demand; payout runs on demand. See ``services/payouts/README.md``.
"""

from __future__ import annotations

import logging

from nameko.extensions import DependencyProvider
from nameko.rpc import RpcProxy
from nameko.timer import timer

from payouts import domain, handlers, queries
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
    ShopChanged,
    ShopSuspension,
)
from shared.contracts.payouts import (
    HoldDecisionIn,
    HoldsQuery,
    MonthIn,
    PayeeIn,
    PayoutRunIn,
    PayoutSettingsIn,
    SandboxConfigIn,
    SettlementRunIn,
    WithdrawalIn,
)
from shared.db import Database, make_engine
from shared.errors import Forbidden, NotFound, ValidationFailed
from shared.events import batch_event_handler, event_handler
from shared.fingerprints import Fingerprinter
from shared.platform import PlatformRpc
from shared.rpc import rpc
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
    shop_rpc = RpcProxy("shop")  # the members' identity record (payee names)
    catalog_rpc = RpcProxy("catalog")  # the suppliers' registered names (payee names)

    @property
    def rules(self) -> PayoutRules:
        return PayoutRules.from_config(self.config)

    # --- inputs: events ---------------------------------------------------------------------
    @batch_event_handler("orders", "order_paid")
    def on_order_paid(self, events: list[dict]):
        """A batch of ``order_paid`` per transaction (shared.events), each event claimed once
        and applied in order — a later order of the batch sees the earlier ones' fingerprints
        and holds, as it would one transaction later; their accrual postings go in together at
        the end (``handlers.paid.Postings``: nothing of the screening reads them)."""
        paid = [(event, validated(OrderPaid, event["data"])) for event in events]
        data_of = {str(event["id"]): data for event, data in paid}
        rules = self.rules
        with self.db.unit_of_work() as uow:
            postings = handlers.paid.Postings(uow)  # the batch's accruals: one INSERT
            for event in uow.claim_all([event for event, _ in paid], "on_order_paid"):
                # accrual, then the fraud rules and suspension (holds): handlers.paid
                handlers.paid.order_paid(uow, rules, data_of[str(event["id"])], postings)
            postings.flush()

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

    @event_handler("shop", "shop_opened")
    def on_shop_opened(self, event):
        self._keeper_profile(event, "on_shop_opened")

    @event_handler("shop", "shop_activated")
    def on_shop_activated(self, event):
        self._keeper_profile(event, "on_shop_activated")

    def _keeper_profile(self, event: dict, handler: str) -> None:
        data = validated(ShopChanged, event["data"])
        at = event.get("occurred_at") or clock.now()
        with self.db.unit_of_work() as uow:
            if uow.claim(event, handler):
                handlers.fraud.keeper_profile(uow, data, at)

    @event_handler("shop", "shop_suspended")
    def on_shop_suspended(self, event):
        self._shop_suspension(event, "on_shop_suspended")

    @event_handler("shop", "shop_reinstated")
    def on_shop_reinstated(self, event):
        self._shop_suspension(event, "on_shop_reinstated")

    def _shop_suspension(self, event: dict, handler: str) -> None:
        data = validated(ShopSuspension, event["data"])
        at = event.get("occurred_at") or data.at
        with self.db.unit_of_work() as uow:
            if uow.claim(event, handler):
                handlers.fraud.shop_suspension(uow, data, at)

    @batch_event_handler("orders", "order_received")
    def on_order_received(self, events: list[dict]):
        """A batch of ``order_received`` per transaction (shared.events): the new ones merged
        into their orders' facts in one statement (handlers.settlement)."""
        self._settle_signals(events, "on_order_received", handlers.settlement.orders_received)

    @batch_event_handler("orders", "order_completed")
    def on_order_completed(self, events: list[dict]):
        """A batch of ``order_completed`` per transaction, as ``on_order_received``."""
        self._settle_signals(events, "on_order_completed", handlers.settlement.orders_completed)

    def _settle_signals(self, events: list[dict], handler: str, apply) -> None:
        data_of = {
            str(event["id"]): validated(OrderStateChanged, event["data"]) for event in events
        }
        with self.db.unit_of_work() as uow:
            fresh = uow.claim_all(events, handler)
            apply(uow, [data_of[str(event["id"])] for event in fresh])

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
            result = uow.once(lambda: handlers.settlement.run(uow, self.rules, as_of))
        self.db.provider.notify_outbox()  # the run wrote its events set-based, not via emit
        return result

    # --- payout runs ------------------------------------------------------------------------
    @rpc
    def run_payouts(self, data=None):
        body = validated(PayoutRunIn, data)
        rules = self.rules
        with self.db.unit_of_work() as uow:  # 1: every payout row, pending, before any transfer
            opened = uow.once(
                lambda: handlers.payout_runs.open_run(uow, rules, suppliers=body.suppliers)
            )
        results = handlers.payout_runs.transfer_all(
            self.provider, opened["payouts"], rules.payout_attempts_per_run
        )
        with self.db.unit_of_work() as uow:  # 2: mark what moved, post it to the journal
            return uow.once(
                lambda: handlers.payout_runs.finish_run(uow, opened["run_id"], results),
                step="finish",
            )

    # --- holds: the admin's review (issue 13) -------------------------------------------------
    @rpc
    def holds(self, query=None):
        q = validated(HoldsQuery, query or {})
        with self.db.read() as s:
            return queries.holds(s, q.status, q.shop_id, q.limit)

    @rpc
    def clear_hold(self, actor, hold_id, data):
        return self._decide(actor, hold_id, data, domain.CLEARED)

    @rpc
    def forfeit_hold(self, actor, hold_id, data):
        return self._decide(actor, hold_id, data, domain.FORFEITED)

    def _decide(self, actor: dict, hold_id, data, decision: str) -> dict:
        body = validated(HoldDecisionIn, data)
        hold = an_id(hold_id, "hold")
        by = f"{(actor or {}).get('role')}:{(actor or {}).get('sub')}"
        with self.db.unit_of_work() as uow:
            return handlers.fraud.decide(uow, hold, decision, by, body.reason)

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

    # --- payee accounts -----------------------------------------------------------------------
    def _name_on_record(self, party_kind: str, party_id: int) -> str | None:
        """The name a payee account must carry: a member's verified real name (shop's identity
        record), a supplier's registered name (catalog)."""
        if party_kind == domain.MEMBER:
            record = self.deadline.call(self.shop_rpc, "shop").identity_record(party_id)
            return record.get("real_name") if record.get("real_name_verified") else None
        return self.deadline.call(self.catalog_rpc, "catalog").get_supplier(party_id)["name"]

    @rpc
    def set_payee(self, party_kind, party_id, data):
        kind = _payee_kind(party_kind)
        party = an_id(party_id, kind)
        body = validated(PayeeIn, data)
        name = self._name_on_record(kind, party)
        with self.db.unit_of_work() as uow:
            return handlers.payees.set_payee(
                uow,
                kind,
                party,
                name,
                body.channel,
                body.account,
                body.real_name,
                Fingerprinter.from_config(self.config).of("payee", body.account),
            )

    @rpc
    def payee(self, party_kind, party_id):
        kind = _payee_kind(party_kind)
        with self.db.read() as s:
            return queries.payee(s, kind, an_id(party_id, kind))

    # --- withdrawals ------------------------------------------------------------------------
    @rpc
    def request_withdrawal(self, shop_id, member_id, data):
        """Ask (transaction 1), transfer (no transaction), record (transaction 2): see
        ``payouts.handlers.withdrawals``. The answer is the withdrawal as it ended up."""
        shop, member = an_id(shop_id, "shop"), an_id(member_id, "member")
        body = validated(WithdrawalIn, data)
        rules = self.rules
        with self.db.unit_of_work() as uow:
            once = getattr(uow, "once", None)  # shared.idempotency, where it has landed
            asked = (once or (lambda fn: fn()))(
                lambda: handlers.withdrawals.request(uow, rules, shop, member, body.amount_fen)
            )
        return self._pay_withdrawal(shop, int(asked["id"]))

    @rpc
    def retry_withdrawal(self, shop_id, withdrawal_id):
        """Send a requested or failed withdrawal again under its own key (never twice paid)."""
        return self._pay_withdrawal(an_id(shop_id, "shop"), an_id(withdrawal_id, "withdrawal"))

    def _pay_withdrawal(self, shop_id: int, withdrawal_id: int) -> dict:
        with self.db.read() as s:
            current = handlers.withdrawals.withdrawal_view(
                handlers.withdrawals.load(s, shop_id, withdrawal_id)
            )
        if current["status"] == handlers.withdrawals.PAID:
            return current
        outcome = handlers.withdrawals.transfer(
            self.provider, current, self.rules.payout_attempts_per_run
        )
        with self.db.unit_of_work() as uow:
            return handlers.withdrawals.finish(uow, withdrawal_id, outcome)

    @rpc
    def withdrawals(self, shop_id):
        with self.db.read() as s:
            return queries.withdrawals(s, an_id(shop_id, "shop"))

    @rpc
    def payout_history(self, shop_id):
        with self.db.read() as s:
            return queries.payout_history(s, an_id(shop_id, "shop"))

    @rpc
    def set_payout_settings(self, shop_id, data):
        body = validated(PayoutSettingsIn, data)
        with self.db.unit_of_work() as uow:
            return handlers.withdrawals.set_payout_mode(
                uow, an_id(shop_id, "shop"), body.payout_mode
            )

    @rpc
    def payout_settings(self, shop_id):
        with self.db.read() as s:
            return queries.payout_settings(s, an_id(shop_id, "shop"))

    @rpc
    def tax_statement(self, shop_id, year):
        shop = an_id(shop_id, "shop")
        with self.db.read() as s:
            return queries.tax_statement(s, self.rules, shop, _year(year))

    # --- test mode: the sandbox provider -----------------------------------------------------
    @rpc
    def configure_sandbox(self, data=None):
        if not test_mode(self.config):
            raise Forbidden("the sandbox provider can only be reconfigured in test mode")
        body = validated(SandboxConfigIn, data)
        return self.provider.configure(body.fail, body.timeout, body.fail_times)


def _payee_kind(party_kind) -> str:
    if party_kind not in domain.PAYEE_KINDS:
        raise NotFound(f"no payee accounts for {party_kind!r}", code="payee_not_found")
    return str(party_kind)


def _year(value) -> int:
    try:
        return int(domain.year_bounds(int(str(value)))[0].year)
    except ValueError:
        raise ValidationFailed(
            "year must look like YYYY", details=[{"field": "year", "message": "expected YYYY"}]
        ) from None
