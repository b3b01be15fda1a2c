"""``Store.build``, ``Store.pull`` and ``Store.push``: a Dockerfile built into a store with
progress events, the cache on a rebuild, the errors a bad recipe and a failing step raise,
and the image pushed to a real registry on loopback (Debian's ``docker-registry``) and
pulled back into another store."""

from __future__ import annotations

import pathlib
import shutil
import socket
import subprocess
import time
from typing import Any, Dict, Iterator, List

import pytest

import isolette
from conftest import ROOT, skip

FIXTURES = ROOT / ".cache" / "oci-fixtures"


@pytest.fixture
def store(root: None, tmp_path: pathlib.Path) -> isolette.Store:
    base = FIXTURES / "two-layer"
    if not (base / "index.json").exists():
        skip("the OCI fixtures are missing; run scripts/build-oci-fixtures.sh")
    store = isolette.Store(tmp_path / "store")
    store.import_(base, name="base")
    return store


def context(tmp_path: pathlib.Path, dockerfile: str) -> pathlib.Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    (ctx / "hello.txt").write_text("hello\n")
    return ctx


def test_a_build_its_events_and_its_cache(store: isolette.Store, tmp_path: pathlib.Path) -> None:
    ctx = context(tmp_path, "FROM base\nUSER root\nCOPY hello.txt /hello.txt\nRUN echo ran > /ran && echo out\n")
    events: List[Dict[str, Any]] = []
    result = store.build(ctx, tags=["py:1"], network="none", progress=events.append)
    assert result["names"] == ["py:1"]
    assert result["layers"] == 4
    steps = [e for e in events if e["event"] == "step"]
    assert [s["line"] for s in steps] == [1, 2, 3, 4]
    assert steps[3]["reason"] == "not in the cache"
    assert {"event": "output", "step": 4, "stream": "stdout", "data": b"out\n"} in events
    again = store.build(ctx, tags=["py:1"], network="none")
    assert (again["cached"], again["id"] != "") == (2, True)
    image = store.image("py:1")
    out = isolette.run(image, ["/bin/cat", "/hello.txt", "/ran"], entrypoint=[])
    assert out.stdout == b"hello\nran\n"


def test_bad_recipes_and_failing_steps_raise(store: isolette.Store, tmp_path: pathlib.Path) -> None:
    with pytest.raises(isolette.ConfigError, match="line 2"):
        store.build(context(tmp_path, "FROM base\nNOPE x\n"), tags=["bad:1"])
    with pytest.raises(isolette.BuildError) as failed:
        store.build(context(tmp_path, "FROM base\nUSER root\nRUN exit 3\n"), tags=["bad:1"], network="none")
    assert (failed.value.kind, failed.value.line, failed.value.exit_code) == ("build", 3, 3)
    with pytest.raises(isolette.ConfigError, match="build network"):
        store.build(context(tmp_path, "FROM base\n"), network="bridge")

    def refuse(event: Dict[str, Any]) -> None:
        raise RuntimeError("the caller's callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        store.build(context(tmp_path, "FROM base\nUSER root\nRUN true\n"), tags=["bad:1"], progress=refuse)

    def refuse_the_last(event: Dict[str, Any]) -> None:
        if event["event"] == "step" and event["line"] == 3:
            raise RuntimeError("the callback failed at the last step")

    with pytest.raises(RuntimeError, match="last step"):
        store.build(context(tmp_path, "FROM base\nUSER root\nRUN true\n"), tags=["bad:1"], progress=refuse_the_last)
    assert [r["name"] for r in store.list()] == ["base:latest"], "nothing stored under a failed build's name"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def registry(tmp_path: pathlib.Path) -> Iterator[str]:
    if shutil.which("docker-registry") is None:
        skip("docker-registry is missing (Debian's docker-registry package; scripts/install.sh installs it)")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "docker-registry did not start"
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def test_push_and_pull_through_a_registry(store: isolette.Store, registry: str, tmp_path: pathlib.Path) -> None:
    store.build(context(tmp_path, "FROM base\nUSER root\nCOPY hello.txt /hello.txt\n"), tags=["py:2"], network="none")
    digest = store.push("py:2", f"{registry}/py:2")
    assert digest.startswith("sha256:")
    other = isolette.Store(tmp_path / "other")
    record = other.pull(f"{registry}/py:2")
    pushed = next(r for r in store.list() if r["name"] == "py:2")
    assert (record["id"], record["layers"]) == (pushed["id"], pushed["layers"]), "the same image, to the digest"
    out = isolette.run(other.image(f"{registry}/py:2"), ["/bin/cat", "/hello.txt"], entrypoint=[])
    assert out.stdout == b"hello\n"
    with pytest.raises(isolette.RegistryError):
        store.push("py:2", "127.0.0.1:1/py:2")
