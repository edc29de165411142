"""The orders rules alone: state machine, checkout split, attribution, payments, refunds,
who sees what."""

from datetime import UTC, datetime, timedelta

import pytest

from orders import domain
from shared.errors import Conflict, NotFound, RuleViolation
from shared.validation import not_found

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def product(pid, supplier, price=1000, bps=1000, stock=10, available=True):
    return {
        "id": pid,
        "supplier_id": supplier,
        "title": f"p{pid}",
        "price_fen": price,
        "commission_bps": bps,
        "stock": stock,
        "available": available,
    }


# --- state machine -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "current,action,after",
    [
        ("created", "pay", "paid"),
        ("paid", "ship", "shipped"),
        ("shipped", "receive", "received"),
        ("received", "complete", "completed"),
        ("created", "expire", "expired"),
        ("created", "cancel", "cancelled"),
        ("shipped", "refund_fully", "refunded"),
    ],
)
def test_legal_transitions(current, action, after):
    assert domain.transition(current, action) == after


@pytest.mark.parametrize(
    "current,action",
    [
        ("created", "ship"),
        ("paid", "pay"),
        ("expired", "pay"),
        ("completed", "refund_fully"),
        ("shipped", "cancel"),
        ("received", "ship"),
        ("cancelled", "receive"),
    ],
)
def test_illegal_transition_is_a_conflict_naming_the_current_state(current, action):
    with pytest.raises(Conflict) as err:
        domain.transition(current, action)
    assert err.value.details["status"] == current


def test_unpaid_order_expires_after_the_configured_minutes():
    rules = domain.OrderRules.from_config({"unpaid_expiry_minutes": "30"})
    exp = domain.expires_at(NOW, rules)
    assert not domain.is_expired(exp, NOW + timedelta(minutes=29))
    assert domain.is_expired(exp, NOW + timedelta(minutes=30))


def test_rules_defaults_match_product_md():
    r = domain.OrderRules()
    assert (
        r.attribution_window_days,
        r.unpaid_expiry_minutes,
        r.auto_confirm_days,
        r.after_sales_days,
    ) == (7, 30, 10, 15)


# --- checkout -------------------------------------------------------------------------------
def test_cart_splits_into_one_order_per_supplier_priced_by_the_catalog():
    products = {1: product(1, 7, price=1990), 2: product(2, 8, price=500), 3: product(3, 7)}
    lines = domain.merge_lines(
        [
            {"product_id": 1, "quantity": 2},
            {"product_id": 2, "quantity": 1},
            {"product_id": 3, "quantity": 1},
            {"product_id": 1, "quantity": 1},
        ]
    )
    domain.check_products(lines, products, domain.OrderRules())
    orders = domain.split_by_supplier(lines, products)
    by_supplier = {o["supplier_id"]: o for o in orders}
    assert set(by_supplier) == {7, 8}
    assert by_supplier[7]["total_fen"] == 3 * 1990 + 1000
    assert by_supplier[8]["total_fen"] == 500
    assert by_supplier[7]["items"][0]["commission_bps"] == 1000


def test_missing_product_is_422_and_unavailable_is_409():
    rules = domain.OrderRules()
    with pytest.raises(RuleViolation):
        domain.check_products([domain.Line(9, 1)], {}, rules)
    with pytest.raises(Conflict) as err:
        domain.check_products([domain.Line(1, 1)], {1: product(1, 7, available=False)}, rules)
    assert err.value.details[0]["reason"] == "unavailable"
    with pytest.raises(Conflict):
        domain.check_products([domain.Line(1, 11)], {1: product(1, 7, stock=10)}, rules)


# --- attribution ----------------------------------------------------------------------------
SHOP = {"id": 5, "member_id": 40, "shop_number": "123456", "status": "active"}


def test_active_shop_gets_the_order():
    a = domain.attribute(SHOP, buyer_id=41, share_id="s1", source="share_code")
    assert (a.shop_id, a.share_id, a.self_referral) == (5, "s1", False)


def test_keeper_buying_through_own_share_is_flagged_self_referral():
    a = domain.attribute(SHOP, buyer_id=40, share_id="s1", source="share_code")
    assert a.shop_id == 5 and a.self_referral is True


def test_inactive_shop_gets_no_attribution():
    a = domain.attribute({**SHOP, "status": "pending_verification"}, 41, "s1", "share_code")
    assert a.shop_id is None and a.share_id is None
    assert a.dropped_reason == "shop_pending_verification"


def test_attribution_window_starts_seven_days_back():
    assert domain.attribution_since(NOW, domain.OrderRules()) == NOW - timedelta(days=7)


# --- payments -------------------------------------------------------------------------------
def test_payment_applies_once_and_checks_the_amount():
    assert domain.payment_decision("created", 1000, 1000, already_seen=False) == domain.APPLY
    assert domain.payment_decision("paid", 1000, 1000, already_seen=True) == domain.DUPLICATE
    with pytest.raises(RuleViolation):
        domain.payment_decision("created", 999, 1000, already_seen=False)


