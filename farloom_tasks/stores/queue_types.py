"""Queue types (``FARLOOM_QUEUE_TYPE``): the arguments of each durable queue, and mismatches.

RabbitMQ fixes a queue's type and arguments when the queue is first declared;
a later declare with other arguments fails with 406 PRECONDITION_FAILED and
closes the channel. ``declare_queue`` turns that into ``QueueMismatch``, whose
message names the queue, what it is, what the settings want and what to do,
instead of a channel error.

Without the management plugin AMQP has no way to read a queue's arguments, but
the 406 names one argument that differs and its current value. ``existing_arguments``
re-declares with that value, learns the next difference, and so on, until a
declare succeeds: that declare matched the queue exactly, so what it sent is
what the queue has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pika.exceptions import ChannelClosedByBroker

from farloom_tasks.errors import ConfigError

if TYPE_CHECKING:
    from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

    from farloom_tasks.settings import Settings

PRECONDITION_FAILED = 406
QUEUE_TYPE = "x-queue-type"
DELIVERY_LIMIT = "x-delivery-limit"
MAX_PROBES = 12  # re-declares while reading a queue's arguments; a queue has a handful

# received <wanted> but current is <existing>; each side is `none`, `'v'` or
# `the value 'v' of type 't'` (the type only when the two types differ).
_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<arg>[^']+)' for queue '(?P<queue>[^']*)' in vhost '(?P<vhost>[^']*)':"
    r" received (?P<received>.+?) but current is (?P<current>.+)$")
_VALUE = re.compile(r"^(?:the value )?'(?P<value>[^']*)'(?: of type '(?P<type>[^']+)')?$")


class QueueMismatch(ConfigError):
    """An existing queue's type or arguments differ from what the settings want.

    Not transient: no reconnect helps, so workers stop and ``farloom`` prints it.
    """


@dataclass(frozen=True)
class QueueType:
    """The type of Farloom's durable queues and, for quorum queues, their delivery limit."""

    name: str = "classic"  # "classic" | "quorum"
    delivery_limit: int = 20  # deliveries of one message a quorum queue allows

    @classmethod
    def of(cls, settings: Settings) -> QueueType:
        return cls(settings.queue_type, settings.quorum_delivery_limit)

    @property
    def quorum(self) -> bool:
        return self.name == "quorum"

    def arguments(self, dead_exchange: str | None) -> dict[str, Any]:
        """A queue's arguments; ``dead_exchange`` for a work queue, None for a dead one."""
        arguments: dict[str, Any] = {}
        if dead_exchange is not None:
            # Messages the broker itself rejects (basic.reject without requeue, and a
            # quorum queue's delivery limit) land in the dead-letter queue, not nowhere.
            arguments["x-dead-letter-exchange"] = dead_exchange
        if not self.quorum:
            # Classic queues are declared without x-queue-type, as they always were,
            # so that the queues of existing deployments stay equivalent.
            return arguments
        arguments[QUEUE_TYPE] = "quorum"
        if dead_exchange is not None:
            # A message redelivered this often (its consumer keeps dying or requeueing
            # it) is dead-lettered, x-first-death-reason "delivery_limit", not looped
            # forever. At-least-once dead-lettering keeps it in the source queue until
            # the dead-letter queue confirms it; it requires overflow reject-publish,
            # which only matters with a length limit (Farloom sets none).
            arguments[DELIVERY_LIMIT] = self.delivery_limit
            arguments["x-dead-letter-strategy"] = "at-least-once"
            arguments["x-overflow"] = "reject-publish"
        return arguments

    def task_queue_arguments(self) -> dict[str, Any]:
        """Celery's ``farloom.tasks``: as Celery declares it (``task_default_queue_type``)."""
        return {QUEUE_TYPE: "quorum"} if self.quorum else {}


CLASSIC = QueueType()


