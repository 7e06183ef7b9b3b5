"""Every dependency is pinned to a range of maintained releases: a floor and a ceiling.

A floor keeps out releases with known problems or missing APIs; a ceiling keeps
an unreviewed major release (and its breaking changes) out of a fresh install.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
BOUNDED = re.compile(r"^[A-Za-z0-9_.\-\[\], ]+>=\s*[0-9][^,]*,\s*<\s*[0-9]")


def _requirements() -> list[str]:
    doc = tomllib.loads(PYPROJECT.read_text())
    project = doc["project"]
    extras = [req for group in project.get("optional-dependencies", {}).values()
              for req in group]
    return [*doc["build-system"]["requires"], *project["dependencies"], *extras]


def test_every_dependency_has_a_lower_and_an_upper_bound() -> None:
    requirements = _requirements()
    assert len(requirements) > 10
    unbounded = [req for req in requirements if not BOUNDED.match(req)]
    assert not unbounded, f"pin these to a range (>=floor,<ceiling): {unbounded}"


def test_the_bound_check_rejects_an_open_ended_requirement() -> None:
    assert not BOUNDED.match("types-psutil")
    assert not BOUNDED.match("celery-types>=0.22")
    assert BOUNDED.match("celery[redis]>=5.4,<5.8")
