"""RPC to the domain services with a deadline: a service that is down answers 503, not a hang.

Every call goes through ``shared.rpc`` (``TimedCalls``): the gateway is where a request's
deadline is born — now + ``XIAOPU_RPC_TIMEOUT``, or the route's own longer timeout — and it
travels to the service in the nameko context (``xp_deadline``), so any call that service makes
in turn gives up before the gateway does.

Replies come back on the gateway's reply queue without acknowledgements (``NoAckReplies``):
nameko's ``ReplyListener`` acks every reply (one more frame and socket write per RPC, ~9% of the
gateway's CPU on checkout and pay) and hands it to a new green thread whose only work is to wake
the waiting caller. A reply queue is this process's own (exclusive to its listener, expiring
when it is gone): a reply the broker delivered and the process then lost — because it died —
has no caller left to answer, acked or not, so the ack buys nothing. Replies are handed over
inline (``Event.send`` does not block).
"""

from __future__ import annotations

from functools import partial

from nameko.messaging import QueueConsumer
from nameko.rpc import ReplyListener, RpcProxy

from shared.rpc import DEFAULT_TIMEOUT_SECONDS


class NoAckReplies(QueueConsumer):
    """The reply queue's consumer: broker-side auto-ack, each reply handed over inline. A shared
    extension of its own (nameko shares by class), so the gateway's event handlers keep
    nameko's acked, prefetch-bounded ``QueueConsumer``."""

    def get_consumers(self, consumer_cls, channel):
        for provider in self._providers:
            self._consumers[provider] = consumer_cls(
                queues=[provider.queue],
                callbacks=[partial(self.handle_message, provider)],
                accept=self.accept,
                no_ack=True,
            )
        return self._consumers.values()

    def handle_message(self, provider, body, message):
        provider.handle_message(body, message)  # ReplyListener: pops the caller's event, sends

    def ack_message(self, message):
        pass  # delivered with no_ack: there is nothing to acknowledge


class GatewayReplyListener(ReplyListener):
    queue_consumer = NoAckReplies()


class ExpiringRpcProxy(RpcProxy):
    """An RPC proxy whose requests expire in the target's queue after the gateway's deadline:
    when a service is down the caller gets 503, and the request does not run minutes later
    when the service comes back (a 'pay' the client already saw fail must not happen)."""

    rpc_reply_listener = GatewayReplyListener()

    def setup(self):
        super().setup()
        self.options.setdefault(
            "expiration",
            float(self.container.config.get("XIAOPU_RPC_TIMEOUT", DEFAULT_TIMEOUT_SECONDS)),
        )
