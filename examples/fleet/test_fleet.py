"""The fleet on this machine: Debian's redis-server on a loopback port of its own, Celery
workers standing in for nodes, the HTTP API. Run by scripts/test.sh (as root, the
language catalog built into $ISOLETTE_STORE):

    python -m pytest examples/fleet/test_fleet.py
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import Dict, Iterator, List, Tuple

import pytest

HERE = pathlib.Path(__file__).resolve().parent
CATALOG = HERE.parent / "languages"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Redis:
    """redis-server from Debian on a port of its own; the append-only file keeps what a
    stop and start would lose (a node's Redis is configured so)."""

    def __init__(self) -> None:
        if not shutil.which("redis-server"):
            pytest.fail("redis-server is missing (apt-get install redis-server)")
        self.dir = tempfile.mkdtemp(prefix="isolette-fleet-redis-")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()  # a clean shutdown: the append-only file is written whole
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Fleet:
    """Celery workers (`-c 1` each, a session each, so a node's death is its whole process
    group's), on every image's queue."""

    def __init__(self, redis: Redis, extra_env: Dict[str, str]) -> None:
        sys.path.insert(0, str(HERE))
        import fleet

        self.fleet = fleet
        self.env = dict(os.environ, FLEET_REDIS=redis.url, **extra_env)
        self.workers: List[subprocess.Popen[bytes]] = []
        self.count = 0

    def start(self) -> subprocess.Popen[bytes]:
        self.count += 1
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "fleet", "worker", "-c", "1", "-n", f"w{self.count}@%h", "-l", "warning", "--without-gossip", "--without-mingle"],
            cwd=HERE,
            env=self.env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )
        self.workers.append(worker)
        return worker

    def kill_busy(self) -> None:
        """A node dies in the middle of a submission: its worker and pool process get SIGKILL
        at once (their process group), while its pool process has a submission's directory.
        The group is stopped first and the directory looked at again, so the submission's
        verdict cannot be written between the look and the kill."""
        work = pathlib.Path(tempfile.gettempdir()) / "isolette-fleet"
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, "no worker was busy for 30 s"
            for d in work.glob("*/submission-*"):
                try:
                    with open(f"/proc/{d.parent.name}/stat") as f:
                        parent = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError):
                    continue
                worker = next((w for w in self.workers if w.pid == parent), None)
                if worker is None:
                    continue
                os.killpg(worker.pid, signal.SIGSTOP)
                if d.exists():
                    os.killpg(worker.pid, signal.SIGKILL)
                    worker.wait()
                    self.workers.remove(worker)
                    return
                os.killpg(worker.pid, signal.SIGCONT)  # it had just finished: another one
            time.sleep(0.005)

    def close(self) -> None:
        for w in self.workers:
            w.terminate()
        for w in self.workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)
                w.wait()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[Redis]:
    server = Redis()
    # The fleet module reads its Redis when it is imported (by the first Fleet).
    os.environ["FLEET_REDIS"] = server.url
    yield server
    server.close()


def samples() -> List[Tuple[str, str, str]]:
    """(language, code, verdict the file is named for): the quick ones of a few languages."""
    out = []
    for language, verdicts in {
        "python3": ["ok", "wrong_answer", "runtime_error", "memory_limit"],
        "c": ["ok", "compile_error"],
        "bash": ["ok", "runtime_error"],
    }.items():
        for verdict in verdicts:
            (path,) = (CATALOG / language / "samples").glob(f"{verdict}.*")
            out.append((language, path.read_text(), verdict))
    return out


def single_judge_verdicts(cases: List[Tuple[str, str, str]]) -> Dict[Tuple[str, str], str]:
    """What the single-process judge (examples/python/judge.py) says of each sample."""
    sys.path.insert(0, str(HERE.parent / "python"))
    import judge

    verdicts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for language, code, _ in cases:
            source = pathlib.Path(tmp) / "source"
            source.write_text(code)
            report = asyncio.run(judge.judge(HERE.parent / "problems" / "a-plus-b", language, source, 1))
            verdicts[(language, code)] = report["verdict"]
    return verdicts


