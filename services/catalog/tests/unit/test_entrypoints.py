"""Entrypoints refuse malformed RPC payloads before touching the database (worker_factory)."""

import pytest
from nameko.testing.services import worker_factory

from catalog.service import CatalogService
from shared.errors import NotFound, ValidationFailed


@pytest.fixture
def service():
    return worker_factory(CatalogService, config={"RULES": {}})


def test_a_supplier_payload_with_a_string_capital_is_refused_naming_the_field(service):
    with pytest.raises(ValidationFailed) as exc:
        service.register_supplier(
            {
                "name": "x",
                "registered_capital_fen": "100",
                "general_taxpayer": True,
                "contact": {"phone": "123"},
            }
        )
    assert [d["field"] for d in exc.value.details] == ["registered_capital_fen"]
    service.db.unit_of_work.assert_not_called()


def test_a_deposit_must_be_a_positive_integer(service):
    for amount in (0, -5, 1.5, "10"):
        with pytest.raises(ValidationFailed):
            service.pay_deposit(1, amount)
    service.db.unit_of_work.assert_not_called()


def test_a_reservation_needs_lines_with_positive_quantities(service):
    for items in ([], [{"product_id": 1, "quantity": 0}], [{"product_id": "a", "quantity": 1}]):
        with pytest.raises(ValidationFailed):
            service.reserve_stock("r", items)
    service.db.unit_of_work.assert_not_called()


def test_a_non_numeric_id_is_simply_not_found(service):
    with pytest.raises(NotFound):
        service.get_supplier("abc")
    with pytest.raises(NotFound):
        service.get_product("../etc")


def test_get_products_wants_a_list(service):
    with pytest.raises(ValidationFailed):
        service.get_products("1,2,3")


def test_a_patch_cannot_empty_a_required_product_field(service):
    with pytest.raises(ValidationFailed) as exc:
        service.update_product(1, {"title": None, "price_fen": None, "brand": None}, 1)
    assert [d["field"] for d in exc.value.details] == ["title", "price_fen"]