def declare_queue(connection: BlockingConnection, channel: BlockingChannel, queue: str,
                  arguments: dict[str, Any]) -> str | None:
    """Declare ``queue`` durable with ``arguments``; None, or what differs in an existing queue.

    A 406 closes ``channel``; the queue's arguments are then read on fresh
    channels, and the caller carries on on a fresh one too.
    """
    try:
        channel.queue_declare(queue=queue, durable=True, arguments=arguments)
        return None
    except ChannelClosedByBroker as exc:
        found = _parse(exc.reply_text) if exc.reply_code == PRECONDITION_FAILED else None
        if found is None:
            raise
        existing = existing_arguments(connection, queue, arguments, exc.reply_text)
        return difference(queue, found["vhost"], arguments, existing)


def existing_arguments(connection: BlockingConnection, queue: str, sent: dict[str, Any],
                       reply_text: str) -> dict[str, Any] | None:
    """The arguments ``queue`` really has, learnt from 406 replies; None if they never settle."""
    arguments = dict(sent)
    for _ in range(MAX_PROBES):
        found = _parse(reply_text)
        if found is None:
            return None
        current = _value(found["current"], arguments.get(found["arg"]))
        if current is None:
            arguments.pop(found["arg"], None)
        else:
            arguments[found["arg"]] = current
        channel = connection.channel()
        try:
            channel.queue_declare(queue=queue, durable=True, arguments=arguments)
        except ChannelClosedByBroker as exc:
            reply_text = exc.reply_text
            continue
        channel.close()
        return arguments
    return None


def difference(queue: str, vhost: str, wanted: dict[str, Any],
               existing: dict[str, Any] | None) -> str:
    """One line: how ``queue`` differs from what the settings want."""
    if existing is None:
        return f"queue {queue!r} in vhost {vhost!r} has other arguments than wanted: {wanted}"
    has, want = _type_of(existing), _type_of(wanted)
    if has != want:
        return f"queue {queue!r} in vhost {vhost!r} is a {has} queue; the settings want {want}"
    differs = ", ".join(
        f"{arg} is {existing.get(arg, 'unset')!r}, wanted {wanted.get(arg, 'unset')!r}"
        for arg in sorted(set(wanted) | set(existing)) if wanted.get(arg) != existing.get(arg))
    return f"queue {queue!r} in vhost {vhost!r} is a {has} queue whose {differs}"


def mismatch_message(differences: list[str], queue_type: QueueType) -> str:
    """What is wrong with the existing queues and exactly what to do about it."""
    lines = "\n".join(f"  - {line}" for line in differences)
    limit = ("" if not queue_type.quorum else
             f" (FARLOOM_QUORUM_DELIVERY_LIMIT={queue_type.delivery_limit})")
    return (f"RabbitMQ queues do not match FARLOOM_QUEUE_TYPE={queue_type.name}{limit}:\n{lines}\n"
            "RabbitMQ cannot change the type or arguments of an existing queue. Either set "
            "FARLOOM_QUEUE_TYPE (and FARLOOM_QUORUM_DELIVERY_LIMIT) back to what the queues "
            "have, or migrate them (docs/operations.md, \"Queue type\"): stop the publishers, "
            "let `farloom ingest --burst` and `farloom write-aggregates --burst` drain their "
            "queues, stop every Farloom program and Celery worker, read or move what the "
            "dead-letter queues hold, delete each queue listed (rabbitmqctl delete_queue -p "
            "<vhost> <queue>), then start Farloom with the new settings, which declares them "
            "anew.")


def _type_of(arguments: dict[str, Any]) -> str:
    return str(arguments.get(QUEUE_TYPE) or "classic")


def _parse(reply_text: str) -> dict[str, str] | None:
    found = _INEQUIVALENT.search(reply_text)
    return None if found is None else found.groupdict()


def _value(text: str, sent: Any) -> Any:
    """A 406's ``current`` side as a Python value (its type if given, else the type we sent)."""
    if text == "none":
        return None
    found = _VALUE.match(text)
    if found is None:
        return text
    value, kind = found["value"], found["type"]
    if kind in ("signedint", "long", "short", "byte", "unsignedbyte", "unsignedshort",
                "unsignedint") or (kind is None and isinstance(sent, int)
                                   and not isinstance(sent, bool)):
        return int(value)
    if kind == "bool" or (kind is None and isinstance(sent, bool)):
        return value == "true"
    return value
