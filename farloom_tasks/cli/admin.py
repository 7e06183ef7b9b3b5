"""``farloom migrate`` and ``farloom config``."""

from __future__ import annotations

import argparse
from dataclasses import fields

from farloom_tasks.settings import ENV_PREFIX, Settings
from farloom_tasks.stores import db
from farloom_tasks.stores import migrations as migrate

SECRET_FIELDS = {"database_url", "amqp_url", "redis_url", "api_database_url"}


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "migrate":
        parser.add_argument("--revision", default="head",
                            help="Alembic revision to upgrade to (default: head)")
        parser.add_argument("--downgrade", metavar="REVISION", default=None,
                            help="downgrade to REVISION instead (e.g. base)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "migrate":
        return _migrate(args, settings)
    return _config(settings)


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    where = db.redacted(settings.database_url)
    if args.downgrade:
        migrate.downgrade(settings.database_url, args.downgrade)
        print(f"downgraded {where} to {args.downgrade}")
        return 0
    created = migrate.upgrade(settings.database_url, args.revision)
    print(f"{'created and ' if created else ''}migrated {where} to {args.revision}")
    return 0


def _config(settings: Settings) -> int:
    for field in fields(settings):
        value = getattr(settings, field.name)
        if field.name in SECRET_FIELDS:
            value = _hide_password(str(value))
        print(f"{ENV_PREFIX}{field.name.upper()}={value}")
    return 0


def _hide_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
