"""Hello world in every language of the catalog, in a sandbox and without one, in one run.

    python bench/languages.py [RUNS]        (as root; bench/languages.sh sets it up)

For each language: its hello world (examples/languages/ID/hello.EXT) is compiled once (in a
sandbox, with the profile's compile command), then run RUNS times (default 21) in each of
two ways, taking turns:

  sandbox   isolette with the judge's settings (the profile's run command, environment and
            pids; 256 MiB plus the runtime's allowance), as the judges run a test
  bare      the same command on the same files, with no sandbox: the image's layers as an
            overlay, chroot into it, the same uid and environment (bench/bare.c: forks,
            chroots, execs, and reports the program's own rusage from wait4)

Printed: the median wall and cpu time of each, the sandbox's peak memory (its cgroup's,
which counts page cache) and the bare run's peak RSS, the image's size, and the start-up
allowance the profile gives (`startup_cpu_ms`) beside the median cpu time that it covers.
"""

from __future__ import annotations

import json
import os
import pathlib
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Tuple

import isolette

ROOT = pathlib.Path(__file__).resolve().parent.parent
CATALOG = ROOT / "examples" / "languages"
MEMORY = 256 << 20
UID = 60000


def profile(lang_dir: pathlib.Path) -> Dict[str, Any]:
    return json.loads((lang_dir / "language.json").read_text())


def fill(value: str) -> str:
    return value.replace("{memory_mb}", str(MEMORY >> 20))


def compile_hello(lang: Dict[str, Any], image: isolette.Image, submission: str, out: str) -> None:
    c = lang["compile"]
    if not c:
        return
    outcome = isolette.run(
        image,
        c["command"],
        mounts=[(submission, "/submission", False), (out, "/out", True)],
        workdir="/out",
        cpu_time=c["cpu_time_ms"] / 1000,
        wall_time=c["wall_time_ms"] / 1000,
        memory=c["memory_bytes"],
        pids=c["pids"],
        env={k: fill(v) for k, v in lang["env"].items()},
    )
    if outcome.status != "ok":
        raise SystemExit(f"compiling {lang['name']}'s hello world: {outcome.status}: {outcome.stderr.decode()}")


def bare_root(image: isolette.Image, submission: str, out: str, work: pathlib.Path) -> pathlib.Path:
    """The image's layers as an overlay at work/root, with /submission and /out bound in."""
    root, upper, scratch = work / "root", work / "upper", work / "work"
    for d in (root, upper, scratch):
        d.mkdir()
    lower = ":".join(str(layer) for layer in reversed(image.layers))
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={upper},workdir={scratch}", str(root)],
        check=True,
    )
    for source, target in ((submission, "submission"), (out, "out")):
        (root / target).mkdir(exist_ok=True)
        subprocess.run(["mount", "--bind", source, str(root / target)], check=True)
    for fs, target in (("proc", "proc"), ("tmpfs", "tmp")):
        subprocess.run(["mount", "-t", fs, fs, str(root / target)], check=True)
    subprocess.run(["mount", "--bind", "/dev", str(root / "dev")], check=True)
    return root


def run_bare(bare: str, root: pathlib.Path, argv: List[str], env: Dict[str, str]) -> Tuple[float, float, int, bytes]:
    """One run with no sandbox, through bench/bare.c: wall and cpu seconds, peak RSS
    (bytes), stdout."""
    variables = [f"{k}={v}" for k, v in env.items()]
    command = [bare, str(root), str(UID), str(len(variables)), *variables, *argv]
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{argv}: exit status {done.returncode} without a sandbox: {done.stderr.decode()[-500:]}")
    wall, cpu, rss = done.stderr.decode().split()[-3:]
    return float(wall), float(cpu), int(rss) * 1024, done.stdout


