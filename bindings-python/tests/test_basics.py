"""Conversions both ways, options, errors: the API as a judge uses it."""

from __future__ import annotations

import datetime
import errno
import pathlib

import pytest

import isolette
from conftest import PROBE


def test_a_run_and_its_outcome(busybox: isolette.Image) -> None:
    out = isolette.run(busybox, ["/bin/echo", "hi"])
    assert out.status == "ok" and out.status is isolette.Status.OK
    assert isinstance(out.status, str) and str(out.status) == "ok"
    assert (out.exit_code, out.signal, out.stdout, out.stderr) == (0, None, b"hi\n", b"")
    assert out.cpu_time >= 0 and 0 < out.wall_time < 5 and out.memory_peak > 0
    assert not out.approximate and not out.stdout_truncated
    d = out.to_dict()
    assert list(d) == [
        "status", "exit_code", "signal", "cpu_time", "user_time", "system_time", "wall_time",
        "setup_time", "memory_peak", "approximate", "stdout_truncated", "stderr_truncated",
        "stdout", "stderr",
    ]
    assert d["status"] == "ok" and d["stdout"] == b"hi\n"
    assert repr(out).startswith("Outcome(status='ok', exit_code=0, ") and "stdout=b'hi\\n'" in repr(out)


def test_verdicts_are_values_not_exceptions(busybox: isolette.Image) -> None:
    assert isolette.run(busybox, [PROBE, "exit", "3"]).status == "runtime_error"
    out = isolette.run(busybox, [PROBE, "kill-self", "SEGV"])
    assert (out.status, out.signal) == ("signaled", 11)
    assert isolette.run(busybox, [PROBE, "spin"], cpu_time=0.2).status == "cpu_time_limit"
    assert isolette.run(busybox, [PROBE, "sleep", "5"], wall_time="200ms").status == "wall_time_limit"
    assert isolette.run(busybox, [PROBE, "memhog", "100M"], memory="32M").status == "memory_limit"
    out = isolette.run(busybox, [PROBE, "write-bytes", "100000"], output_limit=1000)
    assert (out.status, len(out.stdout), out.stdout_truncated) == ("output_limit", 1000, True)
    out = isolette.run(busybox, [PROBE, "try-syscall", "bpf"], seccomp={"deny": ["bpf"]})
    assert out.status == "syscall_blocked"


def test_bytes_pass_through_exactly(busybox: isolette.Image) -> None:
    weird = [b"\xff\xfe", "caf\u00e9", b"", "-x", pathlib.Path("/a b")]
    out = isolette.run(busybox, [PROBE, "args", *weird])
    assert out.stdout == b"\xff\xfe\0caf\xc3\xa9\0\0-x\0/a b\0"
    out = isolette.run(busybox, [PROBE, "stdin-echo"], stdin=bytes(range(256)))
    assert out.stdout == bytes(range(256))
    out = isolette.run(busybox, [PROBE, "env"], env={b"K\xff": b"v\x01", "LANG": "C"})
    assert b"K\xff=v\x01\n" in out.stdout and b"LANG=C\n" in out.stdout


def test_sizes_and_durations_in_every_form(busybox: isolette.Image) -> None:
    for memory in (64 << 20, "64M", "64MiB"):
        assert isolette.run(busybox, ["/bin/true"], memory=memory).status == "ok"
    for wall in (0.2, datetime.timedelta(milliseconds=200), "200ms", "0.2s"):
        out = isolette.run(busybox, [PROBE, "sleep", "5"], wall_time=wall)
        assert out.status == "wall_time_limit" and out.wall_time < 1.5


def test_options_are_checked(busybox: isolette.Image) -> None:
    with pytest.raises(TypeError, match="unknown option `memroy`"):
        isolette.run(busybox, ["/bin/true"], memroy="1G")
    with pytest.raises(TypeError, match="unknown option"):
        isolette.Sandbox(busybox, wall="1s")
    bad = [
        {"memory": -1}, {"memory": "lots"}, {"memory": True}, {"wall_time": -1.0}, {"wall_time": float("nan")},
        {"wall_time": "soon"}, {"pids": "8"}, {"stdout": "somewhere"}, {"seccomp": "strict"},
        {"seccomp": {"deny": ["no_such_call"]}}, {"user": (0, 0)}, {"env": {"A=B": "c"}}, {"tty": "yes"},
        {"mounts": ["nocolon"]}, {"stdin": 3.5}, {"hostname": ""},
    ]
    for options in bad:
        with pytest.raises(isolette.ConfigError) as caught:
            isolette.run(busybox, ["/bin/true"], **options)
        assert isinstance(caught.value, ValueError) and caught.value.kind == "config", options


def test_errors_have_their_own_classes(busybox: isolette.Image, tmp_path: pathlib.Path) -> None:
    with pytest.raises(isolette.ImageError):
        isolette.Image.open(tmp_path / "missing")
    with pytest.raises(isolette.CommandNotFound, match="no-such-command"):
        isolette.run(busybox, ["no-such-command"])
    with pytest.raises(isolette.SetupError) as caught:
        isolette.run(busybox, ["/bin/true"], workdir="/no/such/dir")
    e = caught.value
    assert isinstance(e, OSError) and isinstance(e, isolette.IsoletteError)
    assert (e.errno, e.step, e.path, e.kind) == (errno.ENOENT, "workdir", "/no/such/dir", "setup")
    with pytest.raises(isolette.ConfigError):
        isolette.run(busybox, [])
    with pytest.raises(isolette.ConfigError, match="NUL"):
        isolette.run(busybox, ["/bin/echo", "a\0b"])
    for cls in (isolette.ConfigError, isolette.ImageError, isolette.CommandNotFound, isolette.HostError,
                isolette.SetupError):
        assert issubclass(cls, isolette.IsoletteError)


