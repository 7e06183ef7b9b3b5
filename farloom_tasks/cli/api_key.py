"""``farloom api-key create|list|revoke``: who may read the query API.

``create`` prints the new key once, alone on the last line of its output, and
stores only the SHA-256 of its secret: a lost key cannot be shown again, only
replaced (docs/operations.md, "API keys"). Nothing else this command prints holds
a secret: ``list`` shows ids, and ``revoke`` given a whole key names only its id.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from farloom_tasks.core import api_keys as keys
from farloom_tasks.core.clicks import MAX_ID_CHARS
from farloom_tasks.errors import ConfigError
from farloom_tasks.settings import Settings
from farloom_tasks.stores import api_keys, db


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Keys for the query API (Authorization: Bearer <key>). An advertiser's key sees\n"
        "that advertiser's ads only; an admin key sees everything.\n\n"
        "examples:\n"
        "  farloom api-key create --advertiser acme --label 'acme reporting'\n"
        "  farloom api-key create --admin --label ops\n"
        "  farloom api-key list\n"
        "  farloom api-key revoke 3f9c0a1b2d4e5f60")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a key and print it once")
    whom = create.add_mutually_exclusive_group(required=True)
    whom.add_argument("--advertiser", metavar="ADVERTISER_ID",
                      help="the advertiser whose ads the key may read")
    whom.add_argument("--admin", action="store_true", help="a key that may read everything")
    create.add_argument("--label", default="", help="a note for `list` (who holds the key)")
    actions.add_parser("list", help="every key: id, whom it serves, label, created, revoked")
    revoke = actions.add_parser("revoke", help="revoke a key: the API refuses it from now on")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's id, as `list` shows it")


def run(args: argparse.Namespace, settings: Settings) -> int:
    engine = db.make_engine(settings.database_url, pool_size=1)
    try:
        with db.translated_errors(), api_keys.table_required():
            if args.action == "create":
                return _create(engine, args.advertiser, args.label)
            if args.action == "list":
                return _list(engine)
            return _revoke(engine, args.key_id)
    finally:
        engine.dispose()


def _create(engine: db.Engine, advertiser: str | None, label: str) -> int:
    if advertiser is not None and not (1 <= len(advertiser) <= MAX_ID_CHARS
                                       and advertiser.isprintable()):
        raise ConfigError(f"--advertiser must be 1-{MAX_ID_CHARS} printable characters, "
                          "as in the click message")
    key = keys.generate()
    with engine.begin() as conn:
        api_keys.create(conn, key_id=key.key_id, secret_sha256=keys.digest(key.secret),
                        advertiser_id=advertiser, label=label)
    whom = "every advertiser (admin)" if advertiser is None else f"advertiser {advertiser!r}"
    print(f"created key {key.key_id} for {whom}. It is shown this once; only its "
          "SHA-256 is stored. Send it as: Authorization: Bearer <key>")
    print(key)
    return 0


def _list(engine: db.Engine) -> int:
    with engine.connect() as conn:
        rows = api_keys.listed(conn)
    if not rows:
        print("no API keys; make one with: farloom api-key create --advertiser ADVERTISER_ID")
        return 0
    table = [("key id", "for", "label", "created", "revoked")]
    for row in rows:
        table.append((row.key_id,
                      "admin" if row.advertiser_id is None else f"advertiser {row.advertiser_id}",
                      row.label, _when(row.created_at), _when(row.revoked_at) or "-"))
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        print("  ".join(cells).rstrip())
    return 0


def _revoke(engine: db.Engine, given: str) -> int:
    whole_key = keys.parse(given)
    # Someone may paste the whole key: act on its id, and never echo its secret.
    key_id = whole_key.key_id if whole_key is not None else given
    if whole_key is None and not keys.KEY_ID_FORMAT.fullmatch(given):
        print("farloom api-key revoke: a key id is 16 hexadecimal characters, as "
              "`farloom api-key list` shows it")
        return 1
    with engine.begin() as conn:
        outcome = api_keys.revoke(conn, key_id)
    if outcome is api_keys.Revocation.UNKNOWN:
        print(f"farloom api-key revoke: no key has the id {key_id} "
              "(see farloom api-key list)")
        return 1
    if outcome is api_keys.Revocation.ALREADY_REVOKED:
        print(f"key {key_id} was already revoked; nothing changed")
        return 0
    print(f"revoked key {key_id}: the API refuses it from its next request")
    return 0


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
