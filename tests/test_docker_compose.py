"""docker-compose.yml: no Docker engine runs on the build machines, so the file's structure is checked here
(single node by default; a `cluster` profile of three peers bootstrapped from node 1; the Qdrant release
of the installed qdrant-client)."""

from __future__ import annotations

from pathlib import Path

import yaml

from gcl_vectordb.store.server import check_server_version, client_version

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


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

    images = {service["image"] for service in _services().values() if "qdrant/qdrant" in service["image"]}
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
    assert all(s["environment"]["QDRANT__SERVICE__API_KEY"] == "${QDRANT_API_KEY:-}" for s in services.values())
