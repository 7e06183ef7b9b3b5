"""`farloom api-key` as an operator runs it, and the real `farloom serve` it feeds.

The key is shown once, alone on the last line of `create`; the table holds only its
SHA-256; no other output of the CLI and no log line of the server holds a key.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from farloom_tasks import processes
from farloom_tasks.core import api_keys as keys
from tests.support.ports import free_port
from tests.support.stack import Stack
from tests.support.waiting import wait_for


def created_key(stack: Stack, *args: str) -> tuple[keys.ApiKey, str]:
    """The key `farloom api-key create ARGS` printed, and its whole output."""
    done = stack.farloom("api-key", "create", *args)
    assert done.returncode == 0, done.stderr
    last_line = done.stdout.rstrip("\n").split("\n")[-1]
    key = keys.parse(last_line)
    assert key is not None, f"the last line is not the key alone: {last_line!r}"
    return key, done.stdout + done.stderr


def stored_rows(stack: Stack) -> list[dict[str, object]]:
    with stack.engine().connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.text(
            "SELECT * FROM auth.api_keys ORDER BY created_at, key_id"))]


def test_create_prints_the_key_alone_on_its_last_line_and_stores_only_its_hash(
        stack: Stack) -> None:
    key, output = created_key(stack, "--advertiser", "acme", "--label", "acme reporting")
    admin, _ = created_key(stack, "--admin")

    rows = stored_rows(stack)
    assert [(r["key_id"], r["advertiser_id"], r["is_admin"], r["label"]) for r in rows] == [
        (key.key_id, "acme", False, "acme reporting"), (admin.key_id, None, True, "")]
    assert bytes(rows[0]["secret_sha256"]) == hashlib.sha256(key.secret.encode()).digest()
    for row in rows:  # the secret is in no column, in no encoding of it
        for value in row.values():
            text = bytes(value).hex() if isinstance(value, bytes | memoryview) else str(value)
            assert key.secret not in text and admin.secret not in text
    assert output.count(key.secret) == 1  # the last line, and nowhere else
    assert key.key_id != admin.key_id and key.secret != admin.secret


def test_list_shows_whom_each_key_serves_and_revoke_says_what_it_did(stack: Stack) -> None:
    key, _ = created_key(stack, "--advertiser", "acme", "--label", "acme reporting")
    admin, _ = created_key(stack, "--admin", "--label", "ops")

    before = stack.farloom("api-key", "list")
    revoked = stack.farloom("api-key", "revoke", key.key_id)
    again = stack.farloom("api-key", "revoke", str(key))  # the whole key pasted
    unknown = stack.farloom("api-key", "revoke", "0123456789abcdef")
    not_an_id = stack.farloom("api-key", "revoke", "acme")
    after = stack.farloom("api-key", "list")
    neither = stack.farloom("api-key", "create")

    lines = before.stdout.splitlines()
    assert lines[0].split() == ["key", "id", "for", "label", "created", "revoked"]
    assert lines[1].startswith(key.key_id) and "advertiser acme" in lines[1]
    assert "acme reporting" in lines[1] and lines[1].rstrip().endswith("-")
    assert lines[2].startswith(admin.key_id) and "admin" in lines[2] and "ops" in lines[2]
    assert (revoked.returncode, again.returncode) == (0, 0)
    assert f"revoked key {key.key_id}" in revoked.stdout
    assert "already revoked" in again.stdout
    assert (unknown.returncode, not_an_id.returncode) == (1, 1)
    assert "no key has the id 0123456789abcdef" in unknown.stdout
    assert "16 hexadecimal characters" in not_an_id.stdout
    revoked_line = next(line for line in after.stdout.splitlines() if line.startswith(key.key_id))
    assert revoked_line.rstrip().endswith("UTC") and not revoked_line.rstrip().endswith("-")
    assert neither.returncode == 2 and "--advertiser" in neither.stderr
    digests = [bytes(row["secret_sha256"]).hex() for row in stored_rows(stack)]
    for done in (before, revoked, again, unknown, after):
        for shown in (done.stdout, done.stderr):
            assert key.secret not in shown and admin.secret not in shown
            assert not any(digest in shown for digest in digests)


def test_a_database_not_migrated_to_api_keys_gets_a_sentence_not_a_traceback(
        stack: Stack) -> None:
    # The server's maintenance database: Farloom never migrates it, nothing is written.
    unmigrated = stack.settings.database_url.rsplit("/", 1)[0] + "/postgres"
    done = stack.farloom("api-key", "list", env=dict(stack.env, FARLOOM_DATABASE_URL=unmigrated))

    assert done.returncode == 3
    assert "run `farloom migrate`" in done.stderr and "Traceback" not in done.stderr


@contextlib.contextmanager
def farloom_serve(stack: Stack, log_path: Path,
                  **env: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A real `farloom serve` with ``env`` added, its output in ``log_path``, once it
    answers /healthz: its base URL and process (stopped at the end)."""
    port = free_port()
    with open(log_path, "w") as log:
        server = stack.spawn("serve", "--port", str(port), log=log, env=dict(stack.env, **env))
        try:
            base = f"http://127.0.0.1:{port}"

            def answers() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return httpx.get(base + "/healthz", timeout=2).status_code == 200
                assert server.poll() is None, log_path.read_text()
                return False

            wait_for("farloom serve to answer", answers, 30, context=log_path.read_text)
            yield base, server
        finally:
            processes.stop(server, grace=10)


