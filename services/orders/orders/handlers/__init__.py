"""Command handlers of the orders service, one module per seam.

Each is a short function ``fn(uow, [rules,] command...)`` that changes rows and emits events
inside the unit of work it is given and never commits (the entrypoint in ``orders.service``
opens the unit of work). Calls to other services are passed in as arguments (``catalog``,
``shop``, ``share``: anything with their RPC methods), so every handler runs in a unit test.

- ``checkout``:  carts, prices and attribution, placing the orders, undoing a failed checkout
- ``payment``:   the provider's callback applied once; late payments refunded
- ``stock``:     stock reserved / committed / released at the catalog, retried by the timer
- ``lifecycle``: cancel, ship, confirm; expire, auto-confirm, complete (the timers)
- ``refunds``:   refund requests and the supplier's decision
- ``refund_deadlines``: past its deadline an undecided refund is approved or escalated
- ``common``:    the order lock, history rows, one state-machine step and its event
"""
