"""The share service's command handlers through a fake unit of work (no broker, no database
server; catalog and shop are plain objects): creating a share, recording visits, the stats
read model (cosmicpython tests/unit/test_handlers.py)."""

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from share.handlers import facts, posters, shares, stats, visits
from share.models import Base, PosterCache, Share, Visit
from share.queries import visits as visit_queries
from share.queries.shares import Remote, facts_from, share_out
from share.runtime import State
from shared import clock
from shared.contracts.events import OrderPaid, ShareVisitsRecorded
from shared.contracts.share import CreateShare
from shared.errors import Conflict, NotFound, RuleViolation
from shared.testing import FakeUnitOfWork
from shared.validation import not_found

KEEPER = 12
T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # 09:00 in China: stats day 2026-11-24


@pytest.fixture
def uow():
    return FakeUnitOfWork(Base.metadata)


@pytest.fixture
def state():
    return State({"SHARE_FONT_PATH": ""})


class FakeDb:
    """``db.read()`` over the fake unit of work's session (what queries open)."""

    def __init__(self, uow):
        self.uow = uow

    @contextmanager
    def read(self):
        yield self.uow.session


class FakeShop:
    def __init__(self, status="active", member_id=KEEPER, selected=True, available=True):
        self.shop = {
            "id": 7,
            "member_id": member_id,
            "shop_number": "100007",
            "display_name": "阿花小铺",
            "status": status,
        }
        self.selected, self.available = selected, available

    def get_shop(self, shop_id):
        if shop_id != 7:
            raise not_found("shop", shop_id)  # what the shop service answers
        return dict(self.shop)

    def get_selection(self, shop_id, product_id):
        return {"selected": self.selected, "reason": "回甘很好", "available": self.available}


class FakeCatalog:
    def __init__(self, available=True):
        self.available = available

    def get_product(self, product_id):
        if product_id != 101:
            raise NotFound(f"product {product_id} not found")
        return {
            "id": 101,
            "title": "云南滇红",
            "price_fen": 3990,
            "status": "listed",
            "available": self.available,
            "image_ref": None,
            "image_url": None,
        }


def remote(**shop):
    catalog_available = shop.pop("catalog_available", True)
    return Remote(catalog=FakeCatalog(catalog_available), shop=FakeShop(**shop))


def command(**over):
    body = {"member_id": KEEPER, "shop_id": 7, "product_id": 101, "fresh": False}
    body.update(over)
    return CreateShare(**body)


def visit(share, visitor_id="visitor-0001", kind="landing", client="203.0.113.1", **over):
    v = {
        "share_id": share["id"],
        "shop_id": share["shop_id"],
        "product_id": share["product_id"],
        "visitor_id": visitor_id,
        "client": client,
        "kind": kind,
        "new_visitor": False,
        "age_ms": 0,
    }
    v.update(over)
    return v


# --- shares ---------------------------------------------------------------------------------
def test_the_keeper_shares_a_selected_product_and_gets_the_copy_with_its_code(uow, state):
    checked = shares.check_shareable(remote(), command())
    share = shares.share_for(uow, command())

    out = share_out(
        state,
        share,
        facts_from(share, checked.shop, checked.product, checked.selection),
        "http://x",
    )

    assert out["url"] == f"http://x/s/{share['code']}"
    assert f"￥{share['code']}￥" in out["copy_text"] + out["copy_comment"]
    assert "¥39.90" in out["copy_text"] and "阿花小铺" in out["copy_text"]
    assert uow.session.get(Share, share["id"]).member_id == KEEPER
    assert not uow.committed  # handlers never commit


def test_the_same_shop_and_product_reuse_their_share_unless_fresh(uow):
    first = shares.share_for(uow, command())
    again = shares.share_for(uow, command())
    fresh = shares.share_for(uow, command(fresh=True))
    assert again == first
    assert fresh["id"] != first["id"] and fresh["code"] != first["code"]


@pytest.mark.parametrize(
    ("world", "error"),
    [
        ({"member_id": 99}, NotFound),  # not the keeper: as if the shop did not exist
        ({"status": "pending_verification"}, Conflict),  # shop not active
        ({"selected": False}, RuleViolation),  # not selected
        ({"catalog_available": False}, Conflict),  # sold out or delisted
    ],
)
def test_only_the_keeper_of_an_active_shop_shares_a_selected_available_product(world, error):
    with pytest.raises(error):
        shares.check_shareable(remote(**world), command())


def test_an_unknown_product_cannot_be_shared():
    with pytest.raises(RuleViolation) as exc:
        shares.check_shareable(remote(), command(product_id=404))
    assert exc.value.details[0]["rule"] == "product_exists"


# --- visits ---------------------------------------------------------------------------------
def test_visits_are_buffered_then_recorded_and_announced_in_one_event(uow, state, monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: T0)
    share = shares.share_for(uow, command())
    visits.buffer(state, [visit(share, f"visitor-{i:04d}") for i in range(3)])
    assert len(state.pending_visits()) == 3

    counted, throttled = visits.admit(state, state.take_visits())
    written = visits.record(uow, state.rules.stats_utc_offset_hours, counted)
    state.flushed()

    assert (written, throttled) == (3, 0) and state.pending_visits() == []
    assert uow.session.query(Visit).count() == 3
    assert [t for t, _ in uow.events] == ["share_visits_recorded"]
    announced = ShareVisitsRecorded.model_validate(uow.events[0][1])
    assert [v.visitor_id for v in announced.visits] == [
        "visitor-0000",
        "visitor-0001",
        "visitor-0002",
    ]
    assert announced.visits[0].at == "2026-11-24T01:00:00Z"


