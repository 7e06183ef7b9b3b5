"""Nothing in the repository is a credential, and Flower is never started without auth.

The scan reads every file git tracks. The only password allowed in a URL is
RabbitMQ's stock ``guest:guest``, the documented local-development default
(README "Configuration"); compose and scripts take every other credential
from the environment (``${VAR}``), never from the text.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# (what it is, pattern). Patterns are assembled from pieces so this file does not
# match itself.
SECRET_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("a private key", re.compile("-----BEGIN ([A-Z]+ )?" + "PRIVATE KEY-----")),
    ("an AWS access key id", re.compile(r"\b(AKIA|ASIA)" + r"[0-9A-Z]{16}\b")),
    ("an AWS secret key", re.compile(r"(?i)aws_secret_access_key\s*[=:]\s*['\"]?"
                                     + r"[A-Za-z0-9/+=]{40}")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_" + r"[A-Za-z0-9]{36,}\b")),
    ("a Slack token", re.compile(r"\bxox[abprs]-" + r"[A-Za-z0-9-]{10,}")),
    ("a Google API key", re.compile(r"\bAIza" + r"[0-9A-Za-z_\-]{35}\b")),
    ("a JWT", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ" + r"[A-Za-z0-9_-]{10,}\.")),
]
# A URL whose userinfo carries a literal password.
URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.\-]*://[^\s/:@'\"`]+:([^\s/@'\"`]+)@")
ALLOWED_URL_PASSWORDS = {"guest"}  # RabbitMQ's local-development default, documented
# key = value with a literal password (placeholders, env references and code excepted).
ASSIGNED_PASSWORD = re.compile(
    r"(?m)^\s*[A-Z0-9_]*(PASSWORD|PASSWD|SECRET|TOKEN)[A-Z0-9_]*\s*[=:]\s*['\"]?([^\s'\"#]+)")
# change-me placeholders, ${VAR} references, masks, <placeholders>, and code (a literal
# set, a call or a type annotation is not a value).
PLACEHOLDER = re.compile(r"^(change-me[\w-]*|\$.*|\*+|<.*>|[\[{(].*|[\w.]+[(\[].*|)$")


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    files = []
    for name in filter(None, listed):
        path = ROOT / name
        if path.is_file() and b"\0" not in path.read_bytes()[:8192]:
            files.append(path)
    return files


def findings(text: str) -> list[str]:
    """Every credential-looking string in ``text``, described."""
    found = [f"{what}: {m.group(0)[:40]}" for what, pattern in SECRET_PATTERNS
             for m in pattern.finditer(text)]
    found += [f"a password in a URL: {m.group(0)}" for m in URL_PASSWORD.finditer(text)
              if m.group(1) not in ALLOWED_URL_PASSWORDS and not PLACEHOLDER.match(m.group(1))]
    found += [f"a literal credential: {m.group(0).strip()}"
              for m in ASSIGNED_PASSWORD.finditer(text) if not PLACEHOLDER.match(m.group(2))]
    return found


def test_no_tracked_file_holds_a_credential() -> None:
    files = _tracked_text_files()
    assert len(files) > 100
    found = {str(path.relative_to(ROOT)): hits for path in files
             if (hits := findings(path.read_text(errors="replace")))}
    assert not found, found


@pytest.mark.parametrize("leak", [
    "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIE...",
    "key = AKIA" + "ABCDEFGHIJKLMNOP",
    "FARLOOM_DATABASE_URL=postgresql://farloom:" + "hunter2@db:5432/farloom_db",
    "amqp://admin:" + "s3cret@rabbit:5672/%2F",
    "POSTGRES_PASSWORD=" + "hunter2",
    "token: gh" + "p_" + "a" * 36,
])
def test_the_scan_catches_a_planted_credential(leak: str) -> None:
    assert findings(leak)


@pytest.mark.parametrize("fine", [
    "amqp://guest:guest@127.0.0.1:5672/%2F",
    "redis://:${REDIS_PASSWORD:?see .env.example}@redis:6379/0",
    "POSTGRES_PASSWORD=change-me-postgres",
    "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?see .env.example}",
    "amqp://<user>:<password>@<host>:5672/<vhost>",
    "URL_PASSWORD = re.compile(r'...')",
])
def test_the_scan_allows_the_documented_default_and_placeholders(fine: str) -> None:
    assert findings(fine) == []


def _flower_commands() -> list[tuple[str, str]]:
    """(file, line) of every tracked line that starts Flower."""
    starts = re.compile(r"celery\b.*\bflower\b|\"flower\"")
    return [(str(path.relative_to(ROOT)), line) for path in _tracked_text_files()
            if path.suffix not in {".md", ".py"}
            for line in path.read_text(errors="replace").splitlines()
            if starts.search(line) and not line.lstrip().startswith("#")]


def test_every_command_that_starts_flower_requires_basic_auth() -> None:
    commands = _flower_commands()
    files = {name for name, _ in commands}
    assert {"Procfile", "docker-compose.yml"} <= files, commands
    compose = (ROOT / "docker-compose.yml").read_text()
    flower_block = compose.split("\n  flower:\n", 1)[1].split("\n\n", 1)[0]
    # In Flower's environment (FLOWER_BASIC_AUTH), never on its command line, where
    # `ps` would show the password to every user; compose refuses to start without it.
    assert re.search(r"FLOWER_BASIC_AUTH: \$\{FARLOOM_FLOWER_USER:\?[^}]*\}:"
                     r"\$\{FARLOOM_FLOWER_PASSWORD:\?[^}]*\}", flower_block)
    procfile = (ROOT / "Procfile").read_text()
    assert re.search(r"^flower: FLOWER_BASIC_AUTH=\"\$\{FARLOOM_FLOWER_USER:\?\}:"
                     r"\$\{FARLOOM_FLOWER_PASSWORD:\?\}\" exec celery ", procfile, re.MULTILINE)
    assert not [line for _, line in commands if "--basic-auth" in line]
    # run-pipeline never starts it with an empty password: it generates one.
    assert "secrets.token_urlsafe" in (ROOT / "scripts/run-pipeline").read_text()
