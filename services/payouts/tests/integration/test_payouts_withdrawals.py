"""Payee accounts, withdrawals and income-tax withholding on the real services (shop, catalog,
payouts, gateway) over HTTP, with the real PostgreSQL and RabbitMQ. Commission reaches the
keepers through orders' events (dispatched here as orders would send them) and a settlement run.
"""

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import eventlet
import pytest
import requests
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import select, text

from payouts.domain import business_day
from payouts.models import SandboxTransfer
from shared import clock
from shared.config import load_config
from shared.db import make_engine
from shared.testing import wait_for

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
CARD = "6222021234567894"  # passes the Luhn check
_phones = itertools.count(13700003000)
_orders = itertools.count(700001)


def envelope(event_type, data):
    return {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "version": 1,
        "source": "test",
        "occurred_at": T0.isoformat(),
        "correlation_id": None,
        "data": data,
    }


def order_paid(order_id, shop_id, amount, bps=1000):
    line = {
        "product_id": 1,
        "title": "茶",
        "quantity": 1,
        "unit_price_fen": amount,
        "amount_fen": amount,
        "commission_bps": bps,
    }
    return envelope(
        "order_paid",
        {
            "order_id": order_id,
            "buyer_id": 9,
            "supplier_id": 77,
            "shop_id": shop_id,
            "share_id": None,
            "self_referral": False,
            "paid_fen": amount,
            "lines": [line],
            "paid_at": T0.isoformat(),
        },
    )


def order_completed(order_id, shop_id):
    return envelope(
        "order_completed",
        {
            "order_id": order_id,
            "supplier_id": 77,
            "shop_id": shop_id,
            "status": "completed",
            "at": (T0 + timedelta(days=16)).isoformat(),
        },
    )


