"""`make run` end to end, from a fresh clone of the repository's HEAD, against the test
stack: it creates its virtualenv, installs, migrates and starts the whole pipeline with
demo traffic, until the API reports closed minutes that match raw; Ctrl-C then stops
everything, and every click the demo publisher had confirmed is stored or still queued.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from farloom_tasks import processes
from farloom_tasks.stores import topology
from tests.support.ports import free_port
from tests.support.stack import PROJECT_ROOT, Stack

pytestmark = pytest.mark.slow
DEADLINE_SECONDS = 180  # the bound: closed minutes within 3 minutes of the start
INSTALL_SECONDS = 300  # creating the clone's virtualenv comes first
PUBLISHED = re.compile(r"published ([\d,]+) messages \(([\d,]+) clicks\)")


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Path:
    """The committed project, as CI and a new developer get it."""
    clone = tmp_path / "farloom"
    subprocess.run(["git", "clone", "--quiet", str(PROJECT_ROOT), str(clone)], check=True,
                   timeout=120)
    return clone


@pytest.fixture
def pipeline(stack: Stack, tmp_path: Path, fresh_clone: Path,
             ) -> Iterator[tuple[subprocess.Popen[str], dict[str, str], str]]:
    api_port, flower_port = free_port(), free_port()
    env = dict(stack.env, FARLOOM_DEMO_RATE="300", FARLOOM_API_PORT=str(api_port),
               FARLOOM_FLOWER_PORT=str(flower_port), FARLOOM_CELERY_CONCURRENCY="1",
               FARLOOM_GRACE_SECONDS="2",
               FARLOOM_BEAT_SCHEDULE_FILE=str(tmp_path / "celerybeat-schedule"))
    env.pop("FARLOOM_FLOWER_PASSWORD", None)
    env.pop("VIRTUAL_ENV", None)  # the clone makes and uses its own .venv
    (PROJECT_ROOT / "var").mkdir(exist_ok=True)
    log_path = PROJECT_ROOT / "var" / "test-make-run.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(["make", "run"], cwd=fresh_clone, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        try:
            yield process, env, str(log_path)
        finally:
            # SIGINT as Ctrl-C in a terminal would; then any straggler in the group.
            processes.stop(process, sig=signal.SIGINT, grace=30, group=True)


def closed_minutes_matching_raw(stack: Stack, api: str) -> int:
    """How many minutes the API reports whose totals equal raw's count (0 on any mismatch)."""
    try:
        listed = httpx.get(f"{api}/v1/minutes", timeout=5)
    except httpx.HTTPError:
        return 0
    if listed.status_code != 200:
        return 0
    reported = {m["minute"]: m["clicks"] for m in listed.json()["minutes"]}
    with stack.engine().connect() as conn:
        raw = {row.minute.strftime("%Y-%m-%dT%H:%M:%SZ"): int(row.clicks)
               for row in conn.execute(sa.text(
                   "SELECT minute, count(*) AS clicks FROM raw.ad_clicks GROUP BY minute"))}
    if any(raw.get(minute, 0) != clicks for minute, clicks in reported.items()):
        return 0
    return sum(1 for clicks in reported.values() if clicks > 0)


def test_the_pipeline_closes_minutes_that_match_raw_within_three_minutes_and_stops_on_ctrl_c(
        stack: Stack, pipeline: tuple[subprocess.Popen[str], dict[str, str], str]) -> None:
    process, env, log_path = pipeline
    api = f"http://127.0.0.1:{env['FARLOOM_API_PORT']}"
    installed_by = time.monotonic() + INSTALL_SECONDS
    # The clock starts when run-pipeline prints its banner. (Not at the word "honcho":
    # pip's warnings while installing it name it too, which started the clock early.)
    while "Farloom is starting" not in Path(log_path).read_text():
        assert process.poll() is None, Path(log_path).read_text()[-3000:]
        assert time.monotonic() < installed_by, Path(log_path).read_text()[-3000:]
        time.sleep(1)
    started = time.monotonic()
    matched = 0
    while time.monotonic() - started < DEADLINE_SECONDS:
        assert process.poll() is None, Path(log_path).read_text()[-3000:]
        matched = closed_minutes_matching_raw(stack, api)
        if matched >= 2:
            break
        time.sleep(3)
    output = Path(log_path).read_text()
    assert matched >= 2, output[-3000:]

    password = re.search(r"user farloom, password (\S+)", output)
    assert password, output[:2000]
    flower = f"http://127.0.0.1:{env['FARLOOM_FLOWER_PORT']}/"
    assert httpx.get(flower, timeout=10).status_code == 401
    assert httpx.get(flower, auth=("farloom", password.group(1)), timeout=10).status_code == 200
    # Every user of the machine can read the process list: no password on it.
    process_list = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True,
                                  check=True).stdout
    assert password.group(1) not in process_list
    assert f"{api}/docs" in output
    # make run serves the API without keys, and says so: its banner and serve's warning.
    assert "API keys   OPEN: no API key needed" in output
    assert "WITHOUT A KEY" in output

    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=30) is not None
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{api}/healthz", timeout=2)

    # Nothing lost on Ctrl-C: every click the demo publisher had confirmed when it
    # stopped is in raw (once) or still waiting in the ingest queue.
    confirmed = PUBLISHED.findall(Path(log_path).read_text())
    assert confirmed, Path(log_path).read_text()[-3000:]
    published_clicks = int(confirmed[-1][1].replace(",", ""))
    connection = stack.amqp()
    try:
        queued = topology.queue_depth(connection.channel(), topology.INGEST_QUEUE)
    finally:
        connection.close()
    with stack.engine().connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM raw.ad_clicks")).scalar_one()
    # (A message whose batch was stored just before the stop may still be queued too,
    # to be deduplicated by its click id when ingest runs again.)
    assert stored <= published_clicks <= stored + queued, (stored, queued, published_clicks)
