"""What each orders entrypoint does: unit of work, domain rule, outbox event, other services.

Mixed into ``OrdersService`` (``self.db``, ``self.config``, ``self.catalog_rpc`` ...). Every state
change and its event are written in one unit of work; stock calls owed to the catalog are
recorded on the order (``stock_state``) in that same transaction and made right after the commit
— when that call fails (catalog down, crash) the timer makes it later (commit/release are
idempotent at the catalog), so stock is never leaked nor oversold.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import NamedTuple

import eventlet
from nameko.exceptions import UnknownService
from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from orders import domain
from orders.models import (
    CartItem,
    Checkout,
    Inquiry,
    Order,
    OrderHistory,
    OrderItem,
    Payment,
    Refund,
)
from orders.payments import provider_from_config
from shared import clock
from shared.config import rules as config_rules
from shared.contracts.events import OrderLine, OrderPaid, OrderRefunded, OrderStateChanged
from shared.contracts.orders import (
    CartIn,
    CheckoutIn,
    InquiryIn,
    ListQuery,
    PaymentCallback,
    RefundIn,
    ShipIn,
    Viewer,
)
from shared.errors import (
    Conflict,
    NotFound,
    RuleViolation,
    ServiceUnavailable,
    ValidationFailed,
    XiaopuError,
    rule,
)
from shared.ids import new_id

log = logging.getLogger(__name__)


def _validate(model, data):
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        raise ValidationFailed(
            "the request is invalid",
            details=[
                {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
                for e in exc.errors(include_url=False, include_input=False)
            ],
        )


def _viewer(viewer) -> Viewer:
    if viewer is None:
        return Viewer(role="admin", id="system")
    return _validate(Viewer, viewer)


def _actor(viewer: Viewer | None) -> str:
    return "system" if viewer is None else f"{viewer.role}:{viewer.id}"


class _StockRow(NamedTuple):
    stock_state: str
    reservation_id: str


class OrdersHandlers:
    # --- plumbing -----------------------------------------------------------------------------
    @property
    def rules(self) -> domain.OrderRules:
        return domain.OrderRules.from_config(config_rules(self.config))

    @property
    def provider(self):
        return provider_from_config(self.config)

    def remote(self, service: str, method: str, *args, **kwargs):
        """An RPC to another service with a deadline; its domain errors pass through."""
        timeout = float(self.config.get("XIAOPU_RPC_TIMEOUT", 5))
        target = getattr(getattr(self, f"{service}_rpc"), method)
        try:
            with eventlet.Timeout(timeout):
                return target(*args, **kwargs)
        except eventlet.Timeout:
            raise ServiceUnavailable(
                f"the {service} service did not answer in {timeout:g}s",
                details={"service": service},
            )
        except UnknownService:
            raise ServiceUnavailable(
                f"the {service} service is not running", details={"service": service}
            )

    @staticmethod
    def _lock_order(session, order_id: int) -> Order:
        """The order row, locked for this transaction (FOR UPDATE on PostgreSQL; on SQLite a
        no-op write takes the database write lock before anything is read)."""
        if session.get_bind().dialect.name == "sqlite":
            session.execute(update(Order).where(Order.id == order_id).values(status=Order.status))
            order = session.get(Order, order_id, populate_existing=True)
        else:
            order = session.get(Order, order_id, with_for_update=True, populate_existing=True)
        if order is None:
            raise NotFound(f"order {order_id} not found", code="order_not_found")
        return order

    @staticmethod
    def _history(
        session,
        order: Order,
        from_status,
        to_status,
        actor: str,
        now: datetime,
        note: str | None = None,
    ) -> None:
        session.add(
            OrderHistory(
                order_id=order.id,
                from_status=from_status,
                to_status=to_status,
                actor=actor,
                at=now,
                note=note,
            )
        )

    def _move(
        self, uow, order: Order, action: str, actor: str, now: datetime, note: str | None = None
    ) -> str:
        """Apply one state-machine transition, record it, publish its event (not order_paid
        nor order_refunded, which carry their own shape)."""
        before = order.status
        after = domain.transition(before, action)
        order.status = after
        self._history(uow.session, order, before, after, actor, now, note)
        if after in (
            domain.SHIPPED,
            domain.RECEIVED,
            domain.COMPLETED,
            domain.CANCELLED,
            domain.EXPIRED,
        ):
            uow.emit(
                domain.EVENT_OF[after],
                OrderStateChanged(
                    order_id=order.id,
                    supplier_id=order.supplier_id,
                    shop_id=order.shop_id,
                    status=after,
                    at=clock.iso(now),
                    buyer_id=order.buyer_id,
                    share_id=order.share_id,
                    note=note,
                ).model_dump(),
            )
        return after

    # --- stock owed to the catalog ------------------------------------------------------------
    def _settle_stock(self, order_ids: list[int], known: dict | None = None) -> None:
        """Make the catalog calls recorded on these orders (to_commit / to_release).
        ``known``: {order id: (stock_state, reservation_id)} just committed (saves a read)."""
        for oid in order_ids:
            if known and oid in known:
                row = _StockRow(*known[oid])
            else:
                with self.db.read() as s:
                    row = s.execute(
                        select(Order.stock_state, Order.reservation_id).where(Order.id == oid)
                    ).one_or_none()
            if row is None or row.stock_state not in ("to_commit", "to_release"):
                continue
            try:
                if row.stock_state == "to_commit":
                    self.remote("catalog", "commit_stock", row.reservation_id)
                    done = "committed"
                else:
                    try:
                        self.remote("catalog", "release_stock", row.reservation_id)
                    except NotFound:  # never reserved (crash before the reservation): nothing held
                        pass
                    done = "released"
            except Conflict as exc:
                if row.stock_state != "to_commit":
                    raise
                # The catalog refuses to commit (its hold lapsed and the stock is gone): stop
                # retrying; the paid order is flagged for the supplier (refund or restock).
                log.error("catalog refused to commit stock for paid order %s: %s", oid, exc)
                done = "commit_refused"
            except Exception as exc:  # catalog down or failing: the timer retries
                log.warning(
                    "stock %s for order %s failed (%s); retrying later", row.stock_state, oid, exc
                )
                continue
            with self.db.unit_of_work() as uow:
                uow.session.execute(
                    update(Order)
                    .where(Order.id == oid, Order.stock_state == row.stock_state)
                    .values(stock_state=done)
                )

    # --- cart ---------------------------------------------------------------------------------
    def h_get_cart(self, buyer_id: int) -> dict:
        with self.db.read() as s:
            rows = s.scalars(
                select(CartItem)
                .where(CartItem.buyer_id == buyer_id)
                .order_by(CartItem.updated_at, CartItem.product_id)
            ).all()
            return {"items": [{"product_id": r.product_id, "quantity": r.quantity} for r in rows]}

    def h_put_cart(self, buyer_id: int, data) -> dict:
        cart = _validate(CartIn, data)
        now = clock.now()
        with self.db.unit_of_work() as uow:
            uow.session.query(CartItem).filter(CartItem.buyer_id == buyer_id).delete()
            for line in domain.merge_lines([i.model_dump() for i in cart.items]):
                uow.session.add(
                    CartItem(
                        buyer_id=buyer_id,
                        product_id=line.product_id,
                        quantity=line.quantity,
                        updated_at=now,
                    )
                )
        return self.h_get_cart(buyer_id)

    # --- checkout -----------------------------------------------------------------------------
    def h_checkout(self, buyer_id: int, data, checkout_key: str | None) -> dict:
        payload = _validate(CheckoutIn, data)
        key = payload.checkout_key or checkout_key
        if key:
            replay = self._checkout_replay(buyer_id, key)
            if replay is not None:
                return replay
        rules = self.rules
        lines = domain.merge_lines([i.model_dump() for i in payload.items])
        found = eventlet.spawn(self._attribution, buyer_id, payload)  # in parallel
        try:
            products_list = self.remote("catalog", "get_products", [ln.product_id for ln in lines])
        except BaseException:
            found.kill()
            raise
        attribution = found.wait()
        products = {int(p["id"]): p for p in products_list}
        domain.check_products(lines, products, rules)
        groups = domain.split_by_supplier(lines, products)
        now = clock.now()
        checkout_id = new_id()
        try:
            with self.db.unit_of_work() as uow:
                s = uow.session
                s.add(Checkout(id=checkout_id, buyer_id=buyer_id, key=key, created_at=now))
                orders = []
                for group in groups:
                    order = Order(
                        checkout_id=checkout_id,
                        buyer_id=buyer_id,
                        supplier_id=group["supplier_id"],
                        status=domain.CREATED,
                        total_fen=group["total_fen"],
                        paid_fen=0,
                        refunded_fen=0,
                        shop_id=attribution.shop_id,
                        share_id=attribution.share_id,
                        shop_number=attribution.shop_number,
                        keeper_member_id=attribution.keeper_member_id,
                        self_referral=attribution.self_referral,
                        attribution_source=attribution.source,
                        address_name=payload.address.name,
                        address_phone=payload.address.phone,
                        address_line=payload.address.line,
                        reservation_id="",
                        stock_state="reserved",
                        created_at=now,
                        expires_at=domain.expires_at(now, rules),
                        items=[OrderItem(**item) for item in group["items"]],
                    )
                    s.add(order)
                    orders.append(order)
                s.flush()
                for order in orders:
                    order.reservation_id = f"order-{order.id}"
                    self._history(
                        s,
                        order,
                        None,
                        domain.CREATED,
                        f"member:{buyer_id}",
                        now,
                        attribution.dropped_reason
                        and f"no attribution: {attribution.dropped_reason}",
                    )
                s.query(CartItem).filter(
                    CartItem.buyer_id == buyer_id,
                    CartItem.product_id.in_([ln.product_id for ln in lines]),
                ).delete(synchronize_session=False)
                result = [self._order_summary(o) for o in orders]
        except IntegrityError:
            replay = self._checkout_replay(buyer_id, key) if key else None
            if replay is not None:
                return replay
            raise
        self._reserve_or_undo(orders, now)
        return {"checkout_id": checkout_id, "orders": result}

    def _reserve_or_undo(self, orders: list[Order], now: datetime) -> None:
        done = []
        try:
            for order in orders:
                self.remote(
                    "catalog",
                    "reserve_stock",
                    order.reservation_id,
                    [{"product_id": i.product_id, "quantity": i.quantity} for i in order.items],
                )
                done.append(order.id)
        except Exception as exc:
            # No half state: every order of this checkout is cancelled, what was reserved is
            # released (the failed one too: release is idempotent), the checkout key is freed.
            ids = [o.id for o in orders]
            with self.db.unit_of_work() as uow:
                for oid in ids:
                    order = self._lock_order(uow.session, oid)
                    if order.status == domain.CREATED:
                        self._move(uow, order, "cancel", "system", now, "stock reservation failed")
                        order.stock_state = "to_release"
                uow.session.query(Checkout).filter(Checkout.id == orders[0].checkout_id).delete()
            self._settle_stock(ids)
            if isinstance(exc, XiaopuError):
                raise
            raise ServiceUnavailable(
                "stock could not be reserved; nothing was ordered",
                details={"error": str(exc)[:200]},
            )

    def _checkout_replay(self, buyer_id: int, key: str) -> dict | None:
        with self.db.read() as s:
            checkout = s.scalars(
                select(Checkout).where(Checkout.buyer_id == buyer_id, Checkout.key == key)
            ).first()
            if checkout is None:
                return None
            orders = s.scalars(
                select(Order).where(Order.checkout_id == checkout.id).order_by(Order.id)
            ).all()
            return {
                "checkout_id": checkout.id,
                "replayed": True,
                "orders": [self._order_summary(o) for o in orders],
            }

    def _attribution(self, buyer_id: int, payload: CheckoutIn) -> domain.Attribution:
        """Share code, else shop number, else the last landing visit within the window."""
        if payload.share_code:
            try:
                # kind=None: the buyer's paste was already counted when it opened the share
                share = self.remote(
                    "share", "resolve", payload.share_code, visitor_id=payload.visitor_id, kind=None
                )
            except NotFound:
                raise RuleViolation(
                    "the share code is not valid",
                    [rule("share_code", "no share matches this code", field="share_code")],
                )
            shop = self.remote("shop", "get_shop", share["shop_id"])
            return domain.attribute(shop, buyer_id, share.get("share_id"), "share_code")
        if payload.shop_number:
            try:
                shop = self.remote("shop", "get_shop_by_number", payload.shop_number)
            except NotFound:
                raise RuleViolation(
                    "no shop has this number",
                    [rule("shop_number", "no shop has this number", field="shop_number")],
                )
            return domain.attribute(shop, buyer_id, None, "shop_number")
        try:
            since = domain.attribution_since(clock.now(), self.rules)
            if not payload.visitor_id:
                return domain.Attribution()
            visit = self.remote("share", "last_visit", payload.visitor_id, clock.iso(since))
            if not visit or not visit.get("shop_id"):
                return domain.Attribution()
            shop = self.remote("shop", "get_shop", visit["shop_id"])
        except Exception as exc:  # no visit, or share/shop cannot say: no attribution
            log.debug("no landing-visit attribution for member %s: %s", buyer_id, exc)
            return domain.Attribution()
        return domain.attribute(shop, buyer_id, visit.get("share_id"), "visit")

    # --- payment ------------------------------------------------------------------------------
    def h_pay(self, order_id: int, viewer) -> dict:
        v = _viewer(viewer)
        with self.db.read() as s:
            order = s.execute(
                select(
                    Order.buyer_id, Order.supplier_id, Order.keeper_member_id, Order.total_fen
                ).where(Order.id == order_id)
            ).one_or_none()
        if order is None:
            raise NotFound(f"order {order_id} not found", code="order_not_found")
        domain.require(domain.viewer_relation(order._asdict(), v.role, v.id), domain.BUYER)
        raw, signature = self.provider.build_callback(order_id, order.total_fen)
        return self.h_payment_callback(raw, signature)

    def h_payment_callback(self, raw_body, signature) -> dict:
        data = self.provider.verify(raw_body, signature)  # Unauthorized: nothing changes
        cb = _validate(PaymentCallback, data)
        now = clock.now()
        late_conflict = None
        with self.db.unit_of_work() as uow:
            s = uow.session
            order = self._lock_order(s, cb.order_id)
            if cb.status != "succeeded":
                return {"order_id": order.id, "status": order.status, "ignored": True}
            seen = s.get(Payment, cb.payment_id) is not None
            if (
                not seen
                and order.status == domain.CREATED
                and domain.is_expired(clock.as_utc(order.expires_at), now)
            ):
                self._move(uow, order, "expire", "system", now, "unpaid in time")
                order.stock_state = "to_release"
            decision = domain.payment_decision(order.status, cb.amount_fen, order.total_fen, seen)
            if decision == domain.DUPLICATE:
                return {"order_id": order.id, "status": order.status, "duplicate": True}
            payment = Payment(
                payment_id=cb.payment_id,
                order_id=order.id,
                amount_fen=cb.amount_fen,
                provider=cb.provider,
                received_at=now,
                payload=data,
                outcome="applied",
            )
            s.add(payment)
            if decision == domain.LATE:
                payment.outcome = "refund_due"
                self._history(
                    s,
                    order,
                    order.status,
                    order.status,
                    "provider",
                    now,
                    f"late payment {cb.payment_id} not applied; refund due",
                )
                late_conflict = Conflict(
                    f"order {order.id} is {order.status}: the payment was not applied and "
                    "will be refunded",
                    details={
                        "status": order.status,
                        "payment": "refund_due",
                        "payment_id": cb.payment_id,
                    },
                    code="payment_not_applicable",
                )
            else:
                before = order.status
                order.status = domain.transition(before, "pay")
                order.paid_fen = cb.amount_fen
                order.paid_at = now
                order.payment_id = cb.payment_id
                order.stock_state = "to_commit"
                self._history(
                    s, order, before, order.status, "provider", now, f"payment {cb.payment_id}"
                )
                uow.emit("order_paid", self._order_paid_event(order, now))
            status = order.status
            stock = {order.id: (order.stock_state, order.reservation_id)}
        self._settle_stock([cb.order_id], stock)
        if late_conflict is not None:
            self._refund_late_payments()
            raise late_conflict
        return {"order_id": cb.order_id, "status": status}

    @staticmethod
    def _order_paid_event(order: Order, now: datetime) -> dict:
        return OrderPaid(
            order_id=order.id,
            buyer_id=order.buyer_id,
            supplier_id=order.supplier_id,
            shop_id=order.shop_id,
            share_id=order.share_id,
            self_referral=order.self_referral,
            paid_fen=order.paid_fen,
            paid_at=clock.iso(now),
            keeper_member_id=order.keeper_member_id,
            shop_number=order.shop_number,
            payment_id=order.payment_id,
            total_fen=order.total_fen,
            lines=[
                OrderLine(
                    product_id=i.product_id,
                    title=i.title,
                    quantity=i.quantity,
                    unit_price_fen=i.unit_price_fen,
                    amount_fen=i.amount_fen,
                    commission_bps=i.commission_bps,
                )
                for i in order.items
            ],
        ).model_dump()

    def _refund_late_payments(self) -> None:
        with self.db.read() as s:
            due = s.execute(
                select(Payment.payment_id, Payment.amount_fen).where(
                    Payment.outcome == "refund_due"
                )
            ).all()
        for p in due:
            try:
                self.provider.refund(p.payment_id, p.amount_fen, f"late-{p.payment_id}")
            except Exception as exc:
                log.warning("refunding late payment %s failed: %s", p.payment_id, exc)
                continue
            with self.db.unit_of_work() as uow:
                uow.session.execute(
                    update(Payment)
                    .where(Payment.payment_id == p.payment_id, Payment.outcome == "refund_due")
                    .values(outcome="refunded")
                )

    # --- transitions by people ----------------------------------------------------------------
    def _act(self, order_id: int, viewer, allowed: tuple[str, ...], fn) -> dict:
        v = _viewer(viewer)
        now = clock.now()
        with self.db.unit_of_work() as uow:
            order = self._lock_order(uow.session, order_id)
            domain.require(domain.viewer_relation(self._access(order), v.role, v.id), *allowed)
            fn(uow, order, _actor(v), now)
            out = {"id": order.id, "status": order.status}
        self._settle_stock([order_id])
        return out

    def h_cancel(self, order_id: int, viewer) -> dict:
        def cancel(uow, order, actor, now):
            self._move(uow, order, "cancel", actor, now, "cancelled by the buyer")
            order.stock_state = "to_release"

        return self._act(order_id, viewer, (domain.BUYER,), cancel)

    def h_ship(self, order_id: int, viewer, data) -> dict:
        body = _validate(ShipIn, data)

        def ship(uow, order, actor, now):
            order.carrier, order.tracking_no, order.shipped_at = (
                body.carrier,
                body.tracking_no,
                now,
            )
            self._move(uow, order, "ship", actor, now, f"{body.carrier} {body.tracking_no}")

        return self._act(order_id, viewer, (domain.SUPPLIER_VIEW,), ship)

    def h_confirm(self, order_id: int, viewer) -> dict:
        def confirm(uow, order, actor, now):
            order.received_at = now
            self._move(uow, order, "receive", actor, now, "confirmed by the buyer")

        return self._act(order_id, viewer, (domain.BUYER,), confirm)

    # --- refunds ------------------------------------------------------------------------------
    @staticmethod
    def _refund_sums(session, order_id: int) -> tuple[int, int]:
        rows = session.execute(
            select(Refund.status, func.coalesce(func.sum(Refund.amount_fen), 0))
            .where(Refund.order_id == order_id)
            .group_by(Refund.status)
        ).all()
        sums = {status: int(total) for status, total in rows}
        return sums.get("approved", 0), sums.get("requested", 0)

    def h_request_refund(self, order_id: int, viewer, data) -> dict:
        body = _validate(RefundIn, data)
        v = _viewer(viewer)
        now = clock.now()
        with self.db.unit_of_work() as uow:
            s = uow.session
            order = self._lock_order(s, order_id)
            domain.require(domain.viewer_relation(self._access(order), v.role, v.id), domain.BUYER)
            approved, pending = self._refund_sums(s, order.id)
            domain.check_refund_request(
                order.status, body.amount_fen, order.paid_fen, approved, pending
            )
            refund = Refund(
                order_id=order.id,
                supplier_id=order.supplier_id,
                buyer_id=order.buyer_id,
                amount_fen=body.amount_fen,
                reason=body.reason,
                status="requested",
                order_status_at_request=order.status,
                created_at=now,
            )
            s.add(refund)
            s.flush()
            self._history(
                s,
                order,
                order.status,
                order.status,
                _actor(v),
                now,
                f"refund {refund.id} requested: {body.amount_fen} fen",
            )
            return self._refund_dict(refund)

    def h_decide_refund(self, refund_id: int, viewer, approve: bool) -> dict:
        v = _viewer(viewer)
        now = clock.now()
        with self.db.read() as s:
            refund = s.get(Refund, refund_id)
            if refund is None:
                raise NotFound(f"refund {refund_id} not found", code="refund_not_found")
            order_id = refund.order_id
        with self.db.unit_of_work() as uow:
            s = uow.session
            order = self._lock_order(s, order_id)
            domain.require(
                domain.viewer_relation(self._access(order), v.role, v.id), domain.SUPPLIER_VIEW
            )
            refund = s.get(Refund, refund_id, populate_existing=True)
            domain.check_refund_decision(refund.status)
            refund.decided_at = now
            if not approve:
                refund.status = "rejected"
                self._history(
                    s,
                    order,
                    order.status,
                    order.status,
                    _actor(v),
                    now,
                    f"refund {refund.id} rejected",
                )
                return self._refund_dict(refund)
            answer = self.provider.refund(
                order.payment_id, refund.amount_fen, f"refund-{refund.id}"
            )
            refund.provider_refund_id = answer["refund_id"]
            refund.status = "approved"
            before = order.status
            order.refunded_fen = (order.refunded_fen or 0) + refund.amount_fen
            after = domain.status_after_refund(before, order.paid_fen, order.refunded_fen)
            order.status = after
            self._history(
                s,
                order,
                before,
                after,
                _actor(v),
                now,
                f"refund {refund.id} approved: {refund.amount_fen} fen",
            )
            if domain.refund_returns_stock(before, after == domain.REFUNDED):
                order.stock_state = "to_release"
            uow.emit(
                "order_refunded",
                OrderRefunded(
                    order_id=order.id,
                    refund_id=refund.id,
                    supplier_id=order.supplier_id,
                    shop_id=order.shop_id,
                    amount_fen=refund.amount_fen,
                    paid_fen=order.paid_fen,
                    refunded_total_fen=order.refunded_fen,
                    at=clock.iso(now),
                    status=after,
                    shipped=before != domain.PAID,
                    buyer_id=order.buyer_id,
                ).model_dump(),
            )
            out = self._refund_dict(refund)
        self._settle_stock([order_id])
        return out

    def h_get_refund(self, refund_id: int, viewer) -> dict:
        v = _viewer(viewer)
        with self.db.read() as s:
            refund = s.get(Refund, refund_id)
            if refund is None:
                raise NotFound(f"refund {refund_id} not found", code="refund_not_found")
            order = s.get(Order, refund.order_id)
            domain.viewer_relation(self._access(order), v.role, v.id)
            return self._refund_dict(refund)

    @staticmethod
    def _refund_dict(r: Refund) -> dict:
        return {
            "id": r.id,
            "order_id": r.order_id,
            "amount_fen": r.amount_fen,
            "reason": r.reason,
            "status": r.status,
            "supplier_id": r.supplier_id,
            "provider_refund_id": r.provider_refund_id,
            "created_at": clock.iso(r.created_at),
            "decided_at": clock.iso(r.decided_at),
        }

    # --- reading ------------------------------------------------------------------------------
    @staticmethod
    def _access(order: Order) -> dict:
        return {
            "buyer_id": order.buyer_id,
            "supplier_id": order.supplier_id,
            "keeper_member_id": order.keeper_member_id,
        }

    @staticmethod
    def _items(order: Order) -> list[dict]:
        return [
            {
                "product_id": i.product_id,
                "title": i.title,
                "quantity": i.quantity,
                "unit_price_fen": i.unit_price_fen,
                "amount_fen": i.amount_fen,
                "commission_bps": i.commission_bps,
            }
            for i in order.items
        ]

    def _order_summary(self, o: Order) -> dict:
        return {
            "id": o.id,
            "status": o.status,
            "supplier_id": o.supplier_id,
            "total_fen": o.total_fen,
            "shop_id": o.shop_id,
            "share_id": o.share_id,
            "self_referral": o.self_referral,
            "items": self._items(o),
            "expires_at": clock.iso(o.expires_at),
        }

    def _order_dict(self, o: Order, relation: str, history: list | None = None) -> dict:
        address = {"name": o.address_name, "phone": o.address_phone, "line": o.address_line}
        if relation == domain.KEEPER_VIEW:
            address = domain.masked_address(address)
        out = {
            **self._order_summary(o),
            "buyer_id": o.buyer_id if relation != domain.KEEPER_VIEW else None,
            "paid_fen": o.paid_fen,
            "refunded_fen": o.refunded_fen,
            "shop_number": o.shop_number,
            "attribution_source": o.attribution_source,
            "address": address,
            "carrier": o.carrier,
            "tracking_no": o.tracking_no,
            "created_at": clock.iso(o.created_at),
            "paid_at": clock.iso(o.paid_at),
            "shipped_at": clock.iso(o.shipped_at),
            "received_at": clock.iso(o.received_at),
            "completed_at": clock.iso(o.completed_at),
            "viewer": relation,
        }
        if relation in (domain.ADMIN, domain.SUPPLIER_VIEW):
            out["stock_state"] = o.stock_state
            out["payment_id"] = o.payment_id
        if history is not None:
            out["history"] = [
                {
                    "from": h.from_status,
                    "to": h.to_status,
                    "by": h.actor,
                    "at": clock.iso(h.at),
                    "note": h.note,
                }
                for h in history
            ]
        return out

    def h_get_order(self, order_id: int, viewer) -> dict:
        v = _viewer(viewer)
        with self.db.read() as s:
            order = s.get(Order, order_id)
            if order is None:
                raise NotFound(f"order {order_id} not found", code="order_not_found")
            relation = domain.viewer_relation(self._access(order), v.role, v.id)
            history = s.scalars(
                select(OrderHistory)
                .where(OrderHistory.order_id == order_id)
                .order_by(OrderHistory.id)
            ).all()
            refunds = s.scalars(
                select(Refund).where(Refund.order_id == order_id).order_by(Refund.id)
            ).all()
            out = self._order_dict(order, relation, history)
            out["refunds"] = [self._refund_dict(r) for r in refunds]
            return out

    @staticmethod
    def _page(query) -> tuple[ListQuery, int | None]:
        q = _validate(ListQuery, query)
        cursor = None
        if q.cursor:
            try:
                cursor = int(q.cursor)
            except ValueError:
                raise ValidationFailed(
                    "the cursor is invalid", details=[{"field": "cursor", "message": "bad cursor"}]
                )
        return q, cursor

    def h_list_orders(self, viewer, query) -> dict:
        v = _viewer(viewer)
        q, cursor = self._page(query)
        stmt = select(Order)
        if v.role == "member":
            if q.as_ == "keeper":
                stmt = stmt.where(Order.keeper_member_id == int(v.id))
                relation = domain.KEEPER_VIEW
            else:
                stmt = stmt.where(Order.buyer_id == int(v.id))
                relation = domain.BUYER
        elif v.role == "supplier":
            stmt = stmt.where(Order.supplier_id == int(v.id))
            relation = domain.SUPPLIER_VIEW
        else:
            relation = domain.ADMIN
        if q.status:
            stmt = stmt.where(Order.status == q.status)
        if cursor is not None:
            stmt = stmt.where(Order.id < cursor)
        with self.db.read() as s:
            rows = s.scalars(stmt.order_by(Order.id.desc()).limit(q.limit + 1)).all()
            items = [self._order_dict(o, relation) for o in rows[: q.limit]]
        return {
            "items": items,
            "next_cursor": str(items[-1]["id"]) if len(rows) > q.limit else None,
        }

    # --- who handles what ---------------------------------------------------------------------
    def h_contacts(self, order_id: int, viewer) -> dict:
        v = _viewer(viewer)
        with self.db.read() as s:
            order = s.get(Order, order_id)
            if order is None:
                raise NotFound(f"order {order_id} not found", code="order_not_found")
            relation = domain.viewer_relation(self._access(order), v.role, v.id)
            shop_id, supplier_id, status = order.shop_id, order.supplier_id, order.status
            shop_number = order.shop_number
            items = [
                {
                    "product_id": i.product_id,
                    "title": i.title,
                    "description": i.description,
                    "brand": i.brand,
                    "category": i.category,
                    "image_url": i.image_url,
                    "quantity": i.quantity,
                    "price_paid_fen": i.unit_price_fen,
                    "amount_fen": i.amount_fen,
                }
                for i in order.items
            ]
        keeper_gt = (
            eventlet.spawn(self._keeper_contact, shop_id, shop_number)
            if shop_id is not None
            else None
        )
        supplier = self.remote("catalog", "get_supplier_contact", supplier_id)
        keeper = keeper_gt.wait() if keeper_gt is not None else None
        has_keeper = keeper is not None
        pre_sales = (
            {
                "role": "keeper",
                "shop_id": shop_id,
                "shop_number": keeper.get("shop_number"),
                "display_name": keeper.get("display_name"),
                "nickname": keeper.get("nickname"),
                "phone": keeper.get("phone"),
                "handles": ["product questions before shipping", "other questions before shipping"],
            }
            if has_keeper
            else {
                "role": "supplier",
                "supplier_id": supplier_id,
                "name": supplier.get("name"),
                "phone": supplier.get("phone"),
                "handles": ["everything: this order came without a shop"],
            }
        )
        after_sales = {
            "role": "supplier",
            "supplier_id": supplier_id,
            "name": supplier.get("name"),
            "phone": supplier.get("phone"),
            "wechat": supplier.get("wechat"),
            "email": supplier.get("email"),
            "handles": ["shipping", "refunds and returns", "questions about the received item"],
        }
        return {
            "order_id": order_id,
            "status": status,
            "viewer": relation,
            "pre_sales": pre_sales,
            "after_sales": after_sales,
            "product_facts": {"items": items, "snapshotted_at": "checkout"},
            "handles": domain.handles(status, has_keeper),
        }

    def _keeper_contact(self, shop_id: int, shop_number: str | None) -> dict:
        """The keeper's contact from the shop service; when it cannot answer, what the order
        itself knows (the shop and its number) so the buyer still learns who handles what."""
        try:
            return self.remote("shop", "get_keeper_contact", shop_id)
        except Exception as exc:
            log.warning("keeper contact of shop %s unavailable: %s", shop_id, exc)
            return {
                "shop_id": shop_id,
                "shop_number": shop_number,
                "display_name": None,
                "nickname": None,
                "phone": None,
                "unavailable": True,
            }

    def h_create_inquiry(self, order_id: int, viewer, data) -> dict:
        body = _validate(InquiryIn, data)
        v = _viewer(viewer)
        now = clock.now()
        with self.db.unit_of_work() as uow:
            s = uow.session
            order = s.get(Order, order_id)
            if order is None:
                raise NotFound(f"order {order_id} not found", code="order_not_found")
            domain.require(domain.viewer_relation(self._access(order), v.role, v.id), domain.BUYER)
            routed = domain.route_inquiry(
                body.topic, order.status, order.keeper_member_id is not None
            )
            inquiry = Inquiry(
                order_id=order.id,
                buyer_id=order.buyer_id,
                topic=body.topic,
                text=body.text,
                routed_to=routed,
                order_status=order.status,
                shop_id=order.shop_id,
                keeper_member_id=order.keeper_member_id,
                supplier_id=order.supplier_id,
                created_at=now,
            )
            s.add(inquiry)
            s.flush()
            return self._inquiry_dict(inquiry)

    @staticmethod
    def _inquiry_dict(i: Inquiry) -> dict:
        return {
            "id": i.id,
            "order_id": i.order_id,
            "topic": i.topic,
            "text": i.text,
            "routed_to": i.routed_to,
            "order_status": i.order_status,
            "shop_id": i.shop_id,
            "supplier_id": i.supplier_id,
            "created_at": clock.iso(i.created_at),
        }

    def h_list_inquiries(self, viewer, query) -> dict:
        v = _viewer(viewer)
        q, cursor = self._page(query)
        stmt = select(Inquiry)
        if v.role == "member":
            if q.as_ == "buyer":
                stmt = stmt.where(Inquiry.buyer_id == int(v.id))
            else:
                stmt = stmt.where(
                    Inquiry.keeper_member_id == int(v.id), Inquiry.routed_to == domain.KEEPER
                )
        elif v.role == "supplier":
            stmt = stmt.where(
                Inquiry.supplier_id == int(v.id), Inquiry.routed_to == domain.SUPPLIER
            )
        if cursor is not None:
            stmt = stmt.where(Inquiry.id < cursor)
        with self.db.read() as s:
            rows = s.scalars(stmt.order_by(Inquiry.id.desc()).limit(q.limit + 1)).all()
            items = [self._inquiry_dict(i) for i in rows[: q.limit]]
        return {
            "items": items,
            "next_cursor": str(items[-1]["id"]) if len(rows) > q.limit else None,
        }

    # --- time ---------------------------------------------------------------------------------
    def h_run_timers(self) -> dict:
        """Every time rule, as of ``clock.now()``; safe to run concurrently and repeatedly."""
        rules, now = self.rules, clock.now()
        counts = {"expired": 0, "received": 0, "completed": 0}
        with self.db.read() as s:
            expire_ids = s.scalars(
                select(Order.id).where(Order.status == domain.CREATED, Order.expires_at <= now)
            ).all()
            receive_ids = s.scalars(
                select(Order.id).where(
                    Order.status == domain.SHIPPED,
                    Order.shipped_at <= domain.shipped_before_auto_receive(now, rules),
                )
            ).all()
            complete_ids = s.scalars(
                select(Order.id).where(
                    Order.status == domain.RECEIVED,
                    Order.received_at <= domain.received_before_completion(now, rules),
                )
            ).all()
        for oid in expire_ids:
            counts["expired"] += self._timed(oid, domain.CREATED, "expire", now)
        for oid in receive_ids:
            counts["received"] += self._timed(oid, domain.SHIPPED, "receive", now)
        for oid in complete_ids:
            counts["completed"] += self._timed(oid, domain.RECEIVED, "complete", now)
        with self.db.read() as s:
            owed = s.scalars(
                select(Order.id).where(Order.stock_state.in_(("to_commit", "to_release")))
            ).all()
        self._settle_stock(list(owed))
        self._refund_late_payments()
        return {**counts, "stock_retried": len(owed), "now": clock.iso(now)}

    def _timed(self, order_id: int, expected: str, action: str, now: datetime) -> int:
        with self.db.unit_of_work() as uow:
            order = self._lock_order(uow.session, order_id)
            if order.status != expected:
                return 0
            if action == "expire":
                self._move(uow, order, "expire", "system", now, "unpaid in time")
                order.stock_state = "to_release"
            elif action == "receive":
                order.received_at = now
                self._move(uow, order, "receive", "system", now, "auto-confirmed")
            else:
                approved, pending = self._refund_sums(uow.session, order.id)
                if pending:
                    return 0  # a refund waits for the supplier: the window stays open
                order.completed_at = now
                self._move(uow, order, "complete", "system", now, "after-sales window closed")
        if action == "expire":
            self._settle_stock([order_id])
        return 1
