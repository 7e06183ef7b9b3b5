"""docker-compose.yml, the Dockerfile, the Procfile and Grafana's provisioning, checked
without a Docker engine: they parse, and everything they name exists in this project."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from farloom_tasks.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
GRAFANA = ROOT / "deploy" / "grafana"
CELERY_SUBCOMMANDS = {"worker", "beat", "flower"}
REQUIRED_VAR = re.compile(r"\$\{(\w+):\?[^}]*\}")


def entry_point_problem(argv: list[str]) -> str | None:
    """None when ``argv`` runs a real entry point of this project, else why not.

    Leading shell assignments (``VAR=value``) and ``exec`` are skipped: a Procfile
    line hands secrets to a program through its environment that way.
    """
    while argv and (("=" in argv[0] and not argv[0].startswith("-")) or argv[0] == "exec"):
        argv = argv[1:]
    if argv[:1] == ["farloom"]:
        if len(argv) < 2 or argv[1] not in COMMANDS:
            return f"`farloom {argv[1:2]}` is not in cli.COMMANDS"
        module = COMMANDS[argv[1]][0]
        if importlib.util.find_spec(module) is None:
            return f"`farloom {argv[1]}` needs {module}, which does not exist"
        return None
    if argv[:3] == ["celery", "-A", "farloom_tasks"]:
        if len(argv) < 4 or argv[3] not in CELERY_SUBCOMMANDS:
            return f"celery subcommand {argv[3:4]} is not one of {sorted(CELERY_SUBCOMMANDS)}"
        if importlib.util.find_spec("farloom_tasks.celery") is None:
            return "celery -A farloom_tasks needs farloom_tasks/celery.py"
        return None
    return f"{argv[:3]} is neither `farloom <command>` nor `celery -A farloom_tasks ...`"


def own_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in SERVICES.items() if svc.get("build")}


def test_every_project_service_runs_a_real_farloom_or_celery_entry_point() -> None:
    problems = {name: entry_point_problem(svc["command"]) for name, svc in own_services().items()}

    assert {name for name, problem in problems.items() if problem} == set(), problems
    assert {"migrate", "watcher", "ingest", "worker", "beat", "writer", "flower",
            "api"} <= set(own_services())


def test_every_procfile_line_runs_a_real_entry_point() -> None:
    lines = [line for line in (ROOT / "Procfile").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    processes = {name: shlex.split(command) for name, command in
                 (line.split(":", 1) for line in lines)}

    assert {name: entry_point_problem(argv) for name, argv in processes.items()
            if entry_point_problem(argv)} == {}
    assert set(processes) == {"demo", "ingest", "worker", "beat", "writer", "flower", "api"}
    run_pipeline = (ROOT / "scripts" / "run-pipeline").read_text()
    assert "honcho start -f Procfile" in run_pipeline


def test_depends_on_names_only_services_that_exist() -> None:
    missing = {(name, dep) for name, svc in SERVICES.items()
               for dep in (svc.get("depends_on") or {}) if dep not in SERVICES}

    assert missing == set()


def test_ingest_can_be_scaled_and_beat_cannot() -> None:
    ingest, beat = SERVICES["ingest"], SERVICES["beat"]

    assert "container_name" not in ingest and "ports" not in ingest
    assert beat.get("deploy", {}).get("replicas") == 1


def test_every_credential_is_required_from_the_environment_and_documented() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    documented = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text()
                  .splitlines() if "=" in line and not line.startswith("#")}

    for name, svc in SERVICES.items():
        env = svc.get("environment") or {}
        for key, value in env.items():
            secret = any(word in key for word in ("PASSWORD", "PASS")) or "@" in str(value)
            if secret:
                assert REQUIRED_VAR.search(str(value)), f"{name}.{key} has a literal credential"
    assert set(REQUIRED_VAR.findall(text)) <= documented
    assert {"POSTGRES_PASSWORD", "FARLOOM_API_DB_PASSWORD", "FARLOOM_FLOWER_PASSWORD"} <= (
        set(REQUIRED_VAR.findall(text)))


def test_every_long_running_service_has_a_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert re.search(r"^HEALTHCHECK .*CMD \[\"farloom\", \"status\", \"--preflight\"\]",
                     dockerfile, re.MULTILINE | re.DOTALL)
    for name, svc in SERVICES.items():
        if name == "migrate":
            continue
        assert svc.get("healthcheck") or svc.get("build"), f"{name} has no healthcheck"
        assert not (svc.get("healthcheck") or {}).get("disable"), name
    assert "/healthz" in json.dumps(SERVICES["api"]["healthcheck"])


def test_the_api_reads_through_the_read_only_role() -> None:
    url = SERVICES["api"]["environment"]["FARLOOM_API_DATABASE_URL"]

    assert url.startswith("postgresql+psycopg2://farloom_api:")
    assert "FARLOOM_API_DB_PASSWORD" in (ROOT / "deploy/postgres/10-api-role.sh").read_text()


def grafana_datasource() -> dict[str, Any]:
    doc = yaml.safe_load((GRAFANA / "provisioning/datasources/farloom.yaml").read_text())
    (source,) = doc["datasources"]
    return dict(source)


def test_grafana_reads_postgres_as_the_read_only_role_with_a_password_from_env() -> None:
    source = grafana_datasource()

    assert source["user"] == "farloom_api"
    assert source["type"] == "grafana-postgresql-datasource"
    assert source["secureJsonData"]["password"] == "$FARLOOM_API_DB_PASSWORD"
    assert "FARLOOM_API_DB_PASSWORD" in SERVICES["grafana"]["environment"]


def test_the_grafana_dashboard_is_provisioned_and_every_panel_uses_the_datasource() -> None:
    uid = grafana_datasource()["uid"]
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/farloom.yaml").read_text())
    path = provider["providers"][0]["options"]["path"]
    mounts = [volume.split(":")[:2] for volume in SERVICES["grafana"]["volumes"]]
    dashboard = json.loads((GRAFANA / "dashboards/farloom.json").read_text())

    assert ["./deploy/grafana/dashboards", path] in mounts
    queried = [panel for panel in dashboard["panels"] if "targets" in panel]
    assert len(queried) >= 5
    for panel in queried:
        refs = [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
        assert {ref["uid"] for ref in refs} == {uid}, panel["title"]
    titles = " ".join(panel["title"] for panel in dashboard["panels"])
    for needed in ("Clicks per minute", "Top 100", "lag", "Ad $ad", "dead letters"):
        assert needed in titles


@pytest.mark.parametrize("name", ["migrate", "api", "worker", "flower"])
def test_project_services_share_the_one_image(name: str) -> None:
    assert SERVICES[name]["build"] == "."