def leftovers() -> List[str]:
    """Sandbox processes, isolette's mounts and cgroups, and work directories still here."""
    from fleet import alive

    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"/submission/" in f.read():
                    found.append(f"process {pid}")
        except OSError:
            pass
    with open("/proc/self/mountinfo") as f:
        found += [f"mount {line.split()[4]}" for line in f if "isolette" in line]
    # A cgroup is named for its owner (PID-STARTTIME-N): one whose owner is gone is left
    # behind (a live owner's, such as another test's running beside this one, is in use).
    for root in list(pathlib.Path("/sys/fs/cgroup").glob("*/isolette")) + [pathlib.Path("/sys/fs/cgroup/isolette")]:
        if root.is_dir():
            found += [f"cgroup {d}" for d in root.iterdir() if d.is_dir() and not alive(int(d.name.split("-")[0]))]
    work = pathlib.Path(tempfile.gettempdir()) / "isolette-fleet"
    if work.exists():
        found += [f"directory {d}" for d in work.iterdir()]
    return found


def test_the_api_takes_judges_and_refuses(redis_server: Redis) -> None:
    fleet = Fleet(redis_server, {})
    fleet.start()
    import api

    server = api.serve(0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def call(method: str, path: str, body: object = None) -> Tuple[int, dict]:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(base + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    try:
        code = (CATALOG / "python3" / "samples" / "ok.py").read_text()
        status, body = call("POST", "/submissions", {"language": "python3", "problem": "a-plus-b", "code": code})
        assert status == 202, body
        deadline = time.monotonic() + 60
        while (answer := call("GET", f"/submissions/{body['id']}"))[0] == 202:
            assert time.monotonic() < deadline, "no verdict in 60 s"
            time.sleep(0.05)
        status, report = answer
        assert (status, report["verdict"], len(report["tests"])) == (200, "ok", 3), report
        assert report["tests"][0]["cpu_ms"] > 0
        for body, want, words in [
            ({"language": "cobol", "problem": "a-plus-b", "code": ""}, 400, "unknown language `cobol`"),
            ({"problem": "a-plus-b", "code": ""}, 400, "language must be"),
            ({"language": "python3", "problem": "nope", "code": ""}, 400, "no problem `nope`"),
            ({"language": "python3", "problem": "../etc", "code": ""}, 400, "problem must be"),
            ({"language": "python3", "problem": "a-plus-b", "code": "x" * (65 << 10)}, 413, "at most 65536 bytes"),
            ({"language": "python3", "problem": "a-plus-b", "code": "", "kind": "vip"}, 400, "kind must be"),
        ]:
            status, answer = call("POST", "/submissions", body)
            assert status == want and words in answer["error"], (status, answer)
        assert call("POST", "/submissions", b"{not json")[0] == 400
        assert call("GET", "/submissions/" + "0" * 32)[0] == 404
    finally:
        server.shutdown()
        fleet.close()


def test_contest_submissions_are_served_before_practice_and_rejudges(redis_server: Redis) -> None:
    fleet = Fleet(redis_server, {})
    r = fleet.fleet.connect()
    code = (CATALOG / "python3" / "samples" / "ok.py").read_text()
    # Queued while no worker runs: rejudges first, then practice, then the contest's.
    order = ["rejudge"] * 3 + ["practice"] * 3 + ["contest"] * 3
    ids = {fleet.fleet.submit(r, "python3", "a-plus-b", code, kind): kind for kind in order}
    fleet.start()
    try:
        deadline = time.monotonic() + 60
        while not all(r.exists(f"fleet:result:{sid}") for sid in ids):
            assert time.monotonic() < deadline, "no verdicts in 60 s"
            time.sleep(0.05)
    finally:
        fleet.close()
    served = sorted(ids, key=lambda sid: json.loads(r.get(f"fleet:result:{sid}"))["started"])
    assert [ids[sid] for sid in served] == ["contest"] * 3 + ["practice"] * 3 + ["rejudge"] * 3


def test_a_task_lost_on_its_way_to_a_worker_is_enqueued_again(redis_server: Redis) -> None:
    """A submission stored, but its task gone (as when a worker dies, or Redis stops, between
    the transport's `BRPOP` and its `unacked`): a node's sweeper enqueues it again."""
    fleet = Fleet(redis_server, {"FLEET_RESUBMIT": "1"})
    r = fleet.fleet.connect()
    r.flushdb()
    sid = "0" * 31 + "1"
    code = (CATALOG / "python3" / "samples" / "ok.py").read_text()
    record = {"language": "python3", "problem": "a-plus-b", "code": code, "kind": "practice", "enqueued": repr(time.time())}
    r.hset(f"fleet:submission:{sid}", mapping=record)
    r.zadd("fleet:pending", {sid: time.time() - 60})
    fleet.start()
    try:
        deadline = time.monotonic() + 60
        while not r.exists(f"fleet:result:{sid}"):
            assert time.monotonic() < deadline, "the lost task was not enqueued again in 60 s"
            time.sleep(0.05)
        assert json.loads(r.get(f"fleet:result:{sid}"))["verdict"] == "ok"
        # Judged, it leaves the pending set; a copy enqueued again meanwhile does nothing.
        deadline = time.monotonic() + 10
        while r.zscore("fleet:pending", sid) is not None:
            assert time.monotonic() < deadline, "the judged submission is still pending"
            time.sleep(0.05)
        assert r.llen(f"fleet:judgements:{sid}") == 1
    finally:
        fleet.close()


def test_workers_killed_and_redis_stopped_lose_and_duplicate_nothing(redis_server: Redis) -> None:
    """1,000 submissions; three workers killed with SIGKILL (and replaced) and Redis stopped
    for 5 s meanwhile: every submission gets exactly its single-process verdict, once."""
    cases = samples()
    expected = single_judge_verdicts(cases)
    for (language, code), verdict in expected.items():
        named = next(v for lang, c, v in cases if (lang, c) == (language, code))
        assert verdict == named, f"the single judge gives {verdict} to {language}'s {named} sample"
    # The longest submission here takes about a second: a task is given back 20 s after
    # its worker died.
    fleet = Fleet(redis_server, {"FLEET_TIME_LIMIT": "10", "FLEET_VISIBILITY": "20"})
    r = fleet.fleet.connect()
    r.flushdb()  # what the test before this one left: every record here is this test's
    for _ in range(2):
        fleet.start()
    submitted: Dict[str, Tuple[str, str]] = {}
    try:
        total = 1000
        rng = random.Random(7)
        faults = {250: "kill", 450: "kill", 600: "redis", 750: "kill"}
        for n in range(total):
            language, code, _ = cases[n % len(cases)]
            sid = fleet.fleet.submit(r, language, "a-plus-b", code, rng.choice(["contest", "practice", "rejudge"]))
            submitted[sid] = (language, code)
            fault = faults.get(n)
            if fault == "kill":
                fleet.kill_busy()
                fleet.start()
            elif fault == "redis":
                redis_server.stop()
                time.sleep(5)
                redis_server.start()
        deadline = time.monotonic() + 240
        while True:
            done = sum(1 for sid in submitted if r.exists(f"fleet:result:{sid}"))
            if done == total:
                break
            assert time.monotonic() < deadline, f"only {done} of {total} verdicts after 4 minutes"
            time.sleep(0.5)
        results = {sid: json.loads(r.get(f"fleet:result:{sid}")) for sid in submitted}
        wrong = [(sid, results[sid]["verdict"], expected[case]) for sid, case in submitted.items()
                 if results[sid]["verdict"] != expected[case]]
        assert not wrong, wrong[:5]
        # One record per submission, and no other: every judgement of one (a redelivery's
        # too) gave the same verdict.
        assert len(list(r.scan_iter("fleet:result:*", count=1000))) == total
        judged = {sid: [v.decode() for v in r.lrange(f"fleet:judgements:{sid}", 0, -1)] for sid in submitted}
        assert all(len(set(v)) == 1 for v in judged.values()), [v for v in judged.values() if len(set(v)) > 1][:5]
        # Each worker was killed in the middle of a submission, which another judged again.
        starts = collections.Counter(int(v) for v in r.hgetall("fleet:starts").values())
        print(f"submissions by the times they were started: {dict(starts)}")
        assert sum(n for times, n in starts.items() if times > 1) >= 3, starts
    finally:
        fleet.close()
    # What the killed workers left, a node's next start (isolette gc, the work of dead
    # worker processes) cleans; then nothing is left.
    subprocess.run([sys.executable, "-c", "import isolette; isolette.gc()"], check=True)
    fleet.fleet.clean_work()
    left = leftovers()
    assert not left, left[:10]
    work = pathlib.Path(tempfile.gettempdir()) / "isolette-fleet"
    if work.exists():
        work.rmdir()
