"""The judge fleet under load, on this machine, in one run (bench/fleet.sh sets it up).

    python bench/fleet.py [WORKERS] [SUBMISSIONS]        (as root; defaults 2 and 200)

Redis (Debian's redis-server on a loopback port of its own, no persistence) and WORKERS
Celery workers (`-c 1` each, standing in for nodes) judge 10-test submissions (the Python
`ok` sample on examples/problems/a-plus-b-10):

  in-process   WORKERS processes each judging its share with the Python judge, no fleet:
               the throughput the fleet is measured against
  saturated    SUBMISSIONS enqueued at once: the fleet's throughput
  half rate    an open-loop driver offering submissions at a fixed rate, half the
               saturated throughput: enqueue-to-verdict latency, and the fleet's own
               overhead, that latency minus the judge's time for the same submission
               (the task's own start-to-verdict time, measured in the worker)
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

ROOT = pathlib.Path(__file__).resolve().parent.parent
FLEET = ROOT / "examples" / "fleet"
PROBLEM = "a-plus-b-10"
CODE = (ROOT / "examples" / "languages" / "python3" / "samples" / "ok.py").read_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def judge_many(count: int) -> None:
    sys.path.insert(0, str(ROOT / "examples" / "python"))
    import judge

    with tempfile.TemporaryDirectory() as tmp:
        source = pathlib.Path(tmp) / "main.py"
        source.write_text(CODE)
        for _ in range(count):
            report = asyncio.run(judge.judge(ROOT / "examples" / "problems" / PROBLEM, "python3", source, 1))
            assert report["verdict"] == "ok", report


def in_process(workers: int, total: int) -> float:
    """Submissions a second, judged by `workers` processes with no fleet."""
    started = time.perf_counter()
    procs = [multiprocessing.Process(target=judge_many, args=(total // workers,)) for _ in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    return (total // workers * workers) / (time.perf_counter() - started)


def wait_all(r, fleet, ids: List[str], deadline: float = 600) -> Dict[str, dict]:
    end = time.monotonic() + deadline
    results: Dict[str, dict] = {}
    while len(results) < len(ids):
        # One round trip for all that wait, so that the driver takes little of the cores.
        waiting = [sid for sid in ids if sid not in results]
        for sid, raw in zip(waiting, r.mget([f"fleet:result:{sid}" for sid in waiting])):
            if raw is not None:
                results[sid] = json.loads(raw)
        assert time.monotonic() < end, f"{len(results)} of {len(ids)} verdicts"
        time.sleep(0.05)
    assert all(v["verdict"] == "ok" for v in results.values())
    return results


def pct(values: List[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def main() -> None:
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    total = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    if os.geteuid() != 0:
        raise SystemExit("fleet.py: run it as root (bench/fleet.sh)")
    data = tempfile.mkdtemp(prefix="isolette-bench-fleet-")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    os.environ["FLEET_REDIS"] = url
    redis_proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", data, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    procs: List[subprocess.Popen[bytes]] = []
    try:
        sys.path.insert(0, str(FLEET))
        import fleet

        r = fleet.connect()
        while True:
            try:
                r.ping()
                break
            except Exception:
                time.sleep(0.05)
        queue = fleet.queue_of("python3")
        for n in range(workers):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "fleet", "worker", "-c", "1", "-Q", queue, "-n", f"b{n}@%h",
                 "-l", "warning", "--without-gossip", "--without-mingle"],
                cwd=FLEET, env=dict(os.environ), start_new_session=True, stdout=subprocess.DEVNULL,
            ))
        # Ready: each node's heartbeat is there; then a warm-up round.
        while len(list(r.scan_iter("fleet:node:*"))) < workers:
            time.sleep(0.1)
        wait_all(r, fleet, [fleet.submit(r, "python3", PROBLEM, CODE) for _ in range(2 * workers)])

        base = in_process(workers, total)

        started = time.perf_counter()
        ids = [fleet.submit(r, "python3", PROBLEM, CODE) for _ in range(total)]
        wait_all(r, fleet, ids)
        saturated = total / (time.perf_counter() - started)

        rate = saturated / 2
        ids = []
        t0 = time.perf_counter()
        for n in range(total):
            # Open loop: each submission at its own time, whatever the fleet is doing.
            pause = t0 + n / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            ids.append(fleet.submit(r, "python3", PROBLEM, CODE))
        results = wait_all(r, fleet, ids)
        latency = [(v["finished"] - v["enqueued"]) * 1000 for v in results.values()]
        overhead = [(v["started"] - v["enqueued"]) * 1000 for v in results.values()]
        judged = [(v["finished"] - v["started"]) * 1000 for v in results.values()]
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait()
        redis_proc.terminate()
        redis_proc.wait()
        shutil.rmtree(data, ignore_errors=True)

    print(f"fleet: {workers} workers (-c 1), Celery over Redis on loopback, {total} submissions of 10 tests a run")
    print("| row | figure |")
    print("| --- | ---: |")
    print(f"| in-process judge, {workers} processes | {base:.1f} submissions/s |")
    print(f"| fleet, saturated | {saturated:.1f} submissions/s ({saturated / base * 100:.0f} % of in-process) |")
    print(f"| half rate offered | {rate:.1f} submissions/s |")
    print(f"| judge time of a submission, p50 | {statistics.median(judged):.1f} ms |")
    print(f"| enqueue to verdict, p50 / p90 / p99 | {pct(latency, 50):.1f} / {pct(latency, 90):.1f} / {pct(latency, 99):.1f} ms |")
    print(f"| fleet overhead, p50 / p90 / p99 | {pct(overhead, 50):.1f} / {pct(overhead, 90):.1f} / {pct(overhead, 99):.1f} ms |")


if __name__ == "__main__":
    main()
