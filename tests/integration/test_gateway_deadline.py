"""The gateway is where a request's deadline is born (shared/rpc.py): each RPC it makes carries
``xp_deadline`` = now + its timeout (``XIAOPU_RPC_TIMEOUT``, 5 s in the fixture, or the route's
own), so the service it calls knows how long the gateway will wait and gives up before it."""

import requests
from nameko.rpc import rpc

from shared.rpc import Deadline


class CatalogProbe:
    """Stands in for catalog: answers how much of the caller's deadline it was given."""

    name = "catalog"
    deadline = Deadline()

    @rpc
    def echo(self, payload=None):
        return {"payload": payload, "remaining": self.deadline.remaining()}

    @rpc
    def health(self):
        return {"status": "ok", "remaining": self.deadline.remaining()}


def test_the_gateway_passes_its_deadline_on_to_the_service(
    gateway, container_factory, rabbit_config
):
    container_factory(CatalogProbe, {"AMQP_URI": rabbit_config["AMQP_URI"]}).start()

    echoed = requests.get(f"{gateway.url}/api/v1/echo?q=hi", timeout=10)
    assert echoed.status_code == 200, echoed.text
    remaining = echoed.json()["echo"]["remaining"]
    assert remaining is not None, "no deadline reached the service"
    assert 3.0 < remaining <= 5.0  # XIAOPU_RPC_TIMEOUT, minus the trip

    health = requests.get(f"{gateway.url}/api/v1/health", timeout=10)
    remaining = health.json()["detail"]["catalog"]["remaining"]
    assert remaining is not None and 0 < remaining <= 2.0  # the health route's own 2 s
