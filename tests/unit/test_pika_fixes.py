"""The pika frame-joining fix is really active on the installed pika, and only where wanted.

stores/pika_fixes.py patches a private pika class. These tests fail if that
class changed so that the patch no longer applies or no longer joins frames,
and they prove that merely importing the publishers leaves pika alone (the
naive baseline of `farloom bench publish` must run plain pika).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from typing import Any, cast

import pytest
from pika.adapters.utils import io_services_utils

from farloom_tasks.bench import publish as bench_publish
from farloom_tasks.errors import FarloomError
from farloom_tasks.stores import pika_fixes

# 10 messages of 3 frames: few enough that unjoined sends cannot fill the socket pair's
# buffer (the reader only reads after the flush).
FRAMES = [b"frame-%03d:" % i + b"x" * 40 for i in range(30)]


class CountingSocket:
    """A real socket that counts the ``send`` calls the transport makes on it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sends = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, data: bytes) -> int:
        self.sends += 1
        return self.sock.send(data)


class QuietIOServices:
    """The reader/writer registrations a transport makes, accepted and ignored."""

    def set_reader(self, fd: int, on_readable: Any) -> None:
        pass

    def set_writer(self, fd: int, on_writable: Any) -> None:
        pass

    def remove_writer(self, fd: int) -> bool:
        return True


def _send_burst(produce: Any) -> tuple[int, bytes]:
    """Queue FRAMES on a plaintext transport over a socket pair, flush with ``produce``."""
    ours, theirs = socket.socketpair()
    try:
        counting = CountingSocket(ours)
        transport = io_services_utils._AsyncPlaintextTransport(
            cast(Any, counting), cast(Any, None), cast(Any, QuietIOServices()))
        for frame in FRAMES:
            transport.write(frame)
        produce(transport)
        expected = sum(map(len, FRAMES))
        received = b""
        while len(received) < expected:
            received += theirs.recv(65536)
        return counting.sends, received
    finally:
        ours.close()
        theirs.close()


def test_install_replaces_the_plaintext_transports_produce() -> None:
    pika_fixes.install()

    transport = io_services_utils._AsyncPlaintextTransport
    assert pika_fixes.installed()
    assert getattr(transport._produce, pika_fixes.MARKER) is True
    assert transport._produce is not io_services_utils._AsyncTransportBase._produce


def test_installing_twice_patches_once() -> None:
    pika_fixes.install()
    patched = io_services_utils._AsyncPlaintextTransport._produce
    pika_fixes.install()

    assert io_services_utils._AsyncPlaintextTransport._produce is patched


def test_a_burst_of_frames_reaches_the_socket_in_fewer_sends_than_frames() -> None:
    pika_fixes.install()

    sends, received = _send_burst(lambda transport: transport._on_socket_writable())

    assert sends < len(FRAMES)
    assert received == b"".join(FRAMES)  # the same bytes in the same order


def test_plain_pika_sends_each_frame_on_its_own() -> None:
    # The control: the counting above does see one send per frame without the fix.
    sends, received = _send_burst(io_services_utils._AsyncTransportBase._produce)

    assert sends == len(FRAMES)
    assert received == b"".join(FRAMES)


def test_install_fails_loudly_when_pikas_private_transport_is_gone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(io_services_utils, "_AsyncPlaintextTransport")

    with pytest.raises(pika_fixes.PikaInternalsChanged):
        pika_fixes.install()


def test_install_fails_loudly_when_the_transport_has_no_produce(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Reshaped:
        pass

    monkeypatch.setattr(io_services_utils, "_AsyncPlaintextTransport", Reshaped)

    with pytest.raises(pika_fixes.PikaInternalsChanged):
        pika_fixes.install()


def test_importing_the_publishers_leaves_pika_unpatched_until_a_publisher_is_made() -> None:
    script = textwrap.dedent("""
        import farloom_tasks.bench.publish
        import farloom_tasks.bench.traffic
        from farloom_tasks.stores import pika_fixes
        from farloom_tasks.stores.click_publisher import ConfirmingPublisher
        import workers.generate, workers.watch, workers.import_file
        print(pika_fixes.installed())
        from farloom_tasks.stores.topology import CLASSIC
        ConfirmingPublisher("amqp://guest:guest@127.0.0.1:5672/%2F", None, queue_type=CLASSIC)
        print(pika_fixes.installed())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True"]


def test_the_naive_publish_baseline_refuses_to_run_on_patched_pika() -> None:
    pika_fixes.install()

    with pytest.raises(FarloomError, match="patched pika"):
        bench_publish._naive(cast(Any, None), iter([]), 0)
