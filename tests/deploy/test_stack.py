"""The deployment stack holds together: compose, image, collector, Prometheus, Tempo, Grafana, docs.

No Docker engine is needed. What can run here runs for real: Debian's ``docker-compose``
validates the compose file against the Compose Specification, ``promtool`` checks the Prometheus
config with the rule files it mounts, a real Prometheus loads that config and scrapes a running
sidecar, the healthcheck commands run against live servers, and every TraceQL query of
docs/observability.md is evaluated on the real spans of a sidecar. The rest (the collector,
Tempo and Grafana files) is checked against each other and against ``sidecar/telemetry/names.py``:
every name, host and port one file uses is one another file defines.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import importlib.util
import json
import logging
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client.parser import text_string_to_metric_families

from sidecar.config import load_settings
from sidecar.runtime import Overrides
from sidecar.server import create_app
from sidecar.simulator import Simulator
from sidecar.telemetry import names as n
from sidecar.telemetry.setup import OtelProviders
from tests.helpers import ServerFactory, Sleeps, chat_status, sidecar_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COLLECTOR_FILE = ROOT / "collector-config" / "otel-collector.yaml"
DATASOURCES_FILE = ROOT / "deploy/grafana/provisioning/datasources/datasources.yaml"
DASHBOARD_PROVIDERS_FILE = ROOT / "deploy/grafana/provisioning/dashboards/dashboards.yaml"
# Every name the sidecar emits, as names.py spells it.
EMITTED_NAMES = frozenset(v for v in vars(n).values() if isinstance(v, str))


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def services() -> dict[str, Any]:
    compose: dict[str, Any] = load(COMPOSE_FILE)
    return dict(compose["services"])


def expand(value: str) -> str:
    """``${VAR:-default}`` as compose expands it with VAR unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(path in the repository, path in the container) of each bind mount."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("./"):
            mounts.append((ROOT / source, target))
    return mounts


def in_repo(service: dict[str, Any], container_path: str) -> Path | None:
    """Where a path inside the container comes from in the repository (None: the image)."""
    for source, target in bind_mounts(service):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target) :].lstrip("/")
    return None


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "//" in url else f"//{url}")
    assert parts.hostname is not None, url
    assert parts.port is not None, url
    return parts.hostname, parts.port


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- docker-compose.yml --------------------------------------------------------------------------


def docker_compose(*args: str, file: Path = COMPOSE_FILE) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("Debian's docker-compose is not installed (apt-get install docker-compose)")
    return subprocess.run(
        [binary, "-f", str(file), *args],
        cwd=file.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},  # no OPENAI_API_KEY etc.: the defaults must do
    )


def test_compose_file_is_valid_by_the_compose_specification(tmp_path: Path) -> None:
    """``docker-compose config`` accepts the file with and without the demo profile, and
    rejects a copy with one unknown key, so the check is really a schema check."""
    for profile in ((), ("--profile", "demo")):
        result = docker_compose(*profile, "config", "--quiet")
        assert result.returncode == 0, result.stderr
    listed = docker_compose("--profile", "demo", "config", "--services").stdout.split()
    assert set(listed) == set(services())

    broken = load(COMPOSE_FILE)
    broken["services"]["sidecar"]["healthcheck"]["intervall"] = "10s"
    copy = tmp_path / "docker-compose.yml"
    copy.write_text(yaml.safe_dump(broken))
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    result = docker_compose("config", "--quiet", file=copy)
    assert result.returncode != 0
    assert "intervall" in result.stderr


