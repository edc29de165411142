"""An RPC whose arguments do not fit the method is answered IncorrectSignature (nameko's
contract), checked against a signature built once per entrypoint (``shared.rpc.DeadlineRpc``)."""

from __future__ import annotations

import pytest
from nameko.exceptions import IncorrectSignature
from nameko.standalone.rpc import ServiceRpcProxy

from shared.rpc import rpc

pytestmark = pytest.mark.integration


class Probe:
    name = "signature_probe"

    @rpc
    def add(self, a, b=1, *, scale=1):
        return (a + b) * scale


def test_arguments_that_do_not_fit_are_refused_and_fitting_ones_run(
    container_factory, rabbit_config
):
    container_factory(Probe, {"AMQP_URI": rabbit_config["AMQP_URI"]}).start()
    with ServiceRpcProxy("signature_probe", rabbit_config) as probe:
        assert probe.add(2) == 3
        assert probe.add(2, 3, scale=2) == 10  # the second call uses the signature kept
        # nameko gives the caller its own IncorrectSignature back (a registered exception)
        with pytest.raises(IncorrectSignature, match="missing a required argument: 'a'"):
            probe.add()
        with pytest.raises(IncorrectSignature, match="too many positional arguments"):
            probe.add(1, 2, 3)
        with pytest.raises(IncorrectSignature, match="unexpected keyword argument 'colour'"):
            probe.add(1, colour="red")
        assert probe.add(a=4) == 5