def test_late_payment_for_expired_order_is_not_applied():
    assert domain.payment_decision("expired", 1000, 1000, already_seen=False) == domain.LATE
    assert domain.payment_decision("paid", 1000, 1000, already_seen=False) == domain.LATE


# --- refunds --------------------------------------------------------------------------------
def test_refund_never_above_paid_minus_approved_and_pending():
    domain.check_refund_request("paid", 400, 1000, approved_fen=300, pending_fen=300)
    with pytest.raises(RuleViolation):
        domain.check_refund_request("paid", 401, 1000, approved_fen=300, pending_fen=300)
    with pytest.raises(RuleViolation):
        domain.check_refund_request("shipped", 0, 1000, 0, 0)


def test_no_refund_after_completed_or_before_payment():
    with pytest.raises(Conflict) as err:
        domain.check_refund_request("completed", 1, 1000, 0, 0)
    assert err.value.code == "after_sales_closed"
    with pytest.raises(Conflict):
        domain.check_refund_request("created", 1, 1000, 0, 0)


def test_full_refund_marks_refunded_partial_keeps_status():
    assert domain.status_after_refund("shipped", 1000, 400) == "shipped"
    assert domain.status_after_refund("shipped", 1000, 1000) == "refunded"
    assert domain.refund_returns_stock("paid", True) is True
    assert domain.refund_returns_stock("shipped", True) is False
    assert domain.refund_returns_stock("paid", False) is False


def test_a_decided_refund_cannot_be_decided_again():
    with pytest.raises(Conflict):
        domain.check_refund_decision("approved")


# --- access ---------------------------------------------------------------------------------
ORDER = {"id": 5, "buyer_id": 41, "supplier_id": 7, "keeper_member_id": 40}


def test_buyer_keeper_and_supplier_see_the_order_others_do_not():
    assert domain.viewer_relation(ORDER, "member", "41") == "buyer"
    assert domain.viewer_relation(ORDER, "member", "40") == "keeper"
    assert domain.viewer_relation(ORDER, "supplier", "7") == "supplier"
    # not theirs: the very 404 of a missing order (or of the refund asked through it)
    with pytest.raises(NotFound) as member:
        domain.viewer_relation(ORDER, "member", "99")
    assert member.value.envelope() == not_found("order", 5).envelope()
    with pytest.raises(NotFound) as supplier:
        domain.viewer_relation(ORDER, "supplier", "8", ("refund", 12))
    assert supplier.value.envelope() == not_found("refund", 12).envelope()


def test_keeper_sees_the_buyer_phone_masked():
    masked = domain.masked_address(
        {"name": "张三", "phone": "13812345678", "line": "上海市某路1号"}
    )
    assert masked["phone"] == "138****5678"
    assert masked["name"] == "张*"
    assert "1号" not in masked["line"]


def test_auto_receive_and_completion_cutoffs_follow_the_configured_days():
    rules = domain.OrderRules.from_config({"auto_confirm_days": 10, "after_sales_days": 15})
    assert domain.shipped_before_auto_receive(NOW, rules) == NOW - timedelta(days=10)
    assert domain.received_before_completion(NOW, rules) == NOW - timedelta(days=15)
    received = NOW - timedelta(days=15)
    assert domain.after_sales_closes(received, rules) == NOW


# --- the sandbox payment provider -----------------------------------------------------------
def test_sandbox_callback_verifies_only_with_the_right_signature():
    from orders.payments import SandboxProvider
    from shared.errors import Unauthorized

    provider = SandboxProvider("s3cret")
    raw, sig = provider.build_callback(12, 3980, "pay-1")
    assert provider.verify(raw, sig)["amount_fen"] == 3980
    with pytest.raises(Unauthorized):
        provider.verify(raw, None)
    with pytest.raises(Unauthorized):
        SandboxProvider("other").verify(raw, sig)
    with pytest.raises(Unauthorized):
        provider.verify(raw.replace(b"3980", b"1"), sig)
    assert provider.refund("pay-1", 100, "r1") == provider.refund("pay-1", 100, "r1")


def test_a_refund_naming_no_items_is_spread_by_what_is_left_largest_remainder():
    assert domain.spread_refund(100, {1: 100, 2: 100, 3: 100}) == {1: 34, 2: 33, 3: 33}
    assert domain.spread_refund(5000, {1: 2000, 2: 5000}) == {1: 1429, 2: 3571}
    assert domain.spread_refund(700, {1: 2000, 2: 0}) == {1: 700}
    # never more than what is left of an item, and always the whole amount
    left = {1: 3, 2: 7, 3: 1}
    for amount in range(0, 12):
        shares = domain.spread_refund(amount, left)
        assert sum(shares.values()) == amount
        assert all(shares[p] <= left[p] for p in shares)


def test_named_refund_items_are_checked_against_the_order():
    left = {1: 2000, 2: 5000}
    assert domain.refund_items(5000, [{"product_id": 2, "amount_fen": 5000}], left) == {2: 5000}
    with pytest.raises(RuleViolation) as exc:
        domain.refund_items(
            10, [{"product_id": 1, "amount_fen": 5}, {"product_id": 1, "amount_fen": 5}], left
        )
    assert [d["rule"] for d in exc.value.details] == ["item_once"]
