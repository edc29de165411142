"""The catalog fixture: the real catalog service behind the real gateway."""

import pytest
from catalog_support import Catalog


@pytest.fixture
def catalog(gateway, start_service):
    container = start_service("catalog", RULES={"reservation_sweep_seconds": 0.3})
    return Catalog(gateway, container)
