"""Two fixes to pika 1.x that the publishers need, installed process-wide by ``install()``.

- Float header values: the publish-time header (topology.PUBLISHED_AT_HEADER) is
  epoch seconds as a float, which pika refuses to encode and decodes cast to int.
- One ``send`` per batch of queued frames instead of one per frame.

Both only change how bytes are produced or read, never which bytes go on the wire
for values pika already supports.
"""

from __future__ import annotations

import struct
from typing import Any

import pika.data


def install() -> None:
    """Apply both fixes (idempotent)."""
    _allow_float_headers()
    _coalesce_socket_writes()


def _allow_float_headers() -> None:
    """Let pika carry float header values as AMQP doubles (field type 'd').

    The publish-time header is epoch seconds as a float (topology.PUBLISHED_AT_HEADER).
    pika 1.x refuses to encode floats, and decodes doubles cast to int
    (pika/pika#599), which would cut the latency to whole seconds. RabbitMQ
    itself carries doubles unchanged. This fixes both directions in this process.
    """
    original_encode, original_decode = pika.data.encode_value, pika.data.decode_value
    if getattr(original_encode, "farloom_floats", False):
        return

    def encode_value(pieces: list[bytes], value: Any) -> int:
        if isinstance(value, float):
            pieces.append(struct.pack(">cd", b"d", value))
            return 9
        return int(original_encode(pieces, value))

    def decode_value(encoded: bytes, offset: int) -> tuple[Any, int]:
        if encoded[offset:offset + 1] == b"d":
            return struct.unpack_from(">d", encoded, offset + 1)[0], offset + 9
        value, end = original_decode(encoded, offset)
        return value, int(end)

    encode_value.farloom_floats = True  # type: ignore[attr-defined]
    pika.data.encode_value = encode_value
    pika.data.decode_value = decode_value




def _coalesce_socket_writes() -> None:
    """Send pika's queued frames in one ``send`` instead of one per frame.

    Every message is three frames (method, header, body), and pika's plain-TCP
    transport makes a system call for each: at 15,000 messages/s that is the
    publisher's largest cost. Joining the queued frames first keeps the bytes
    and their order unchanged. Only the plain-TCP transport is touched (TLS
    transports have their own ``_produce``).
    """
    from pika.adapters.utils import io_services_utils

    transport = getattr(io_services_utils, "_AsyncPlaintextTransport", None)
    original = getattr(transport, "_produce", None)
    if transport is None or original is None or getattr(original, "farloom_joined", False):
        return

    def produce(self: Any) -> None:
        buffers = self._tx_buffers
        if len(buffers) > 1:
            joined = b"".join(buffers)
            buffers.clear()
            buffers.append(joined)
        original(self)

    produce.farloom_joined = True  # type: ignore[attr-defined]
    transport._produce = produce
