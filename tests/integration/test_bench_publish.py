"""`farloom bench publish` runs end to end (a harness check, not a speed test)."""

from __future__ import annotations

from tests.support.stack import Stack


def test_the_publish_benchmark_confirms_every_message_of_both_publishers(stack: Stack) -> None:
    done = stack.farloom("bench", "publish", "--messages", "3000", "--naive-messages", "200")

    assert done.returncode == 0, done.stderr[-2000:]
    assert "| naive (sync confirms) | 200 |" in done.stdout
    assert "| Farloom (median of 3 runs: " in done.stdout
    assert " messages/s) | 3,000 |" in done.stdout
    assert "Messages in the queue after each run: 3,000" in done.stdout