@pytest.fixture
def served_at_debug(stack: Stack, tmp_path: Path,
                    ) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    """Keys required, at the most verbose log level there is."""
    log_path = tmp_path / "serve.log"
    with farloom_serve(stack, log_path, FARLOOM_LOG_LEVEL="DEBUG", FARLOOM_API_METRICS="1",
                       FARLOOM_API_OPEN="0") as (base, server):
        yield base, log_path, server


def test_no_key_and_no_authorization_value_reaches_the_servers_log(
        stack: Stack, served_at_debug: tuple[str, Path, subprocess.Popen[str]]) -> None:
    base, log_path, server = served_at_debug
    good, _ = created_key(stack, "--advertiser", "acme")
    admin, _ = created_key(stack, "--admin")
    revoked, _ = created_key(stack, "--advertiser", "acme")
    assert stack.farloom("api-key", "revoke", revoked.key_id).returncode == 0
    wrong = keys.ApiKey(good.key_id, keys.generate().secret)
    sent = [str(k) for k in (good, admin, revoked, wrong)] + ["flk_garbage_" + "x" * 40]

    answered = []
    for token in sent:
        for path in ("/v1/minutes", "/v1/ads/top", "/v1/status", "/metrics", "/nowhere"):
            answered.append(httpx.get(base + path, headers={"Authorization": f"Bearer {token}"},
                                      timeout=10).status_code)
        answered.append(httpx.get(base + "/v1/minutes", params={"api_key": token},
                                  timeout=10).status_code)
    processes.stop(server, grace=10)  # every line it would write about them is written

    assert 401 in answered and 403 in answered and 404 in answered
    assert {200, 404} & set(answered[:5])  # the good key got through to the handlers
    logged = log_path.read_text()
    assert "farloom serve" in logged  # the capture works: the start line is there
    for token in sent:
        parsed = keys.parse(token)
        assert token not in logged
        assert parsed is None or parsed.secret not in logged
    # No header either: the one line naming the scheme is serve's own start line.
    assert [line for line in logged.splitlines()
            if "bearer" in line.lower() and "Bearer <key>" not in line] == []


def test_the_open_mode_warns_loudly_when_farloom_serve_starts(
        stack: Stack, tmp_path: Path) -> None:
    log_path = tmp_path / "open.log"
    with farloom_serve(stack, log_path, FARLOOM_API_OPEN="1") as (base, _):
        response = httpx.get(base + "/v1/status", timeout=10)

    assert response.status_code == 200
    assert "WARNING" in log_path.read_text() and "local development only" in log_path.read_text()