def measure(lang_dir: pathlib.Path, runs: int, sizes: Dict[str, int], bare_path: str) -> Dict[str, Any]:
    lang = profile(lang_dir)
    image = isolette.Image.load(lang["image"])
    work = pathlib.Path(tempfile.mkdtemp(prefix="isolette-bench-lang-"))
    submission, out = work / "submission", work / "out"
    submission.mkdir()
    out.mkdir()
    os.chmod(out, 0o777)
    shutil.copy(lang_dir / f"hello{pathlib.Path(lang['source']).suffix}", submission / lang["source"])
    os.chmod(submission / lang["source"], 0o644)
    try:
        compile_hello(lang, image, str(submission), str(out))
        env = {k: fill(v) for k, v in lang["env"].items()}
        argv = [fill(a) for a in lang["run"]]
        box = isolette.Sandbox(
            image,
            mounts=[(str(submission), "/submission", False), (str(out), "/out", False)],
            workdir="/out",
            cpu_time=10,
            wall_time=20,
            memory=MEMORY + lang["memory_overhead_bytes"],
            pids=lang["pids"],
            env=env,
        )
        root = bare_root(image, str(submission), str(out), work)
        bare_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/tmp", **env}
        sandboxed: List[Tuple[float, float, int]] = []
        bare: List[Tuple[float, float, int]] = []
        for _ in range(runs):
            outcome = box.run(argv)
            if outcome.status != "ok" or b"Hello, world!" not in outcome.stdout:
                raise SystemExit(f"{lang['name']}: {outcome.status}: {outcome.stderr.decode()[:500]}")
            sandboxed.append((outcome.wall_time, outcome.cpu_time, outcome.memory_peak))
            wall, cpu, rss, shown = run_bare(bare_path, root, argv, bare_env)
            if b"Hello, world!" not in shown:
                raise SystemExit(f"{lang['name']}: no hello without a sandbox")
            bare.append((wall, cpu, rss))
    finally:
        subprocess.run(["umount", "-R", str(work / "root")], stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    med = lambda rows, i: statistics.median(r[i] for r in rows)  # noqa: E731
    return {
        "id": lang_dir.name,
        "name": lang["name"],
        "wall_ms": (med(sandboxed, 0) * 1000, med(bare, 0) * 1000),
        "cpu_ms": (med(sandboxed, 1) * 1000, med(bare, 1) * 1000),
        "memory": (max(r[2] for r in sandboxed), max(r[2] for r in bare)),
        "image": sizes.get(lang["image"] if ":" in lang["image"] else lang["image"] + ":latest", 0),
        "startup_cpu_ms": lang["startup_cpu_ms"],
    }


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    if os.geteuid() != 0:
        raise SystemExit("languages.py: run it as root (bench/languages.sh)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    sizes = {r["name"]: r["size"] for r in isolette.Store().list()}
    print(f"hello world, median of {runs} runs each, sandbox and bare taking turns; memory in MiB")
    print("| language | wall ms sandbox | wall ms bare | cpu ms sandbox | cpu ms bare | memory sandbox (cgroup) "
          "| memory bare (RSS) | image MiB | start-up allowance ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    tools = tempfile.mkdtemp(prefix="isolette-bench-bare-")
    bare_path = os.path.join(tools, "bare")
    subprocess.run(["gcc", "-O2", "-static", "-o", bare_path, str(ROOT / "bench" / "bare.c")], check=True)
    try:
        for lang_dir in sorted(p.parent for p in CATALOG.glob("*/language.json")):
            row(measure(lang_dir, runs, sizes, bare_path))
    finally:
        shutil.rmtree(tools)


def row(r: Dict[str, Any]) -> None:
    mib = lambda b: f"{b / (1 << 20):.1f}"  # noqa: E731
    print(
        f"| {r['name']} | {r['wall_ms'][0]:.1f} | {r['wall_ms'][1]:.1f} | {r['cpu_ms'][0]:.1f} | {r['cpu_ms'][1]:.1f} "
        f"| {mib(r['memory'][0])} | {mib(r['memory'][1])} | {mib(r['image'])} | {r['startup_cpu_ms']} |",
        flush=True,
    )


if __name__ == "__main__":
    main()
