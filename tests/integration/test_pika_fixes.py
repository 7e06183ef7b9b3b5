"""On a real RabbitMQ connection, the pika fix is in the transport pika uses and joins frames."""

from __future__ import annotations

import socket
from typing import Any

import pika
from pika.adapters.utils import io_services_utils

from farloom_tasks.stores import pika_fixes
from tests.support.stack import Stack

MESSAGES = 200  # three frames each (method, header, body)


class CountingSocket:
    """The connection's own socket, counting the ``send`` calls made on it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sends = 0

    def send(self, data: bytes) -> int:
        self.sends += 1
        return self.sock.send(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def test_a_burst_published_on_a_select_connection_takes_fewer_sends_than_frames(
        stack: Stack) -> None:
    pika_fixes.install()
    seen: dict[str, Any] = {}

    def on_open(connection: pika.SelectConnection) -> None:
        transport = connection._transport
        seen["transport"] = type(transport)
        counting = CountingSocket(transport._sock)  # type: ignore[union-attr]
        transport._sock = counting  # type: ignore[union-attr]

        def on_channel(channel: Any) -> None:
            before = counting.sends
            for _ in range(MESSAGES):
                # The default exchange drops a message routed to no queue: nothing to clean up.
                channel.basic_publish("", "farloom.test.nowhere", b"x")

            def measured() -> None:
                seen["sends"] = counting.sends - before
                connection.close()

            connection.ioloop.call_later(0.5, measured)

        connection.channel(on_open_callback=on_channel)

    connection = pika.SelectConnection(
        pika.URLParameters(stack.settings.amqp_url), on_open_callback=on_open,
        on_open_error_callback=lambda c, error: c.ioloop.stop(),
        on_close_callback=lambda c, reason: c.ioloop.stop())
    connection.ioloop.call_later(20, connection.ioloop.stop)  # never hang the suite
    connection.ioloop.start()

    assert seen["transport"] is io_services_utils._AsyncPlaintextTransport
    assert 0 < seen["sends"] < 3 * MESSAGES