def test_a_sandbox_keeps_options_and_takes_overrides(busybox: isolette.Image) -> None:
    box = isolette.Sandbox(busybox, wall_time=3, memory="64M", env={"WHO": "box"})
    assert box.run([PROBE, "env"]).stdout.count(b"WHO=box") == 1
    assert box.run([PROBE, "env"], env={"WHO": "run"}).stdout.count(b"WHO=run") == 1
    assert box.run([PROBE, "sleep", "2"], wall_time=0.1).status == "wall_time_limit"
    assert "memory='64M'" in repr(box)


def test_mounts_files_and_streams(busybox: isolette.Image, open_dir: pathlib.Path) -> None:
    tmp_path = open_dir
    (tmp_path / "in.txt").write_bytes(b"from a file\n")
    out = isolette.run(busybox, ["/bin/cat", "/data/in.txt"], mounts=[f"{tmp_path}:/data"])
    assert out.stdout == b"from a file\n"
    out = isolette.run(busybox, ["/bin/sh", "-c", "echo x > /w/o"], mounts=[(tmp_path, "/w", True)])
    assert out.status == "ok" and (tmp_path / "o").read_bytes() == b"x\n"
    out = isolette.run(busybox, ["/bin/cat"], stdin=tmp_path / "in.txt", stdout=tmp_path / "out.txt")
    assert out.stdout == b"" and (tmp_path / "out.txt").read_bytes() == b"from a file\n"
    out = isolette.run(busybox, ["/bin/sh", "-c", "echo e >&2"], stderr=isolette.NULL)
    assert out.stderr == b""


def test_a_terminal(busybox: isolette.Image) -> None:
    out = isolette.run(busybox, ["/bin/sh", "-c", "tty; stty size"], tty=(30, 100))
    assert out.stdout == b"/dev/pts/0\r\n30 100\r\n"


def test_a_real_program_in_the_debian_image(debian: isolette.Image) -> None:
    out = isolette.run(debian, ["python3", "-c", "import math; print(math.factorial(20))"], wall_time=10)
    assert (out.status, out.stdout) == ("ok", b"2432902008176640000\n")


def test_a_small_judge_loop(debian: isolette.Image) -> None:
    solution = "n = int(input()); print(sum(range(n + 1)))"
    cases = [(b"10\n", b"55\n"), (b"100\n", b"5050\n"), (b"0\n", b"0\n"), (b"x\n", b"?")]
    box = isolette.Sandbox(debian, memory="128M", cpu_time=2, wall_time=5, pids=16)
    verdicts = []
    for given, expected in cases:
        out = box.run(["python3", "-c", solution], stdin=given)
        if out.status != "ok":
            verdicts.append(str(out.status))
        else:
            verdicts.append("accepted" if out.stdout == expected else "wrong_answer")
    assert verdicts == ["accepted", "accepted", "accepted", "runtime_error"]


def test_volumes(busybox: isolette.Image, tmp_path: pathlib.Path) -> None:
    store = isolette.Store(tmp_path / "store")
    store.create_volume("data")
    volume = store.volume("data")
    assert volume.name == "data" and pathlib.Path(volume.path).is_dir()
    out = isolette.run(busybox, ["/bin/sh", "-c", "echo kept > /v/f"], volumes=[(volume, "/v", True)])
    assert out.status == "ok"
    out = isolette.run(busybox, ["/bin/cat", "/v/f"], volumes=[(volume, "/v")])
    assert out.stdout == b"kept\n"
    with pytest.raises(isolette.ConfigError, match="in use"):
        store.remove_volume("data")
    del volume
    store.remove_volume("data")
    assert store.volumes() == []


def test_networks_and_published_ports(busybox: isolette.Image) -> None:
    import socket
    import time

    # Loopback is up; nothing else is there.
    out = isolette.run(busybox, ["sh", "-c", "ip -o link | wc -l"])
    assert out.stdout == b"1\n"
    # A published port (host port 0: a free one), reported as the core formats it.
    with isolette.spawn(busybox, ["sh", "-c", "echo served | nc -l -p 8000"], publish=["0:8000"], wall_time=10) as r:
        [port] = r.ports
        assert port.startswith("127.0.0.1:") and port.endswith("->8000/tcp")
        host_port = int(port.split("->")[0].rsplit(":", 1)[1])
        got = b""
        for _ in range(100):  # the server may not listen yet
            try:
                with socket.create_connection(("127.0.0.1", host_port), timeout=2) as c:
                    got = c.recv(100)
            except OSError:
                pass
            if got:
                break
            time.sleep(0.05)
        assert got == b"served\n"
        assert r.wait().status == "ok"
    for bad in [{"network": 3}, {"publish": "8080:80"}, {"publish": ["nonsense"]}, {"egress": [("maybe", "1.1.1.1")]},
                {"network": "outbound", "egress": ["permit:1.1.1.1"]}]:
        with pytest.raises(isolette.ConfigError):
            isolette.run(busybox, ["true"], **bad)
    with pytest.raises(isolette.ConfigError, match="no network `nowhere`"):
        isolette.run(busybox, ["true"], network="nowhere")
