"""A Compose project from Python (`isolette.Project`): loaded, brought up in this process on
its own network, reached by service name and through a published port, and taken down
leaving nothing; bad input is a `ConfigError` that says what to do."""

from __future__ import annotations

import json
import pathlib
import shutil
import socket
import tempfile
import time
from typing import Iterator

import pytest

import isolette

from conftest import IMAGES, children, skip

# A TCP server on 9000 answering `db says $GREETING`.
DB = (
    "import os, socket\n"
    "t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(('0.0.0.0', 9000)); t.listen()\n"
    "print('db ready', flush=True)\n"
    "while True:\n    c, _ = t.accept(); c.sendall(('db says ' + os.environ['GREETING']).encode()); c.close()\n"
)
# A TCP server on 8000 answering what `db`, by its service name, said.
WEB = (
    "import socket\n"
    "t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(('0.0.0.0', 8000)); t.listen()\n"
    "print('web ready', flush=True)\n"
    "while True:\n    c, _ = t.accept()\n    d = socket.create_connection(('db', 9000), timeout=5).recv(100)\n"
    "    c.sendall(b'web saw: ' + d); c.close()\n"
)


@pytest.fixture
def project_dir(debian: isolette.Image) -> Iterator[pathlib.Path]:
    if not pathlib.Path("/usr/bin/slirp4netns").exists():
        skip("slirp4netns is missing (scripts/setup.sh installs it)")
    path = pathlib.Path(tempfile.mkdtemp(prefix="py-compose-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int) -> bytes:
    """What the service on `port` answers; until it listens, slirp4netns accepts and closes
    at once, so an empty answer is tried again for up to 5 s."""
    deadline = time.monotonic() + 5
    while True:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            got = b"".join(iter(lambda: c.recv(4096), b""))
        if got or time.monotonic() >= deadline:
            return got
        time.sleep(0.05)


def write_app(dir: pathlib.Path, port: int) -> None:
    image = str(IMAGES / "debian-python")
    (dir / "compose.yaml").write_text(
        f"""
services:
  web:
    image: {image}
    command: ["python3", "-c", {json.dumps(WEB)}]
    ports: ["127.0.0.1:{port}:8000"]
    depends_on:
      db: {{condition: service_healthy}}
  db:
    image: {image}
    command: ["python3", "-c", {json.dumps(DB)}]
    environment:
      GREETING: ${{GREETING:-hello}}
    volumes: [data:/data]
    healthcheck:
      test: ["CMD", "python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 9000), timeout=1)"]
      interval: 200ms
      retries: 50
volumes:
  data:
"""
    )


def test_a_project_comes_up_in_this_process_and_down_leaves_nothing(project_dir: pathlib.Path) -> None:
    port = free_port()
    write_app(project_dir, port)
    project = isolette.Project.load(project_dir, project_name="pyproj", environment={"GREETING": "hi"})
    assert project.name == "pyproj"
    assert project.services == ["db", "web"]
    assert project.config()["services"]["db"]["environment"]["GREETING"] == "hi"
    networks = project_dir / ".networks"
    store = isolette.Store(project_dir / ".store")
    lines: list[str] = []
    with project.up(store=store, networks=networks, wait=True, progress=lines.append) as running:
        assert " Network pyproj_default  Created" in lines
        assert lines.index(" Sandbox pyproj-db-1  Started") < lines.index(" Sandbox pyproj-web-1  Started")
        ps = running.ps()
        assert [(s["service"], s["name"], s["state"]) for s in ps] == [
            ("db", "pyproj-db-1", "running"),
            ("web", "pyproj-web-1", "running"),
        ]
        assert ps[0]["health"] == "healthy"
        assert ps[1]["ports"] == [f"127.0.0.1:{port}->8000/tcp"]
        assert get(port) == b"web saw: db says hi"
        running.wait("db")
        running.wait("web", "service_started")
        with pytest.raises(isolette.ConfigError, match="condition `ready`: expected service_started"):
            running.wait("web", "ready")
        deadline = time.monotonic() + 10
        while b"db ready\n" not in running.logs("db")[0]:
            assert time.monotonic() < deadline, running.logs("db")
            time.sleep(0.02)
        with pytest.raises(isolette.ConfigError, match="not started by this `up`"):
            running.logs("nope")
        assert [v["name"] for v in store.volumes()] == ["pyproj_data"]
    # Out of the block: down, the volume kept, the port free, the network gone.
    assert [s["state"] for s in running.ps()] == ["exited", "exited"]
    assert [v["name"] for v in store.volumes()] == ["pyproj_data"]
    assert [p for p in networks.iterdir() if p.is_dir()] == []
    socket.create_server(("127.0.0.1", port)).close()
    assert children() == []
    # down(volumes=True) removes it.
    project.up(store=store, networks=networks).down(volumes=True)
    assert store.volumes() == []
    assert str(networks) not in pathlib.Path("/proc/self/mountinfo").read_text()


def test_an_unhealthy_dependency_and_bad_input_are_clear_errors(project_dir: pathlib.Path) -> None:
    image = str(IMAGES / "debian-python")
    (project_dir / "compose.yaml").write_text(
        f"""
services:
  db:
    image: {image}
    command: ["sleep", "600"]
    healthcheck: {{test: ["CMD", "false"], interval: 100ms, retries: 2}}
  web:
    image: {image}
    command: ["sleep", "600"]
    depends_on: {{db: {{condition: service_healthy}}}}
"""
    )
    project = isolette.Project.load(project_dir, project_name="bad")
    with pytest.raises(isolette.ConfigError, match="dependency failed to start: bad-db-1 is unhealthy"):
        project.up(store=project_dir / ".store", networks=project_dir / ".networks")
    assert children() == []
    (project_dir / "compose.yaml").write_text("services:\n  a:\n    image: x\n    deploy: {}\n")
    with pytest.raises(isolette.ConfigError, match=r"services\.a\.deploy"):
        isolette.Project.load(project_dir)
    (project_dir / "compose.yaml").write_text("services:\n  a: [\n")
    with pytest.raises(isolette.ConfigError, match=r"compose\.yaml: line 3 column 1"):
        isolette.Project.load(project_dir)
