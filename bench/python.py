"""The Python binding's cost per run, against the Rust loop, in one run on one machine.

    bench/python.sh            (as root; builds what it needs, then runs this)

Rows are measured in interleaved rounds (a round of Python runs, then a round of the
Rust loop `core/examples/run_loop.rs`, again and again), so a slow minute of this noisy
machine weighs on both alike. Then, in rounds of their own, the same Python loop in a
process that holds 1 GiB (touched), against one that holds nothing: core's clone must not
copy the caller's memory."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import isolette

ROUNDS = int(os.environ.get("ROUNDS", "10"))
PER_ROUND = int(os.environ.get("PER_ROUND", "40"))


def python_round(image: isolette.Image, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        out = isolette.run(image, ["/bin/true"], memory=256 << 20, pids=64)
        times.append((time.perf_counter() - started) * 1e6)
        assert out.status == "ok", out
    return times


def rust_round(run_loop: str, image_dir: str, n: int) -> list[float]:
    out = subprocess.run([run_loop, image_dir, str(n)], check=True, capture_output=True, text=True)
    return [float(line) for line in out.stdout.split()]


def held_round(image_dir: str, hold_mib: int, n: int) -> list[float]:
    """The Python loop in a fresh process holding `hold_mib` MiB, touched."""
    code = f"""
import isolette, json, time
hold = bytearray({hold_mib} << 20)
for i in range(0, len(hold), 4096):
    hold[i] = 1
image = isolette.Image.open({image_dir!r})
isolette.run(image, ["/bin/true"])
times = []
for _ in range({n}):
    t = time.perf_counter()
    isolette.run(image, ["/bin/true"], memory=256 << 20, pids=64)
    times.append((time.perf_counter() - t) * 1e6)
print(json.dumps(times))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return list(json.loads(out.stdout))


def main() -> None:
    image_dir, run_loop = sys.argv[1], sys.argv[2]
    image = isolette.Image.open(image_dir)
    python_round(image, 5)  # warm up: the init's memfd, the seccomp filter, the cgroup thread
    py: list[float] = []
    rust: list[float] = []
    held: dict[int, list[float]] = {0: [], 1024: []}
    # Two phases: a 1 GiB process leaves the machine's caches cold for whatever runs next,
    # so the processes holding memory do not take turns with the Python and Rust loops.
    for _ in range(ROUNDS):
        py += python_round(image, PER_ROUND)
        rust += rust_round(run_loop, image_dir, PER_ROUND)
    for _ in range(ROUNDS):
        for mib in held:
            held[mib] += held_round(image_dir, mib, PER_ROUND // 2)
    p50 = statistics.median
    print(f"isolette from Python, /bin/true with memory + pids limits, {ROUNDS} x {PER_ROUND} runs, interleaved")
    print(f"  Rust loop (core/examples/run_loop.rs)   p50 {p50(rust) / 1000:.3f} ms")
    print(f"  Python loop (isolette.run)              p50 {p50(py) / 1000:.3f} ms"
          f"  (+{(p50(py) - p50(rust)) / 1000:.3f} ms per run)")
    base, big = p50(held[0]), p50(held[1024])
    print(f"  Python process holding    0 MiB         p50 {base / 1000:.3f} ms")
    print(f"  Python process holding 1024 MiB         p50 {big / 1000:.3f} ms  ({big / base:.2f}x)")


if __name__ == "__main__":
    main()
