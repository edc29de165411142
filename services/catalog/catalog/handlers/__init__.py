"""The catalog's command handlers, one module per seam: ``suppliers`` (register, deposit, suspend,
reinstate), ``products`` (list, change, delist, relist), ``gallery`` (the photos) and ``stock``
(reserve, commit, release). Each is a short function ``fn(uow, [rules,] command...) -> dict``
that loads rows, applies a rule of ``catalog.domain``, changes rows and emits contract events
through the unit of work; none of them commits (the entrypoint's unit of work does). Reads live
in ``catalog.queries``."""

from catalog.handlers import facts, gallery, products, stock, suppliers

__all__ = ["facts", "gallery", "products", "stock", "suppliers"]
