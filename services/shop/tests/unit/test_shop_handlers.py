"""Shop command handlers through a fake unit of work (in-memory SQLite, events recorded): no
server, no broker (cosmicpython's tests/unit/test_handlers.py)."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from shared import clock
from shared.contracts.events import ProductSnapshot
from shared.contracts.shop import MemberIn, SelectionIn, ShopIn, ShopPatch, ShopQuotaIn
from shared.errors import Conflict, NotFound, RuleViolation
from shared.testing import FakeUnitOfWork
from shop import queries
from shop.domain import ShopRules
from shop.handlers import LostRace, levels, members, read_model, selections, shops
from shop.identity import IdentityStanding, SandboxIdentityCheck
from shop.models import Base, Shop

RULES = ShopRules()


@pytest.fixture
def uow():
    return FakeUnitOfWork(Base.metadata)


def member(uow, phone="13800138000", credit=750, real=True, rules=RULES) -> dict:
    return members.register_member(
        uow,
        rules,
        MemberIn(nickname="阿花", phone=phone),
        IdentityStanding(credit, real),
    )


def keeper(member_id: int) -> dict:
    return {"role": "member", "sub": str(member_id)}


def active_shop(uow, phone="13800138000", rules=RULES) -> dict:
    m = member(uow, phone=phone, rules=rules)
    shop = shops.open_shop(uow, rules, m["id"], ShopIn(name="阿花的好物"))
    return shops.verify_shop(uow, rules, SandboxIdentityCheck(), keeper(m["id"]), shop["id"])


def listed(uow, product_id: int, **over) -> None:
    data = {
        "product_id": product_id,
        "supplier_id": 7,
        "title": f"好物 {product_id}",
        "category": "food_health",
        "price_fen": 1990,
        "commission_bps": 1500,
        "stock": 50,
        "status": "listed",
        "available": True,
        **over,
    }
    event = {"id": f"e-{product_id}-{len(uow.claimed)}", "occurred_at": clock.iso(clock.now())}
    read_model.product_event(uow, event, "on_product_listed", ProductSnapshot(**data))


def event_types(uow) -> list[str]:
    return [t for t, _ in uow.events]


# --- members and shops --------------------------------------------------------------------------
def test_opening_and_verifying_a_shop_emits_shop_opened_then_shop_activated(uow):
    m = member(uow)
    shop = shops.open_shop(uow, RULES, m["id"], ShopIn(name="阿花的好物", description="每天一款"))
    assert (shop["status"], shop["display_name"], shop["level"]) == (
        "pending_verification",
        "阿花的好物小铺",
        "newcomer",
    )
    assert len(shop["shop_number"]) == 6 and shop["shop_number"].isdigit()
    assert uow.events == [
        (
            "shop_opened",
            {
                "shop_id": shop["id"],
                "member_id": m["id"],
                "shop_number": shop["shop_number"],
                "display_name": "阿花的好物小铺",
                "status": "pending_verification",
                "level": "newcomer",
                "verification_ref": None,
                "keeper_phone_fp": None,  # no Fingerprinter given: no fingerprints
                "keeper_address_fp": None,
            },
        )
    ]
    active = shops.verify_shop(uow, RULES, SandboxIdentityCheck(), keeper(m["id"]), shop["id"])
    assert active["status"] == "active"
    assert event_types(uow) == ["shop_opened", "shop_activated"]
    activated = uow.events[1][1]
    assert activated["status"] == "active"
    assert activated["verification_ref"] == f"sandbox-{shop['id']}-{m['id']}"
    # verifying again changes nothing and emits nothing
    shops.verify_shop(uow, RULES, SandboxIdentityCheck(), keeper(m["id"]), shop["id"])
    assert event_types(uow) == ["shop_opened", "shop_activated"]
    assert uow.committed is False  # handlers never commit: the entrypoint's unit of work does


def test_a_member_under_700_opens_nothing_and_emits_nothing(uow):
    m = member(uow, credit=699)
    with pytest.raises(RuleViolation) as refused:
        shops.open_shop(uow, RULES, m["id"], ShopIn(name="阿花的好物"))
    assert [d["rule"] for d in refused.value.details] == ["credit_score_too_low"]
    assert uow.events == []


def test_the_shop_quota_holds_until_an_admin_grants_more(uow):
    m = member(uow)
    shops.open_shop(uow, RULES, m["id"], ShopIn(name="第一家"))
    with pytest.raises(RuleViolation) as refused:
        shops.open_shop(uow, RULES, m["id"], ShopIn(name="第二家"))
    assert [d["rule"] for d in refused.value.details] == ["shop_quota_reached"]
    assert members.grant_shop_quota(uow, RULES, m["id"], ShopQuotaIn(quota=2))["shop_quota"] == 2
    shops.open_shop(uow, RULES, m["id"], ShopIn(name="第二家"))
    assert queries.get_member(uow.session, RULES, m["id"])["shops_owned"] == 2
    assert event_types(uow) == ["shop_opened", "shop_opened"]


def test_a_phone_registers_once(uow):
    member(uow, phone="13800138000")
    with pytest.raises(Conflict) as taken:
        member(uow, phone="138-0013-8000")
    assert taken.value.code == "phone_taken"


def test_a_keeper_never_edits_another_keepers_shop(uow):
    shop = active_shop(uow)
    stranger = member(uow, phone="13900139000")
    with pytest.raises(NotFound, match=f"shop {shop['id']} not found"):  # as if missing
        shops.update_shop(uow, RULES, keeper(stranger["id"]), shop["id"], ShopPatch(name="抢走"))
    admin = {"role": "admin", "sub": "admin"}
    edited = shops.update_shop(uow, RULES, admin, shop["id"], ShopPatch(name="新名字"))
    assert edited["display_name"] == "新名字小铺"


# --- selections ---------------------------------------------------------------------------------
def test_a_shop_refuses_the_pick_past_its_configured_limit(uow):
    rules = ShopRules(max_products_per_shop=3)  # the 1,000-pick rule, with a small limit
    shop = active_shop(uow, rules=rules)
    actor = keeper(shop["member_id"])
    for pid in range(1, 5):
        listed(uow, pid)
    for pid in range(1, 4):
        picked = selections.select_product(uow, rules, actor, shop["id"], pid, SelectionIn())
        assert picked["selected"] is True
    with pytest.raises(RuleViolation) as refused:
        selections.select_product(uow, rules, actor, shop["id"], 4, SelectionIn())
    assert refused.value.details[0]["rule"] == "selection_limit"
    assert refused.value.details[0]["limit"] == 3
    assert queries.get_shop(uow.session, rules, shop["id"])["selection_count"] == 3
    # editing a pick's reason is not a new pick
    edited = selections.select_product(uow, rules, actor, shop["id"], 3, SelectionIn(reason="好"))
    assert edited["reason"] == "好"
    # removing one frees a slot
    selections.unselect_product(uow, actor, shop["id"], 1)
    selections.select_product(uow, rules, actor, shop["id"], 4, SelectionIn())
    changes = [(d["product_id"], d["selected"]) for t, d in uow.events if t == "selection_changed"]
    assert changes == [(1, True), (2, True), (3, True), (3, True), (1, False), (4, True)]
    assert queries.get_shop(uow.session, rules, shop["id"])["selection_count"] == 3


def test_only_listed_products_are_picked_and_only_by_the_keeper(uow):
    shop = active_shop(uow)
    listed(uow, 1, status="delisted", available=False)
    listed(uow, 2)
    with pytest.raises(RuleViolation) as refused:
        selections.select_product(
            uow, RULES, keeper(shop["member_id"]), shop["id"], 1, SelectionIn()
        )
    assert refused.value.details[0]["rule"] == "product_not_listed"
    stranger = member(uow, phone="13900139000")
    with pytest.raises(NotFound, match=f"shop {shop['id']} not found"):
        selections.select_product(uow, RULES, keeper(stranger["id"]), shop["id"], 2, SelectionIn())
    assert "selection_changed" not in event_types(uow)


def test_unpicking_what_was_not_picked_emits_nothing(uow):
    shop = active_shop(uow)
    selections.unselect_product(uow, keeper(shop["member_id"]), shop["id"], 42)
    assert "selection_changed" not in event_types(uow)


# --- the catalog read model ---------------------------------------------------------------------
def test_product_events_apply_once_and_the_newest_snapshot_wins(uow):
    snap = ProductSnapshot(
        product_id=5,
        supplier_id=7,
        title="新",
        category="food_health",
        price_fen=100,
        commission_bps=1000,
        stock=1,
        status="listed",
        available=True,
    )
    newer = {"id": "a", "occurred_at": "2026-10-02T00:00:00Z"}
    assert read_model.product_event(uow, newer, "on_product_changed", snap)
    assert not read_model.product_event(uow, newer, "on_product_changed", snap)  # same id
    older = {"id": "b", "occurred_at": "2026-10-01T00:00:00Z"}
    stale = snap.model_copy(update={"title": "旧"})
    assert not read_model.product_event(uow, older, "on_product_listed", stale)
    assert queries.get_selection(uow.session, 1, 5)["title"] == "新"


# --- levels -------------------------------------------------------------------------------------
def test_a_month_of_sales_emits_level_changed_with_the_bonus_from_shop_rules(uow):
    clock.set_now(datetime(2026, 11, 3, tzinfo=UTC))
    rules = ShopRules(level_bonus_bps_senior=80)  # shop owns the bonus: the event carries it
    s1 = active_shop(uow, phone="13800138001", rules=rules)
    s2 = active_shop(uow, phone="13800138002", rules=rules)
    s3 = active_shop(uow, phone="13800138003", rules=rules)
    sales = {str(s1["id"]): 150_000, str(s2["id"]): 2_000_000, str(s3["id"]): 500}
    result = levels.recalculate(uow, rules, "2026-10", sales)
    # the changes (and their events) come in shop id order
    assert result["changes"] == sorted(
        [
            {"shop_id": s1["id"], "old_level": "newcomer", "new_level": "senior", "bonus_bps": 80},
            {"shop_id": s2["id"], "old_level": "newcomer", "new_level": "elite", "bonus_bps": 100},
        ],
        key=lambda change: change["shop_id"],
    )
    assert (result["month"], result["shops_considered"], result["replayed"]) == (
        "2026-10",
        3,
        False,
    )
    assert [d for t, d in uow.events if t == "level_changed"] == [
        {"month": "2026-10", **change} for change in result["changes"]
    ]
    assert queries.get_shop(uow.session, rules, s1["id"])["level_bonus_bps"] == 80
    assert queries.level_record(uow.session, "2026-10")["changes"] == result["changes"]


def test_a_month_is_recorded_once(uow):
    clock.set_now(datetime(2026, 11, 3, tzinfo=UTC))
    active_shop(uow)
    levels.recalculate(uow, RULES, "2026-10", {})
    with pytest.raises(LostRace) as lost:
        levels.recalculate(uow, RULES, "2026-10", {})
    assert isinstance(lost.value.public, Conflict)


def test_levels_of_an_unfinished_month_are_refused(uow):
    clock.set_now(datetime(2026, 11, 3, tzinfo=UTC))
    with pytest.raises(RuleViolation):
        levels.recalculate(uow, RULES, "2026-11", {})
    assert uow.events == []


def test_the_pick_and_quota_slots_are_taken_in_sql_even_when_the_row_read_is_behind(uow):
    """A concurrent pick or opening moved the counter after this transaction read it: the
    conditional UPDATE (the same test as the domain rule) still refuses the slot past the limit."""
    rules = ShopRules(max_products_per_shop=3)
    shop = active_shop(uow, rules=rules)
    uow.session.execute(update(Shop).values(selection_count=2))
    assert selections.take_pick_slot(uow.session, shop["id"], rules) is True  # 2 → 3
    assert selections.take_pick_slot(uow.session, shop["id"], rules) is False  # 3 is the limit
    member_row = queries.load_member(uow.session, shop["member_id"])
    assert member_row.shops_owned == 1
    assert shops.take_quota_slot(uow.session, member_row, 1) is False
    assert shops.take_quota_slot(uow.session, member_row, 2) is True
    assert queries.load_member(uow.session, shop["member_id"]).shops_owned == 2
