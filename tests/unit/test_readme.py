"""The README's settings table is the operator's reference: it must list every setting."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from farloom_tasks.settings import ENV_PREFIX, Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def _settings_table() -> dict[str, str]:
    text = README.read_text()
    table = text.split("<!-- settings:start -->")[1].split("<!-- settings:end -->")[0]
    rows = re.findall(r"^\| `(FARLOOM_[A-Z_]+)` \| `([^`]*)` \|", table, flags=re.MULTILINE)
    return dict(rows)


def test_the_readme_documents_every_setting_with_its_real_default() -> None:
    documented = _settings_table()
    expected = {ENV_PREFIX + f.name.upper(): str(f.default) for f in fields(Settings)}
    assert documented == expected


def test_the_readme_names_the_two_commands() -> None:
    text = README.read_text()
    assert "make run" in text and "make test" in text
