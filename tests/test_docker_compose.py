"""docker-compose.yml and the Dockerfile: no Docker engine runs on the build machines, so their structure
is checked here (single node by default; a `cluster` profile of three peers bootstrapped from node 1; a
`serve` profile with `gcl-vdb serve` built from the repository's Dockerfile beside Qdrant; every Qdrant node
runs the release of the installed qdrant-client)."""

from __future__ import annotations

import json
import shlex
import tomllib
from pathlib import Path

import typer.main
import yaml

from gcl_vectordb.cli import serve
from gcl_vectordb.store.server import check_server_version, client_version

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"


def _services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_default_is_one_node_with_ports_volume_and_health_check() -> None:
    services = _services()
    default = [name for name, s in services.items() if not s.get("profiles")]
    assert default == ["qdrant"]
    node = services["qdrant"]
    assert {"6333:6333", "6334:6334"} <= set(node["ports"])
    assert node["volumes"] == ["qdrant-storage:/qdrant/storage"]
    assert "6333" in " ".join(node["healthcheck"]["test"])


def test_every_node_runs_the_release_of_the_installed_qdrant_client() -> None:
    """The pinned server is the client's own minor release, which the connect-time check accepts."""
    images = {s["image"] for s in _services().values() if s.get("image", "").startswith("qdrant/qdrant:")}
    assert len(images) == 1
    release = images.pop().split(":v")[1]
    assert release.split(".")[:2] == client_version().split(".")[:2]
    check_server_version(release, "docker-compose.yml", client_version())


def test_cluster_profile_has_three_peers_bootstrapped_from_the_first() -> None:
    services = _services()
    cluster = {name: s for name, s in services.items() if "cluster" in s.get("profiles", [])}
    assert sorted(cluster) == ["qdrant-node-1", "qdrant-node-2", "qdrant-node-3"]
    for name, service in cluster.items():
        assert service["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        command = service["command"]
        assert command[command.index("--uri") + 1] == f"http://{name}:6335"
        if name != "qdrant-node-1":
            assert command[command.index("--bootstrap") + 1] == "http://qdrant-node-1:6335"
            assert service["depends_on"]["qdrant-node-1"]["condition"] == "service_healthy"
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert len(published) == len(set(p.split(":")[0] for p in published))  # no host port used twice
    assert all(s["environment"]["QDRANT__SERVICE__API_KEY"] == "${QDRANT_API_KEY:-}" for name, s in services.items()
               if name.startswith("qdrant"))


def _serve_options(args: list[str]) -> dict:
    """The options `gcl-vdb serve ARGS` would run with (parsed by the real command, not run)."""
    assert args[:2] == ["gcl-vdb", "serve"], args
    return typer.main.get_command(serve.app).make_context("serve", list(args[2:])).params


def test_serve_profile_runs_the_service_beside_qdrant() -> None:
    services = _services()
    service = services["gcl-vdb"]
    assert service["profiles"] == ["serve"] and service["build"] == "." and (ROOT / "Dockerfile").is_file()
    assert service["depends_on"]["qdrant"]["condition"] == "service_healthy"
    options = _serve_options(service["command"])
    assert options["qdrant"] == "http://qdrant:6333" and options["host"] == "0.0.0.0" and options["port"] == 8000
    assert service["ports"] == ["127.0.0.1:8000:8000"]  # published to this host only
    assert service["environment"] == {"QDRANT_API_KEY": "${QDRANT_API_KEY:-}", "GCL_VDB_API_KEY": "${GCL_VDB_API_KEY:-}"}
    assert all(volume.endswith(":ro") for volume in service["volumes"])
    assert int(service["stop_grace_period"].rstrip("s")) > options["drain_timeout"]  # SIGTERM may drain in full


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_installs_the_cpu_extra_and_serves_as_a_user() -> None:
    steps = _dockerfile()
    kinds = [kind for kind, _ in steps]
    assert steps[0][0] == "FROM" and steps[0][1].startswith("python:3.11-slim")
    for kind, args in steps:
        if kind == "COPY":  # everything copied exists in the repository
            assert all((ROOT / source).exists() for source in shlex.split(args)[:-1]), args
    install = next(args for kind, args in steps if kind == "RUN" and "pip install" in args)
    extra = install.split('".[', 1)[1].split(']"', 1)[0]
    assert extra == "cpu" and extra in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    user = [args for kind, args in steps if kind == "USER"]
    assert user and user[-1] not in ("root", "0") and kinds.index("USER") < kinds.index("CMD")
    command = json.loads(dict(steps)["CMD"])
    assert _serve_options(command)["host"] == "0.0.0.0"
    assert "/readyz" in dict(steps)["HEALTHCHECK"] and dict(steps)["EXPOSE"] == "8000"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "gcl-vdb-store", "gcl-vdb-work", ".git"} <= set(ignored)