class Platform:
    def __init__(self, gateway, payouts, config):
        self.gw = gateway
        self.payouts = payouts
        self.dispatch = event_dispatcher(config)
        self.config = config
        self.engine = make_engine(payouts.config["DATABASE_URL"])

    def url(self, path):
        return f"{self.gw.url}{path}"

    def keeper(self, real_name="王阿花"):
        """A verified member whose identity record carries ``real_name``, with an open shop."""
        member = requests.post(
            self.url("/api/v1/members"),
            json={
                "nickname": "阿花",
                "phone": str(next(_phones)),
                "credit_score": 750,
                "real_name_verified": True,
                "real_name": real_name,
            },
            timeout=10,
        )
        assert member.status_code == 201, member.text
        auth = {"Authorization": f"Bearer {member.json()['token']}"}
        shop = requests.post(
            self.url("/api/v1/shops"), json={"name": "阿花茶铺"}, headers=auth, timeout=10
        )
        assert shop.status_code == 201, shop.text
        return auth, shop.json()["id"]

    def register_payee(self, auth, real_name="王阿花"):
        resp = requests.put(
            self.url("/api/v1/me/payee"),
            json={"channel": "bank", "account": CARD, "real_name": real_name},
            headers=auth,
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        return resp.json()

    def earn(self, shop_id, commission_fen):
        """``commission_fen`` settleable for the shop: a paid, completed order, settled."""
        order_id = next(_orders)
        self.dispatch("orders", "order_paid", order_paid(order_id, shop_id, commission_fen * 10))
        self.dispatch("orders", "order_completed", order_completed(order_id, shop_id))
        admin = self.gw.headers("admin")

        def settled():
            requests.post(
                self.url("/api/v1/admin/settlements/run"), json={}, headers=admin, timeout=30
            )
            return self.earnings(shop_id)["settleable_fen"] >= commission_fen

        wait_for(settled)

    def earnings(self, shop_id):
        resp = requests.get(
            self.url(f"/api/v1/shops/{shop_id}/earnings"), headers=self.gw.headers("admin")
        )
        assert resp.status_code == 200, resp.text
        return resp.json()

    def withdraw(self, auth, shop_id, amount_fen, key=None):
        headers = {**auth, "Idempotency-Key": key or uuid.uuid4().hex}
        return requests.post(
            self.url(f"/api/v1/shops/{shop_id}/withdrawals"),
            json={"amount_fen": amount_fen},
            headers=headers,
            timeout=40,
        )

    def sandbox(self, **plan):
        with ServiceRpcProxy("payouts", self.config) as proxy:
            proxy.configure_sandbox(plan)

    def transfers(self, party_id):
        with self.engine.connect() as conn:
            return conn.execute(
                select(SandboxTransfer.idempotency_key, SandboxTransfer.amount_fen).where(
                    SandboxTransfer.party_kind == "keeper", SandboxTransfer.party_id == party_id
                )
            ).all()

    def books_balanced(self):
        books = requests.get(self.url("/api/v1/admin/books"), headers=self.gw.headers("admin"))
        return books.json()["balanced"]


def start(gateway, start_service, service_config, **payouts_rules):
    start_service("shop")
    start_service("catalog")
    rules = {**load_config("payouts")["RULES"], **payouts_rules}
    payouts = start_service("payouts", RULES=rules)
    platform = Platform(gateway, payouts, service_config("gateway"))
    yield platform
    platform.engine.dispose()


@pytest.fixture
def platform(gateway, start_service, service_config):
    yield from start(gateway, start_service, service_config)


@pytest.fixture
def taxed_platform(gateway, start_service, service_config):
    yield from start(gateway, start_service, service_config, tax_withholding=1)


def test_a_payee_must_carry_the_name_on_the_identity_record(platform):
    auth, _shop = platform.keeper(real_name="王阿花")
    mismatch = requests.put(
        platform.url("/api/v1/me/payee"),
        json={"channel": "alipay", "account": "13800138000", "real_name": "李四"},
        headers=auth,
        timeout=10,
    )
    assert mismatch.status_code == 422, mismatch.text
    assert mismatch.json()["error"]["code"] == "payee_name_mismatch"
    bad_card = requests.put(
        platform.url("/api/v1/me/payee"),
        json={"channel": "bank", "account": "6222021234567895", "real_name": "王阿花"},
        headers=auth,
        timeout=10,
    )
    assert bad_card.status_code == 422 and bad_card.json()["error"]["code"] == (
        "invalid_payee_account"
    )
    registered = platform.register_payee(auth, real_name="王 阿花")
    assert registered["account"] == "****7894" and CARD not in str(registered)
    changed = requests.put(
        platform.url("/api/v1/me/payee"),
        json={"channel": "alipay", "account": "ah@example.com", "real_name": "王阿花"},
        headers=auth,
        timeout=10,
    )
    assert changed.status_code == 200 and changed.json()["version"] == 2
    view = requests.get(platform.url("/api/v1/me/payee"), headers=auth, timeout=10).json()
    assert view["payee"]["channel"] == "alipay" and view["payee"]["account"] == "****.com"
    assert [(h["action"], h["account"]) for h in view["history"]] == [
        ("changed", "****.com"),
        ("registered", "****7894"),
    ]

    # a supplier's payee carries its registered name
    supplier = requests.post(
        platform.url("/api/v1/suppliers"),
        json={
            "name": "杭州茶叶有限公司",
            "registered_capital_fen": 200_000_000,
            "general_taxpayer": True,
            "brand_authorization_levels": 1,
            "contact": {"phone": "13800002222"},
        },
        timeout=10,
    )
    assert supplier.status_code == 201, supplier.text
    sup = {"Authorization": f"Bearer {supplier.json()['token']}"}
    other = requests.put(
        platform.url("/api/v1/me/payee"),
        json={"channel": "bank", "account": CARD, "real_name": "王阿花"},
        headers=sup,
        timeout=10,
    )
    assert other.status_code == 422 and other.json()["error"]["code"] == "payee_name_mismatch"
    own = requests.put(
        platform.url("/api/v1/me/payee"),
        json={"channel": "bank", "account": CARD, "real_name": "杭州茶叶有限公司"},
        headers=sup,
        timeout=10,
    )
    assert own.status_code == 200, own.text


def test_a_withdrawal_is_paid_once_when_repeated_timed_out_or_failed(platform):
    auth, shop = platform.keeper()
    refused = platform.withdraw(auth, shop, 1000)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "payee_account_required"
    platform.register_payee(auth)
    platform.earn(shop, 10000)

    # the same request twice (same Idempotency-Key): one withdrawal, one transfer
    first = platform.withdraw(auth, shop, 3000, key="wd-1")
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "paid" and first.json()["net_fen"] == 3000
    again = platform.withdraw(auth, shop, 3000, key="wd-1")
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert len(platform.transfers(shop)) == 1

    # the provider books the transfer and then times out: asking again with the same key
    platform.sandbox(timeout=f"keeper:{shop}")
    timed_out = platform.withdraw(auth, shop, 2000)
    assert timed_out.status_code == 201, timed_out.text
    assert timed_out.json()["status"] == "paid" and timed_out.json()["attempts"] == 2
    assert len(platform.transfers(shop)) == 2

    # refused by the provider: failed, the amount stays out of settleable, a retry pays once
    platform.sandbox(fail=f"keeper:{shop}")
    failed = platform.withdraw(auth, shop, 4000)
    assert failed.status_code == 201 and failed.json()["status"] == "failed"
    money = platform.earnings(shop)
    assert (money["settleable_fen"], money["in_transit_fen"]) == (1000, 4000)
    wid = failed.json()["id"]
    platform.sandbox()
    retry = f"/api/v1/shops/{shop}/withdrawals/{wid}/retry"
    for _ in range(2):
        paid = requests.post(platform.url(retry), headers=auth, timeout=40)
        assert paid.status_code == 200 and paid.json()["status"] == "paid", paid.text
    assert sorted(a for _, a in platform.transfers(shop)) == [2000, 3000, 4000]
    money = platform.earnings(shop)
    assert (money["settleable_fen"], money["in_transit_fen"], money["paid_fen"]) == (
        1000,
        0,
        9000,
    )

    listed = requests.get(
        platform.url(f"/api/v1/shops/{shop}/withdrawals"), headers=auth, timeout=10
    ).json()["items"]
    assert sorted(w["amount_fen"] for w in listed) == [2000, 3000, 4000]
    assert {w["status"] for w in listed} == {"paid"}
    history = requests.get(
        platform.url(f"/api/v1/shops/{shop}/payouts"), headers=auth, timeout=10
    ).json()["items"]
    assert len(history) == 3 and {h["kind"] for h in history} == {"withdrawal"}

    # another keeper cannot see or touch the shop's withdrawals: 404 as for no shop at all
    stranger, _ = platform.keeper(real_name="赵六")
    assert requests.post(platform.url(retry), headers=stranger, timeout=10).status_code == 404
    assert platform.withdraw(stranger, shop, 1000).status_code == 404
    assert platform.books_balanced()


def test_ten_withdrawals_together_never_exceed_the_balance(platform):
    auth, shop = platform.keeper()
    platform.register_payee(auth)
    platform.earn(shop, 10000)
    pool = eventlet.GreenPool(10)
    answers = list(pool.imap(lambda _: platform.withdraw(auth, shop, 3000), range(10)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 3 + [422] * 7, [a.text for a in answers]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 422} == {
        "insufficient_balance"
    }
    assert len(platform.transfers(shop)) == 3
    money = platform.earnings(shop)
    assert (money["settleable_fen"], money["paid_fen"]) == (1000, 9000)
    with platform.engine.connect() as conn:
        lowest = conn.execute(
            text(
                "SELECT min(running) FROM (SELECT sum(amount_fen) OVER (ORDER BY id) AS running"
                " FROM journal WHERE account = 'keeper_settleable' AND party_id = :shop) AS r"
            ),
            {"shop": shop},
        ).scalar_one()
    assert lowest >= 0  # settleable never went below zero, at any posting
    assert platform.books_balanced()


def test_withholding_on_every_payout_reconciles_and_runs_skip_manual_keepers(taxed_platform):
    p = taxed_platform
    auto_auth, auto_shop = p.keeper()
    manual_auth, manual_shop = p.keeper(real_name="钱七")
    p.register_payee(manual_auth, real_name="钱七")
    mode = requests.put(
        p.url(f"/api/v1/shops/{manual_shop}/payout-settings"),
        json={"payout_mode": "manual"},
        headers=manual_auth,
        timeout=10,
    )
    assert mode.status_code == 200 and mode.json()["payout_mode"] == "manual"
    p.earn(auto_shop, 500_000)  # 5,000 CNY
    p.earn(manual_shop, 300_000)  # 3,000 CNY

    run = requests.post(
        p.url("/api/v1/admin/payouts/run"), json={}, headers=p.gw.headers("admin"), timeout=60
    ).json()
    assert [x["shop_id"] for x in run["payouts"]] == [auto_shop]  # the manual keeper is skipped
    [paid] = run["payouts"]
    assert (paid["gross_fen"], paid["withheld_fen"], paid["net_fen"]) == (500_000, 80_000, 420_000)

    wd = p.withdraw(manual_auth, manual_shop, 300_000)
    assert wd.status_code == 201 and wd.json()["status"] == "paid", wd.text
    body = wd.json()
    assert (body["gross_fen"], body["withheld_fen"], body["net_fen"]) == (300_000, 44_000, 256_000)
    assert [a for _, a in p.transfers(manual_shop)] == [256_000]  # the provider sends the net

    for auth, shop in ((auto_auth, auto_shop), (manual_auth, manual_shop)):
        year = clock_year()
        statement = requests.get(
            p.url(f"/api/v1/shops/{shop}/tax-statements/{year}"), headers=auth, timeout=10
        ).json()
        assert statement["withholding"] is True and len(statement["payouts"]) == 1
        for payout in statement["payouts"]:
            assert payout["gross_fen"] == payout["withheld_fen"] + payout["net_fen"]
            assert payout["withheld_fen"] > 0
        assert statement["gross_fen"] == statement["withheld_fen"] + statement["net_fen"]
        assert p.earnings(shop)["tax_withheld_fen"] == statement["withheld_fen"]
    assert p.books_balanced()


def clock_year():
    """The tax year of payouts made now (China's calendar)."""
    return business_day(clock.now()).year
