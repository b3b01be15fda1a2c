"""Fixtures: the test images the project's scripts build, and a check that nothing is
left behind. Without root or an image, a test skips with the reason; under
``ISOLETTE_TEST_STRICT=1`` (CI) that is a failure instead."""

from __future__ import annotations

import os
import pathlib
from typing import Iterator

import pytest

import isolette

ROOT = pathlib.Path(__file__).resolve().parents[2]
IMAGES = pathlib.Path(os.environ.get("ISOLETTE_CACHE", ROOT / ".cache" / "images"))
PROBE = "/usr/local/bin/isolette-probe"
STRICT = os.environ.get("ISOLETTE_TEST_STRICT") == "1"


def skip(reason: str) -> None:
    if STRICT:
        pytest.fail(f"{reason} (ISOLETTE_TEST_STRICT=1 turns this skip into a failure)")
    pytest.skip(reason)


def image_named(name: str) -> isolette.Image:
    path = IMAGES / name
    if not (path / PROBE.lstrip("/")).exists():
        skip(f"the {name} test image is missing; run scripts/build-test-images.sh")
    return isolette.Image.open(path)


@pytest.fixture
def root() -> None:
    if os.geteuid() != 0:
        skip("needs root (CI runs as root)")


@pytest.fixture
def busybox(root: None) -> isolette.Image:
    return image_named("busybox")


@pytest.fixture
def debian(root: None) -> isolette.Image:
    return image_named("debian-python")


@pytest.fixture
def open_dir() -> Iterator[pathlib.Path]:
    """A temporary directory the sandbox's user may read and write (pytest's own `tmp_path` lies
    below a directory only root may enter)."""
    import shutil
    import tempfile

    path = pathlib.Path(tempfile.mkdtemp(prefix="py-sandbox-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def own_cgroups() -> list[str]:
    """Cgroups named for this process (`<pid>-<start>-<seq>`)."""
    prefix = f"{os.getpid()}-"
    found = []
    # The parents of isolette's cgroups (v1: one per hierarchy; v2: one), not a walk of the
    # whole tree, whose other cgroups come and go meanwhile.
    for base in [*pathlib.Path("/sys/fs/cgroup").glob("*/isolette"), pathlib.Path("/sys/fs/cgroup/isolette")]:
        if base.is_dir():
            found += [str(p) for p in base.iterdir() if p.is_dir() and p.name.startswith(prefix)]
    return found


def children() -> list[int]:
    """This process's child processes."""
    out = []
    for task in pathlib.Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            text = (task / "children").read_text().split()
        except FileNotFoundError:
            continue  # a thread that has just ended
        out += [int(pid) for pid in text]
    return out


@pytest.fixture(scope="session", autouse=True)
def nothing_left() -> Iterator[None]:
    """After the whole session: no sandbox process, no cgroup, no fd of ours."""
    fds_before = set(os.listdir("/proc/self/fd"))
    yield
    isolette.cleanup()
    assert children() == [], "sandbox processes are left"
    assert own_cgroups() == [], "cgroups are left"
    left = set(os.listdir("/proc/self/fd")) - fds_before
    # An fd opened by pytest itself (its capture files) may come and go; ours are pipes,
    # sockets, memfds and pidfds.
    ours = [fd for fd in left if any(k in os.readlink(f"/proc/self/fd/{fd}") for k in ("pipe", "socket", "pidfd"))]
    assert ours == [], f"fds are left: {ours}"
