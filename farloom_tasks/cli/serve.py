"""``farloom serve``: the query API and the dashboard, on uvicorn."""

from __future__ import annotations

import argparse
import logging

from farloom_tasks.settings import Settings
from farloom_tasks.stores import agg_reads, db

log = logging.getLogger(__name__)
OPEN_WARNING = (
    "FARLOOM_API_OPEN=1: THE API SERVES EVERY REQUEST WITHOUT A KEY, every advertiser's "
    "data to anyone who can reach port {port}. For local development only; in "
    "production unset it and give each client a key (farloom api-key create).")


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1; 0.0.0.0 in containers)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from farloom_tasks.api.app import create_app

    where = db.redacted(agg_reads.read_only_url(settings.database_url,
                                              settings.api_database_url))
    print(f"farloom serve: dashboard http://{args.host}:{args.port}/ , "
          f"API docs http://{args.host}:{args.port}/docs ; reading {where}", flush=True)
    if settings.api_open:
        log.warning(OPEN_WARNING.format(port=args.port))
    else:
        print("farloom serve: every /v1 request needs 'Authorization: Bearer <key>' "
              "(farloom api-key create); /healthz and the dashboard page are open", flush=True)
    # uvicorn handles SIGINT/SIGTERM itself: it stops accepting and finishes
    # the requests in flight.
    uvicorn.run(create_app(settings), host=args.host, port=args.port,
                log_level=settings.log_level.lower(), access_log=False)
    return 0
