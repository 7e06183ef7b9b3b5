"""A speed fix to pika 1.x for the click publishers, installed process-wide by ``install()``.

One ``send`` per batch of queued frames instead of one per frame. It changes how
the bytes are handed to the socket, never which bytes go on the wire.

The fix patches a private pika class, so it must not fail quietly when pika
changes: ``install()`` raises ``PikaInternalsChanged`` if what it relies on is
gone, and tests/unit/test_pika_fixes.py proves on the installed pika that the
patch is active and really joins frames. ConfirmingPublisher installs it when
it is constructed, never on import, so a process that only imports the
publisher (the naive baseline of ``farloom bench publish``) runs plain pika.
"""

from __future__ import annotations

from typing import Any

MARKER = "farloom_joined"  # attribute set on the patched function


class PikaInternalsChanged(RuntimeError):
    """The installed pika lacks the private class or method the fix patches."""


def install() -> None:
    """Apply the fix (idempotent); PikaInternalsChanged if pika no longer fits it."""
    _coalesce_socket_writes()


def installed() -> bool:
    """Whether the fix is active in this process."""
    from pika.adapters.utils import io_services_utils

    transport = getattr(io_services_utils, "_AsyncPlaintextTransport", None)
    return bool(getattr(getattr(transport, "_produce", None), MARKER, False))


def _coalesce_socket_writes() -> None:
    """Send pika's queued frames in one ``send`` instead of one per frame.

    Every message is three frames (method, header, body), and pika's plain-TCP
    transport makes a system call for each, which is the publisher's largest
    cost (docs/benchmarks.md, publish). Joining the queued frames first keeps
    the bytes and their order unchanged. Only the plain-TCP transport is
    touched (TLS transports have their own ``_produce``).
    """
    from pika.adapters.utils import io_services_utils

    transport = getattr(io_services_utils, "_AsyncPlaintextTransport", None)
    original = getattr(transport, "_produce", None)
    if transport is None or original is None:
        raise PikaInternalsChanged(
            "pika.adapters.utils.io_services_utils._AsyncPlaintextTransport._produce is "
            "missing: the installed pika no longer fits farloom_tasks/stores/pika_fixes.py")
    if getattr(original, MARKER, False):
        return

    def produce(self: Any) -> None:
        buffers = self._tx_buffers
        if len(buffers) > 1:
            joined = b"".join(buffers)
            buffers.clear()
            buffers.append(joined)
        original(self)

    setattr(produce, MARKER, True)
    transport._produce = produce