def test_the_stack_has_every_service_pinned_and_on_loopback_only() -> None:
    """The services of the issue, each image at a fixed version, each port on 127.0.0.1."""
    stack = services()
    expected = {"sidecar", "redis", "postgres", "otel-collector", "prometheus", "alertmanager"}
    assert expected | {"tempo", "grafana", "mock-upstream"} <= set(stack)
    assert stack["otel-collector"]["image"].startswith("otel/opentelemetry-collector-contrib:")
    assert stack["tempo"]["image"].startswith("grafana/tempo:")
    assert stack["mock-upstream"]["profiles"] == ["demo"]
    assert stack["mock-upstream"]["command"][0] == "mock-upstream"
    for name, service in stack.items():
        image = service.get("image", "")
        _, _, tag = image.rpartition(":")
        if "build" in service:
            assert image == "llm-sidecar:local", name
        else:
            assert tag not in ("", "latest"), (name, image)
            assert any(c.isdigit() for c in tag), (name, image)
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_services_wait_for_what_they_need_and_healthchecks_exist() -> None:
    """Every depends_on names a condition; service_healthy points at a service that has a
    healthcheck; service_completed_successfully at a one-shot job."""
    stack = services()
    assert stack["sidecar"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert stack["sidecar"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert stack["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for name, service in stack.items():
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in stack, (name, dependency)
            condition = how["condition"]
            assert condition in (
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            )
            if condition == "service_healthy":
                check = stack[dependency].get("healthcheck", {})
                assert check.get("test"), dependency
                assert not check.get("disable"), dependency
            if condition == "service_completed_successfully":
                assert "restart" not in stack[dependency], dependency
    for name in ("sidecar", "redis", "postgres", "prometheus", "alertmanager", "grafana"):
        assert stack[name]["healthcheck"]["test"], name


def test_every_file_a_service_mounts_or_names_exists_in_the_repository() -> None:
    """Bind-mount sources exist, and so does every container path a command names that lies
    under a mount (configs, scripts): a typo would start a container without its config."""
    checked = 0
    for name, service in services().items():
        for source, _ in bind_mounts(service):
            assert source.exists(), f"{name} mounts {source.relative_to(ROOT)}, which is missing"
        args = [*service.get("entrypoint", []), *service.get("command", [])]
        for arg in map(expand, map(str, args)):
            path = arg.split("=", 1)[-1]
            if path.startswith("/") and (mounted := in_repo(service, path)) is not None:
                assert mounted.is_file(), f"{name} runs with {path}: {mounted} is missing"
                checked += 1
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").is_file()
    assert checked >= 5  # sidecar config, collector, prometheus, tempo, scripts
    # Directories mounted whole hold what their consumer reads.
    assert list((ROOT / "alerts").glob("*.rules.yml")), "no alert rules to mount"
    assert list((ROOT / "dashboards").glob("*.json")), "no dashboards to mount"


def test_sidecar_configs_for_the_stack_are_valid_and_mounted() -> None:
    """Every sidecar*.yaml in deploy/ is a valid config and mounted where $SIDECAR_CONFIG
    selects it; the demo one sends everything to the mock-upstream service."""
    sidecar = services()["sidecar"]
    configs = sorted((ROOT / "deploy").glob("sidecar*.yaml"))
    assert len(configs) >= 2
    config_arg = sidecar["command"][sidecar["command"].index("--config") + 1]
    config_dir = expand(config_arg).rsplit("/", 1)[0]
    for config in configs:
        load_settings(config, env={})
        assert in_repo(sidecar, f"{config_dir}/{config.name}") == config, config
    demo = load_settings(ROOT / "deploy/sidecar.demo.yaml", env={})
    (provider,) = demo.providers.values()
    host, port = host_port(provider.base_url)
    mock = services()["mock-upstream"]
    assert host == "mock-upstream"
    assert str(port) == mock["command"][mock["command"].index("--port") + 1]
    assert provider.api_key_env is None  # keyless


def test_the_sidecars_environment_points_at_the_stacks_services() -> None:
    """OTLP goes to the collector's HTTP receiver, Redis and PostgreSQL URLs name the services
    with the database's own user and name."""
    stack = services()
    env = stack["sidecar"]["environment"]
    collector = load(COLLECTOR_FILE)
    host, port = host_port(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert host == "otel-collector"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert host_port(collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"])[1] == port
    assert host_port(env["REDIS_URL"])[0] == "redis"
    database = urlsplit(expand(env["DATABASE_URL"]))
    postgres = stack["postgres"]["environment"]
    assert database.hostname == "postgres"
    assert database.username == postgres["POSTGRES_USER"]
    assert database.password == expand(postgres["POSTGRES_PASSWORD"])
    assert database.path.lstrip("/") == postgres["POSTGRES_DB"]


# --- Dockerfile ----------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def healthcheck_code(test: list[str]) -> str:
    assert test[:3] == ["CMD", "python", "-c"], test
    return test[3]


def test_the_image_is_slim_non_root_and_checks_its_health() -> None:
    """python:3.11-slim, the package installed from the repo, a non-root user, /healthz."""
    steps = dockerfile()
    bases = [args.split()[0] for word, args in steps if word == "FROM"]
    assert bases
    assert all(base.startswith("python:3.11-slim") for base in bases)
    assert ("RUN", "/opt/venv/bin/pip install .") in steps
    user = [args for word, args in steps if word == "USER"][-1]
    assert user.split(":")[0] not in ("0", "root")
    assert ("EXPOSE", "8787") in steps
    healthcheck = [args for word, args in steps if word == "HEALTHCHECK"][-1]
    assert "/healthz" in healthcheck
    assert "curl" not in healthcheck
    entrypoint = json.loads([args for word, args in steps if word == "ENTRYPOINT"][-1])
    command = json.loads([args for word, args in steps if word == "CMD"][-1])
    assert entrypoint[-1] == "llm-sidecar"
    assert command == ["serve", "--host", "0.0.0.0"]
    # The compose healthcheck is the image's own.
    image_check = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert healthcheck_code(["CMD", *image_check[:2], image_check[2]]) == healthcheck_code(
        services()["sidecar"]["healthcheck"]["test"]
    )


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern that matches the path (or a parent of it) decides."""
    verdict = False
    parts = path.split("/")
    for pattern in patterns:
        negate = pattern.startswith("!")
        bare = pattern.lstrip("!").rstrip("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, bare) for prefix in prefixes) or (
            bare.startswith("**/") and fnmatch.fnmatch(parts[-1], bare[3:])
        ):
            verdict = not negate
    return verdict


def test_the_build_context_holds_every_file_the_package_build_reads() -> None:
    """.dockerignore lets in pyproject.toml, the readme it names, and every package file and
    package-data file; it keeps the virtualenv, tests, git history and databases out."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = ["pyproject.toml", project["project"]["readme"]]
    package = ROOT / "sidecar"
    needed += [
        str(p.relative_to(ROOT)) for p in package.rglob("*.py") if "__pycache__" not in str(p)
    ]
    for data in project["tool"]["setuptools"]["package-data"]["sidecar"]:
        matches = list(package.glob(data))
        assert matches, data
        needed += [str(p.relative_to(ROOT)) for p in matches]
    assert [path for path in needed if ignored(path, patterns)] == []
    for outside in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", "usage.db", "bench/x.py"):
        assert ignored(outside, patterns), outside
    assert ignored("sidecar/__pycache__/cli.cpython-311.pyc", patterns)


@dataclass
class Observed:
    server: TestServer
    spans: InMemorySpanExporter
    sim: Simulator


@pytest.fixture
async def observed(
    sim: Simulator,
    upstream: TestServer,
    aiohttp_server: ServerFactory,
    provider_key: str,
    sleeps: Sleeps,
) -> Observed:
    """A sidecar whose spans land in memory, with thresholds small enough to reach quickly."""
    spans = InMemorySpanExporter()
    settings = sidecar_settings(
        str(upstream.make_url("/v1")),
        operations={
            "chat": {"slow_ms": 50},
            "evaluation": {"rate_limit": {"requests": 1, "per_s": 60}, "cache_ttl_s": 0},
        },
        admission={"max_concurrency": 1},
    )
    providers = OtelProviders(otlp=False, span_exporter=spans)
    server = await aiohttp_server(create_app(settings, Overrides(otel=providers, sleep=sleeps)))
    return Observed(server, spans, sim)


async def every_kind_of_call(observed: Observed) -> None:
    """Slow, queued, fallen back, failed, cached and rate-limited calls; alice makes most."""
    sim, server = observed.sim, observed.server
    sim.config.latency_ms, sim.config.latency_sigma = 80, 0.0  # over chat's slow_ms of 50
    slow = [chat_status(server, "gpt-4o-mini", **{"X-Sidecar-User": u}) for u in ("alice", "bob")]
    assert await asyncio.gather(*slow) == [200, 200]  # one slot: the second one queues
    sim.config.latency_ms = 0
    sim.script("gpt-4o", [503, 503, 503])  # then the chain's next model, gpt-4, answers
    assert await chat_status(server, "gpt-4o", **{"X-Sidecar-User": "alice"}) == 200
    failing = {"X-Sidecar-User": "alice", "X-Mock-Outcome": "503"}
    assert await chat_status(server, "gpt-4o-mini", **failing) == 503
    for expected in (200, 200):
        intent = {"X-Sidecar-Operation": "intent"}
        assert await chat_status(server, "gpt-4o-mini", **intent) == expected
    evaluation = {"X-Sidecar-Operation": "evaluation"}
    assert [await chat_status(server, "gpt-4o", **evaluation) for _ in range(2)] == [200, 429]


# --- healthchecks, run for real ------------------------------------------------------------------


def run_check(code: str, port: int) -> int:
    """A healthcheck's Python, pointed at ``port``; its exit status."""
    local = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", code)
    assert local != code or f":{port}" in code
    return subprocess.run(
        [sys.executable, "-c", local], capture_output=True, timeout=10, check=False
    ).returncode


def alert_receiver() -> Any:
    spec = importlib.util.spec_from_file_location(
        "alert_receiver", ROOT / "deploy/alert_receiver.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_each_python_healthcheck_passes_against_its_live_service_and_fails_without(
    sidecar: TestServer, upstream: TestServer, aiohttp_server: ServerFactory
) -> None:
    """The image's and compose's healthcheck commands, run against a real sidecar, simulator
    and alert receiver: exit 0; against a port where nothing listens: not 0."""
    receiver = await aiohttp_server(alert_receiver().app())
    live = {"sidecar": sidecar, "mock-upstream": upstream, "alert-receiver": receiver}
    checks = {
        name: healthcheck_code(service["healthcheck"]["test"])
        for name, service in services().items()
        if service.get("healthcheck", {}).get("test", [None, None])[1] == "python"
    }
    assert set(checks) == set(live)
    closed = free_port()
    for name, code in checks.items():
        assert await asyncio.to_thread(run_check, code, live[name].port or 0) == 0, name
        assert await asyncio.to_thread(run_check, code, closed) != 0, name


async def test_the_alert_receiver_logs_each_alert_alertmanager_posts(
    aiohttp_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Alertmanager's webhook JSON in, one log line per alert out."""
    receiver = await aiohttp_server(alert_receiver().app())
    payload = {
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "SidecarSlowOperation", "severity": "ticket"},
                "annotations": {"summary": "chat p95 over its threshold"},
            }
        ],
    }
    caplog.set_level(logging.WARNING, logger="alert-receiver")
    async with (
        aiohttp.ClientSession() as http,
        http.post(receiver.make_url("/alerts"), json=payload) as response,
    ):
        assert (response.status, await response.json()) == (200, {"received": 1})
    assert "FIRING ticket SidecarSlowOperation: chat p95 over its threshold" in caplog.text
    alertmanager = load(ROOT / "alerts/alertmanager.yml")
    urls = [c["url"] for r in alertmanager["receivers"] for c in r.get("webhook_configs", [])]
    receiver_service = services()["alert-receiver"]
    port = receiver_service["command"][receiver_service["command"].index("--port") + 1]
    assert f"http://alert-receiver:{port}/alerts" in urls


# --- the collector -------------------------------------------------------------------------------

SECTIONS = {"receivers": "receivers", "processors": "processors", "exporters": "exporters"}


def collector_problems(config: dict[str, Any]) -> list[str]:
    """What the collector would refuse or silently ignore, as messages (empty: fine)."""
    problems: list[str] = []
    service = config.get("service", {})
    used: dict[str, set[str]] = {section: set() for section in SECTIONS}
    for name, pipeline in service.get("pipelines", {}).items():
        for section in SECTIONS:
            for component in pipeline.get(section, []):
                used[section].add(component)
                if component not in (config.get(section) or {}):
                    problems.append(f"pipeline {name}: {section[:-1]} {component} is not defined")
        processors = pipeline.get("processors", [])
        if not processors or processors[0] != "memory_limiter":
            problems.append(f"pipeline {name}: memory_limiter is not first")
        if "batch" in processors and processors[-1] != "batch":
            problems.append(f"pipeline {name}: batch is not last")
        if not pipeline.get("receivers") or not pipeline.get("exporters"):
            problems.append(f"pipeline {name}: needs receivers and exporters")
    for section in SECTIONS:
        for component in set(config.get(section) or {}) - used[section]:
            problems.append(f"{section[:-1]} {component} is defined but in no pipeline")
    for extension in service.get("extensions", []):
        if extension not in (config.get("extensions") or {}):
            problems.append(f"extension {extension} is not defined")
    if "health_check" not in service.get("extensions", []):
        problems.append("the health_check extension is not enabled")
    for protocol, settings in config["receivers"]["otlp"]["protocols"].items():
        if not str((settings or {}).get("endpoint", "")).startswith("0.0.0.0:"):
            problems.append(f"otlp {protocol} receiver is not bound explicitly to 0.0.0.0")
    return problems


def test_the_collector_config_is_structurally_sound() -> None:
    """Every pipeline uses defined components, memory_limiter first and batch last, every
    defined component is used, health_check is on, receivers bind explicitly; a broken copy
    is caught, so the check can fail."""
    config = load(COLLECTOR_FILE)
    assert collector_problems(config) == []
    assert set(config["service"]["pipelines"]) == {"metrics", "traces"}
    traces = config["service"]["pipelines"]["traces"]["processors"]
    assert traces.index("tail_sampling") < traces.index("batch")
    assert "resourcedetection" in config["service"]["pipelines"]["metrics"]["processors"]
    assert config["processors"]["resourcedetection"]["detectors"] == ["env", "system"]

    broken = load(COLLECTOR_FILE)
    broken["service"]["pipelines"]["traces"]["processors"].reverse()
    broken["service"]["pipelines"]["metrics"]["exporters"].append("otlp/missing")
    broken["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] = "localhost:4317"
    messages = "\n".join(collector_problems(broken))
    assert "traces: memory_limiter is not first" in messages
    assert "exporter otlp/missing is not defined" in messages
    assert "grpc receiver is not bound explicitly" in messages


def test_tail_sampling_keeps_errors_slow_traces_fallbacks_and_a_baseline() -> None:
    """Each policy keys on what the sidecar really sets (names.py), plus a probabilistic rest."""
    policies = {
        p["type"]: p for p in load(COLLECTOR_FILE)["processors"]["tail_sampling"]["policies"]
    }
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert policies["latency"]["latency"]["threshold_ms"] > 0
    fallback = policies["string_attribute"]["string_attribute"]
    assert fallback["key"] == n.SIDECAR_FALLBACK
    assert fallback["enabled_regex_matching"] is True
    assert [re.fullmatch(v, "gpt-4o->gpt-3.5-turbo") is not None for v in fallback["values"]] == [
        True
    ]
    slow = policies["ottl_condition"]["ottl_condition"]["spanevent"]
    assert slow == [f'name == "{n.EVENT_SLOW_OPERATION}"']
    assert 0 < policies["probabilistic"]["probabilistic"]["sampling_percentage"] < 100


def test_collector_tempo_prometheus_and_grafana_agree_on_hosts_and_ports() -> None:
    """Each address one config names is one the next one listens on, in a compose service."""
    stack = services()
    collector = load(COLLECTOR_FILE)
    tempo = load(ROOT / "deploy/tempo.yaml")
    prometheus = load(ROOT / "deploy/prometheus.yml")
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"][0]
        for job in prometheus["scrape_configs"]
    }
    # collector -> tempo (OTLP gRPC)
    host, port = host_port(collector["exporters"]["otlp/tempo"]["endpoint"])
    assert host == "tempo"
    assert host in stack
    assert host_port(
        tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    ) == (
        "0.0.0.0",
        port,
    )
    # prometheus -> collector (the sidecar's metrics, and the collector's own)
    exporter_port = host_port(collector["exporters"]["prometheus"]["endpoint"])[1]
    assert targets["otel-collector"] == f"otel-collector:{exporter_port}"
    reader = collector["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
    assert targets["otel-collector-internal"] == f"otel-collector:{reader['prometheus']['port']}"
    # tempo -> prometheus (span metrics by remote write, which Prometheus must accept)
    remote = tempo["metrics_generator"]["storage"]["remote_write"][0]["url"]
    assert urlsplit(remote).netloc == "prometheus:9090"
    assert "--web.enable-remote-write-receiver" in stack["prometheus"]["command"]
    # prometheus -> alertmanager
    (alertmanager,) = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanager == "alertmanager:9093"
    # grafana -> prometheus, tempo
    datasources = {d["type"]: d for d in load(DATASOURCES_FILE)["datasources"]}
    assert urlsplit(datasources["prometheus"]["url"]).netloc == "prometheus:9090"
    assert (
        urlsplit(datasources["tempo"]["url"]).netloc
        == f"tempo:{tempo['server']['http_listen_port']}"
    )
    # Tempo keeps its data on the volume tempo-init hands over to it.
    assert stack["tempo-init"]["entrypoint"][-1] == "/var/tempo"
    assert "tempo-data:/var/tempo" in stack["tempo"]["volumes"]
    for path in (
        tempo["storage"]["trace"]["wal"]["path"],
        tempo["storage"]["trace"]["local"]["path"],
    ):
        assert path.startswith("/var/tempo/")


# --- Grafana provisioning ----------------------------------------------------------------------


def datasource_references(node: Any) -> Iterator[dict[str, str]]:
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            yield node["datasource"]
        for value in node.values():
            yield from datasource_references(value)
    elif isinstance(node, list):
        for value in node:
            yield from datasource_references(value)


def test_grafana_provisions_the_datasources_and_the_dashboards_they_use() -> None:
    """Datasources prometheus and tempo (uids), linked both ways (exemplars → traces, traces →
    metrics, service map); the dashboards provider reads where compose mounts dashboards/, and
    every datasource a dashboard names is provisioned (by uid, or by type for a variable)."""
    provisioned = {d["uid"]: d for d in load(DATASOURCES_FILE)["datasources"]}
    assert {uid: d["type"] for uid, d in provisioned.items()} == {
        "prometheus": "prometheus",
        "tempo": "tempo",
    }
    assert [d["uid"] for d in provisioned.values() if d.get("isDefault")] == ["prometheus"]
    prometheus, tempo = provisioned["prometheus"]["jsonData"], provisioned["tempo"]["jsonData"]
    assert prometheus["exemplarTraceIdDestinations"][0]["datasourceUid"] == "tempo"
    assert tempo["tracesToMetrics"]["datasourceUid"] == "prometheus"
    assert tempo["serviceMap"]["datasourceUid"] == "prometheus"

    (provider,) = load(DASHBOARD_PROVIDERS_FILE)["providers"]
    grafana = services()["grafana"]
    assert in_repo(grafana, provider["options"]["path"]) == ROOT / "dashboards"
    assert in_repo(grafana, "/etc/grafana/provisioning/datasources/datasources.yaml") == (
        DATASOURCES_FILE
    )
    dashboards = sorted((ROOT / "dashboards").glob("*.json"))
    assert dashboards
    for path in dashboards:
        board = json.loads(path.read_text())
        variables = {v["name"]: v for v in board.get("templating", {}).get("list", [])}
        for ref in datasource_references(board):
            uid = ref.get("uid", "")
            if match := re.fullmatch(r"\$\{?(\w+)\}?", uid):
                variable = variables[match.group(1)]
                assert variable["type"] == "datasource", (path.name, uid)
                assert variable["query"] in {d["type"] for d in provisioned.values()}, path.name
            elif uid and not uid.startswith("-- "):  # "-- Grafana --" and the like are built in
                assert uid in provisioned, (path.name, uid)
                assert provisioned[uid]["type"] == ref.get("type", provisioned[uid]["type"])


def traces_to_metrics() -> dict[str, Any]:
    (tempo,) = [d for d in load(DATASOURCES_FILE)["datasources"] if d["type"] == "tempo"]
    links: dict[str, Any] = tempo["jsonData"]["tracesToMetrics"]
    return links


def is_error(span: ReadableSpan) -> bool:
    return span.status.status_code is StatusCode.ERROR


def tags_matcher(span: ReadableSpan) -> str:
    """Grafana's ``$__tags`` for a span: its attributes under the configured label names."""
    attributes = dict(span.attributes or {})
    return ", ".join(
        f'{tag["value"]}="{attributes[tag["key"]]}"'
        for tag in traces_to_metrics()["tags"]
        if tag["key"] in attributes
    )


async def scrape(server: TestServer) -> dict[str, set[str]]:
    """Metric name → label names, from the sidecar's /metrics."""
    async with aiohttp.ClientSession() as http, http.get(server.make_url("/metrics")) as resp:
        text = await resp.text()
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


async def test_traces_to_metrics_links_use_real_span_attributes_and_metric_labels(
    observed: Observed,
) -> None:
    """Each link's span attribute is set on the sidecar's client spans, and maps to a label the
    queried metrics carry in a live scrape; each queried metric is emitted."""
    await every_kind_of_call(observed)
    scraped = await scrape(observed.server)
    client_attributes = set().union(
        *(
            s.attributes or {}
            for s in observed.spans.get_finished_spans()
            if s.kind.name == "CLIENT"
        )
    )
    links = traces_to_metrics()
    for tag in links["tags"]:
        assert tag["key"] in EMITTED_NAMES, tag
        assert tag["key"] in client_attributes, tag
    for query in links["queries"]:
        for metric in re.findall(r"([a-z_]+)\{\$__tags", query["query"]):
            assert metric in scraped, (query["name"], metric)
            for tag in links["tags"]:
                assert tag["value"] in scraped[metric], (metric, tag["value"])


# --- Prometheus, for real ------------------------------------------------------------------------


def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return binary


def prometheus_config_for_test(tmp_path: Path, scrape_target: str | None = None) -> Path:
    """deploy/prometheus.yml with the rule files resolved through compose's mounts (as the
    container sees them) and, given a target, the collector job pointed at a live sidecar."""
    config = load(ROOT / "deploy/prometheus.yml")
    prometheus = services()["prometheus"]
    rule_files = []
    for pattern in config["rule_files"]:
        source = in_repo(prometheus, pattern)
        assert source is not None, f"{pattern} is not mounted into the prometheus service"
        assert list(source.parent.glob(source.name)), f"{pattern} matches no file"
        rule_files.append(str(source))
    config["rule_files"] = rule_files
    if scrape_target is not None:
        config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = "1s"
        for job in config["scrape_configs"]:
            if job["job_name"] == "otel-collector":  # the collector exports the same names
                job["static_configs"] = [{"targets": [scrape_target]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_promtool_accepts_the_config_and_the_rules_it_mounts(tmp_path: Path) -> None:
    """``promtool check config`` passes, and it found and checked the mounted rule files."""
    binary = promtool()
    path = prometheus_config_for_test(tmp_path)
    result = subprocess.run(
        [binary, "check", "config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for rules in (ROOT / "alerts").glob("*.rules.yml"):
        assert str(rules) in result.stdout + result.stderr


@contextlib.contextmanager
def running_prometheus(config: Path, storage: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    address = f"127.0.0.1:{free_port()}"
    flags = [f for f in services()["prometheus"]["command"] if f.startswith("--enable-feature")]
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={storage}",
            f"--web.listen-address={address}",
            "--web.enable-remote-write-receiver",
            *flags,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://{address}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


async def until(
    http: aiohttp.ClientSession,
    url: str,
    accept: Callable[[Any], bool],
    params: dict[str, str] | None = None,
    timeout_s: float = 30,
) -> Any:
    """GET a Prometheus API URL until ``accept`` says yes (bounded); the accepted answer."""
    deadline = time.monotonic() + timeout_s
    body: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(url, params=params) as response:
                body = await response.json(content_type=None)
                if response.status == 200 and accept(body):
                    return body
        await asyncio.sleep(0.25)
    raise AssertionError(f"{url}: not accepted within {timeout_s} s; last answer {body}")


async def test_prometheus_runs_the_stack_config_with_its_rules_and_the_trace_links_find_data(
    observed: Observed, tmp_path: Path
) -> None:
    """A real Prometheus loads deploy/prometheus.yml with every rule of alerts/, scrapes a
    sidecar under traffic, and each traces-to-metrics query, with ``$__tags`` filled from a real
    client span, returns data."""
    await every_kind_of_call(observed)
    config = prometheus_config_for_test(tmp_path, f"127.0.0.1:{observed.server.port}")
    rules_in_files = sum(
        len(group["rules"])
        for path in (ROOT / "alerts").glob("*.rules.yml")
        for group in load(path)["groups"]
    )
    spans = observed.spans.get_finished_spans()
    clients = [s for s in spans if s.kind.name == "CLIENT"]
    ok = next(s for s in clients if not is_error(s))
    # The metrics are per request: a failed attempt that a fallback made good is no failed
    # call there, so the failure link is followed from an attempt of a request that failed.
    failed_requests = {s.context.span_id for s in spans if s.kind.name == "SERVER" and is_error(s)}
    failed = next(
        s for s in clients if is_error(s) and s.parent and s.parent.span_id in failed_requests
    )
    with running_prometheus(config, tmp_path / "data") as prometheus:
        async with aiohttp.ClientSession() as http:
            rules = await until(
                http,
                f"{prometheus}/api/v1/rules",
                lambda body: all(  # every rule evaluated at least once
                    not rule.get("lastEvaluation", "0001").startswith("0001")
                    for group in body["data"]["groups"]
                    for rule in group["rules"]
                ),
            )
            loaded = [rule for group in rules["data"]["groups"] for rule in group["rules"]]
            assert len(loaded) == rules_in_files
            assert [r["name"] for r in loaded if r["health"] == "err"] == []
            jobs = {j["job_name"] for j in load(config)["scrape_configs"]}
            await until(  # the scrape manager lists its targets within a few seconds
                http,
                f"{prometheus}/api/v1/targets",
                lambda body: {t["labels"]["job"] for t in body["data"]["activeTargets"]} == jobs,
            )
            for link in traces_to_metrics()["queries"]:
                span = failed if 'error_type!=""' in link["query"] else ok
                query = link["query"].replace("$__tags", tags_matcher(span))
                answer = await until(
                    http,
                    f"{prometheus}/api/v1/query",
                    lambda body: bool(body["data"]["result"]),
                    params={"query": query},
                )
                assert answer["status"] == "success", link["name"]


# --- docs/observability.md: every TraceQL query finds its spans ----------------------------------

# The doc uses production thresholds; the test's calls are slowed by tens of milliseconds, not
# seconds. Each substitution must still apply (a doc edit that drops it fails the test).
SCALED = {
    "duration > 5s": "duration > 50ms",
    "span.sidecar.queue.wait_ms > 1000": "span.sidecar.queue.wait_ms > 20",
}
_CONDITION = re.compile(
    r"(?P<lhs>event:name|span\.[\w.]+|kind|status|duration|name)\s*"
    r"(?P<op>=~|!=|>=|<=|=|>|<)\s*(?P<rhs>\"[^\"]*\"|[\w.]+)"
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m)")
_UNITS_NS = {"ms": 1e6, "s": 1e9, "m": 60e9}


def traceql_queries() -> list[str]:
    text = (ROOT / "docs/observability.md").read_text()
    return re.findall(r"```traceql\n(.*?)\n```", text, flags=re.S)


def _compare(value: Any, op: str, expected: Any) -> bool:
    if value is None:
        return False  # TraceQL: a missing attribute matches no comparison
    if op == "=~":
        return re.fullmatch(expected, str(value)) is not None
    comparisons: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        ">": lambda a, b: a > b,
        "<": lambda a, b: a < b,
        ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b,
    }
    return comparisons[op](value, expected)


def _condition(text: str) -> Callable[[ReadableSpan], bool]:
    match = _CONDITION.fullmatch(text.strip())
    assert match, f"the test's TraceQL subset does not cover {text!r}"
    lhs, op, rhs = match["lhs"], match["op"], match["rhs"]
    literal: Any = rhs[1:-1] if rhs.startswith('"') else rhs
    if lhs == "duration":
        duration = _DURATION.fullmatch(rhs)
        assert duration, rhs
        limit_ns = float(duration[1]) * _UNITS_NS[duration[2]]
        return lambda s: _compare((s.end_time or 0) - (s.start_time or 0), op, limit_ns)
    if lhs == "kind":
        return lambda s: _compare(s.kind.name.lower(), op, literal)
    if lhs == "status":
        return lambda s: _compare(s.status.status_code.name.lower(), op, literal)
    if lhs == "name":
        return lambda s: _compare(s.name, op, literal)
    if lhs == "event:name":
        return lambda s: any(_compare(e.name, op, literal) for e in s.events)
    key = lhs.removeprefix("span.")
    if not rhs.startswith('"'):
        literal = float(rhs)
    return lambda s: _compare((s.attributes or {}).get(key), op, literal)


def _spanset(text: str) -> Callable[[ReadableSpan], bool]:
    conditions = [_condition(part) for part in text.strip().strip("{}").split("&&")]
    return lambda span: all(condition(span) for condition in conditions)


def _descends(span: ReadableSpan, ancestor: ReadableSpan, by_id: dict[int, ReadableSpan]) -> bool:
    parent = span.parent
    while parent is not None:
        if parent.span_id == ancestor.context.span_id:
            return True
        above = by_id.get(parent.span_id)
        parent = above.parent if above is not None else None
    return False


def matching(query: str, spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    """Spans the query's selection (before any ``|`` stage) returns: ``{A}``, ``{A} >> {B}``
    (B below A) or ``{A} > {B}`` (B a child of A)."""
    head = query.split(" | ", 1)[0]
    parts = re.split(r"\s*(>>|>)\s*(?=\{)", head.strip())
    first = [s for s in spans if _spanset(parts[0])(s)]
    if len(parts) == 1:
        return first
    assert len(parts) == 3, head
    by_id = {s.context.span_id: s for s in spans}
    below = _spanset(parts[2])
    return [
        s
        for s in spans
        if below(s)
        and any(
            (_descends(s, a, by_id) if parts[1] == ">>" else s.parent == a.context) for a in first
        )
    ]


async def test_every_traceql_query_in_the_docs_finds_the_calls_it_is_about(
    observed: Observed,
) -> None:
    """Each query of docs/observability.md, run over the real spans of slow, queued, fallen
    back, failed, cached and rate-limited calls, selects spans; every attribute it names
    (selections and groupings too) is one the sidecar sets, per names.py and the spans."""
    queries = traceql_queries()
    assert len(queries) >= 10
    text = "\n".join(queries)
    for production in SCALED:
        assert production in text, f"docs/observability.md no longer says {production!r}"
    await every_kind_of_call(observed)
    spans = observed.spans.get_finished_spans()
    seen_attributes = set().union(*(s.attributes or {} for s in spans))
    seen_events = {e.name for s in spans for e in s.events}
    for query in queries:
        scaled = query
        for production, small in SCALED.items():
            scaled = scaled.replace(production, small)
        assert matching(scaled, spans), f"selects nothing: {query}"
        for attribute in re.findall(r"span\.([a-z_][\w.]*[a-z_])", query):
            assert attribute in EMITTED_NAMES, (query, attribute)
            assert attribute in seen_attributes, (query, attribute)
        for event in re.findall(r'event:name = "([^"]+)"', query):
            assert event in EMITTED_NAMES, (query, event)
            assert event in seen_events, (query, event)
    # The evaluator can say no: another user, or a client span above its request.
    assert not matching('{ kind = server && span.sidecar.user = "mallory" }', spans)
    assert not matching("{ kind = client } >> { kind = server }", spans)
    # The user query finds alice's calls and only hers.
    user_query = next(q for q in queries if 'span.sidecar.user = "alice" }' in q and ">>" not in q)
    users = {(s.attributes or {}).get(n.SIDECAR_USER) for s in matching(user_query, spans)}
    assert users == {"alice"}


def test_the_collector_keeps_what_the_docs_query() -> None:
    """The doc's promise (all failed, slow and fallback traces kept) is the collector's config."""
    text = (ROOT / "docs/observability.md").read_text()
    policies = {p["name"] for p in load(COLLECTOR_FILE)["processors"]["tail_sampling"]["policies"]}
    assert {"errors", "slow-traces", "slow-operations", "fallbacks", "baseline"} <= policies
    assert "one in ten" in text
    baseline = next(
        p
        for p in load(COLLECTOR_FILE)["processors"]["tail_sampling"]["policies"]
        if p["type"] == "probabilistic"
    )
    assert baseline["probabilistic"]["sampling_percentage"] == 10
