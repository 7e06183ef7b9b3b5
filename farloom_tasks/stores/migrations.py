"""`farloom migrate`: create the database if missing, then run Alembic to head."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

from alembic import command
from farloom_tasks.stores import db

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    # ConfigParser interpolation would choke on '%' in URL-encoded passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> bool:
    """Migrate to ``revision``; returns True if the database had to be created."""
    created = db.create_database_if_missing(database_url)
    with db.translated_errors():
        command.upgrade(alembic_config(database_url), revision)
    return created


def downgrade(database_url: str, revision: str = "base") -> None:
    with db.translated_errors():
        command.downgrade(alembic_config(database_url), revision)