def test_a_visitor_hammering_a_page_is_counted_only_for_the_burst(uow, state):
    share = shares.share_for(uow, command())
    visits.buffer(state, [visit(share) for _ in range(20)])
    counted, throttled = visits.admit(state, state.take_visits())
    assert len(counted) == state.rules.visitor_burst and throttled == 20 - len(counted)


def test_visits_whose_write_failed_are_not_throttled_twice(state):
    share = {"id": "s1", "shop_id": 7, "product_id": 101}
    visits.buffer(state, [visit(share) for _ in range(5)])
    counted, _ = visits.admit(state, state.take_visits())
    state.return_visits(counted)  # the database was away
    again, throttled = visits.admit(state, state.take_visits())
    assert len(again) == 5 and throttled == 0


def test_last_visit_is_the_newest_share_opened_within_the_callers_window(uow, state, monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: T0)
    first = shares.share_for(uow, command())
    second = shares.share_for(uow, command(fresh=True))
    visits.buffer(state, [visit(first, age_ms=60_000), visit(second, kind="scan")])
    counted, _ = visits.admit(state, state.take_visits())
    visits.record(uow, 8, counted)
    state.flushed()
    db = FakeDb(uow)

    last = visit_queries.last_visit(db, state, "visitor-0001", T0 - timedelta(days=7))
    assert (last["share_id"], last["kind"]) == (second["id"], "scan")
    assert visit_queries.last_visit(db, state, "visitor-0001", T0 + timedelta(seconds=1)) is None
    assert visit_queries.last_visit(db, state, "someone-else", T0 - timedelta(days=7)) is None


# --- stats ----------------------------------------------------------------------------------
def paid(order_id=5001, shop_id=7, share_id=None, paid_fen=7980):
    return OrderPaid(
        order_id=order_id,
        buyer_id=3,
        supplier_id=1,
        shop_id=shop_id,
        share_id=share_id,
        self_referral=False,
        paid_fen=paid_fen,
        lines=[],
        paid_at="2026-11-24T03:00:00Z",
    )


def test_paid_orders_feed_the_stats_once_each(uow, state, monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: T0)
    share = shares.share_for(uow, command())
    visits.record(uow, 8, [visit(share, at=T0), visit(share, "visitor-0002", at=T0)])
    event = {"id": "e-1", "type": "order_paid"}

    assert stats.orders_paid(uow, 8, [(event, paid(share_id=share["id"]))]) == 1
    assert stats.orders_paid(uow, 8, [(event, paid(share_id=share["id"]))]) == 0  # redelivered
    batch = [
        ({"id": "e-2"}, paid(order_id=5002, paid_fen=100)),
        ({"id": "e-3"}, paid(order_id=5003, shop_id=None)),  # no shop: not counted
        ({"id": "e-2"}, paid(order_id=5002, paid_fen=100)),  # redelivered within the batch
    ]
    assert stats.orders_paid(uow, 8, batch) == 1

    result = visit_queries.shop_stats(uow.session, 8, 7, None, None)
    assert result["totals"] == {
        "visits": 2,
        "orders": 2,
        "gmv_fen": 8080,
        "conversion": 1.0,
        "scans": 0,
        "opens": 2,  # two landing visits
        "pastes": 0,
    }
    assert [d["day"] for d in result["by_day"]] == ["2026-11-24"]
    by_share = {s["share_id"]: s for s in result["by_share"]}
    assert (by_share[share["id"]]["orders"], by_share[share["id"]]["gmv_fen"]) == (1, 7980)
    assert by_share[None]["orders"] == 1
    assert visit_queries.shop_stats(uow.session, 8, 7, "2026-11-25", None)["totals"]["orders"] == 0


# --- cached facts and posters ---------------------------------------------------------------
def test_a_product_event_drops_the_cached_facts_of_its_shares_only(uow, state):
    tea = {"id": "s1", "code": "AAAAAAAAAAAA", "shop_id": 7, "product_id": 101}
    cup = {"id": "s2", "code": "BBBBBBBBBBBB", "shop_id": 7, "product_id": 102}
    for share in (tea, cup):
        state.keep_facts(share, {"share_id": share["id"]})

    dropped = facts.forget(uow, state, {"id": "e-9", "type": "product_changed"}, "h", 101)

    assert dropped == 1
    assert state.cached_facts(tea) is None and state.cached_facts(cup) is not None
    assert ("e-9", "h") in uow.claimed


def test_a_rendered_poster_is_remembered_once(uow):
    posters.remember(uow, "k" * 64, "classic", b"jpeg")
    posters.remember(uow, "k" * 64, "classic", b"jpeg")  # rendered twice concurrently
    assert uow.session.query(PosterCache).count() == 1
