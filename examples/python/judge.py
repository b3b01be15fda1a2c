"""A judge on isolette's Python package, with the Rust judge's contract and output.

    python examples/python/judge.py --problem examples/problems/a-plus-b \\
        --language python3 examples/languages/python3/samples/ok.py [--json] [--parallel N] \\
        [--languages DIR]

With `--parallel N`, up to N tests run at once (asyncio and `run_async`); the verdict is
still the first failing test in order. Inputs stream from their files; the output is
compared once the test has ended (kept in memory up to the problem's output limit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import re
import shutil
import sys
import tempfile
from typing import Any, Dict, List, Optional

import isolette

HERE = pathlib.Path(__file__).resolve().parent
LANGUAGES = HERE.parent / "languages"
FIELDS = ("image", "source", "compile", "run", "env", "pids", "memory_overhead_bytes", "startup_cpu_ms",
          "memory_errors", "seccomp")
COMPILE_FIELDS = ("command", "cpu_time_ms", "wall_time_ms", "memory_bytes", "output_bytes", "file_bytes", "pids")


class JudgeError(Exception):
    """A submission the judge cannot judge: an unknown language, a broken profile."""


def load_language(catalog: pathlib.Path, name: str) -> Dict[str, Any]:
    """A language of the catalog, `CATALOG/NAME/language.json`, every field there."""
    path = catalog / name / "language.json"
    if not re.fullmatch(r"[a-z0-9]+", name) or not path.is_file():
        known = sorted(p.parent.name for p in catalog.glob("*/language.json"))
        raise JudgeError(f"unknown language `{name}`; known: {', '.join(known)}")
    lang: Dict[str, Any] = json.loads(path.read_text())
    missing = [key for key in FIELDS if key not in lang]
    if not missing and lang["compile"] is not None:
        missing = [f"compile.{key}" for key in COMPILE_FIELDS if key not in lang["compile"]]
    if missing:
        raise JudgeError(f"{path}: the field `{missing[0]}` is missing")
    return lang


def filled(value: str, memory: int) -> str:
    """`{memory_mb}` in a run argument or variable: the problem's memory limit in MiB."""
    return value.replace("{memory_mb}", str(memory >> 20))


def open_dir() -> pathlib.Path:
    """A directory the sandbox's user may write (the judge runs as root)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="judge-"))
    path.chmod(0o777)
    return path


def same(got: bytes, expected: bytes, tokens: bool) -> bool:
    return got.split() == expected.split() if tokens else got == expected


async def judge(
    problem: pathlib.Path, language: str, source: pathlib.Path, parallel: int, catalog: pathlib.Path = LANGUAGES
) -> Dict[str, Any]:
    lang = load_language(catalog, language)
    limits = json.loads((problem / "limits.json").read_text())
    try:
        image = isolette.Image.load(lang["image"])
    except isolette.ImageError as e:
        raise JudgeError(f"{e} (scripts/build-language-images.sh builds the catalog's images)") from None
    memory = limits["memory_bytes"]
    env = {k: filled(v, memory) for k, v in lang["env"].items()}
    run = [filled(a, memory) for a in lang["run"]]
    submission, out = open_dir(), open_dir()
    try:
        shutil.copy(source, submission / lang["source"])
        (submission / lang["source"]).chmod(0o644)
        mounts = [(str(submission), "/submission", False)]
        report: Dict[str, Any] = {"verdict": "ok", "compile": None, "tests": []}
        compile_ = lang.get("compile")
        if compile_:
            outcome = isolette.run(
                image,
                compile_["command"],
                mounts=mounts + [(str(out), "/out", True)],
                workdir="/out",
                cpu_time=compile_["cpu_time_ms"] / 1000,
                wall_time=compile_["wall_time_ms"] / 1000,
                memory=compile_["memory_bytes"],
                output_limit=compile_["output_bytes"],
                fsize=compile_["file_bytes"],
                pids=compile_["pids"],
                env=env,
                seccomp=lang["seccomp"],
            )
            message = (outcome.stdout + outcome.stderr).decode("utf-8", "replace")
            report["compile"] = {"status": str(outcome.status), "output": message}
            if outcome.status != "ok":
                report["verdict"] = "compile_error"
                return report
        # The limits the problem states, for the program: the runtime's start-up and its
        # memory beside the heap come on top (examples/languages/README.md).
        startup = lang["startup_cpu_ms"]
        box = isolette.Sandbox(
            image,
            mounts=mounts + [(str(out), "/out", False)],
            workdir="/out",
            cpu_time=(limits["cpu_time_ms"] + startup) / 1000,
            wall_time=(limits["wall_time_ms"] + startup) / 1000,
            memory=memory + lang["memory_overhead_bytes"],
            output_limit=limits["output_bytes"],
            pids=lang["pids"],
            env=env,
            seccomp=lang["seccomp"],
        )
        tokens = limits["compare"] == "tokens"
        gate = asyncio.Semaphore(max(1, parallel))

        async def one(n: int) -> Dict[str, Any]:
            async with gate:
                outcome = await box.run_async(run, stdin=problem / "tests" / f"{n}.in")
            expected = (problem / "tests" / f"{n}.out").read_bytes()
            status = str(outcome.status)
            if status == "ok" and not same(outcome.stdout, expected, tokens):
                status = "wrong_answer"
            elif status in ("runtime_error", "signaled") and any(
                p.encode() in outcome.stderr for p in lang["memory_errors"]
            ):
                status = "memory_limit"  # the runtime's own out-of-memory error
            return {
                "test": n,
                "status": status,
                "cpu_ms": outcome.cpu_time * 1000,
                "wall_ms": outcome.wall_time * 1000,
                "memory_bytes": outcome.memory_peak,
                "exit_code": outcome.exit_code,
                "signal": outcome.signal,
            }

        count = int(limits["tests"])
        tests: List[Dict[str, Any]] = []
        if parallel <= 1:
            for n in range(1, count + 1):
                tests.append(await one(n))
                if tests[-1]["status"] != "ok":
                    break
        else:
            # All at once (up to N running); the verdict is the first failure in order,
            # and the tests after it are not reported, as in order.
            results = await asyncio.gather(*(one(n) for n in range(1, count + 1)))
            for result in results:
                tests.append(result)
                if result["status"] != "ok":
                    break
        report["tests"] = tests
        failed: Optional[Dict[str, Any]] = next((t for t in tests if t["status"] != "ok"), None)
        if failed is not None:
            report["verdict"] = failed["status"]
        return report
    finally:
        shutil.rmtree(submission, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


def show(report: Dict[str, Any]) -> None:
    if report["compile"] is not None:
        print(f"compile: {report['compile']['status']}")
        if report["verdict"] == "compile_error":
            print(report["compile"]["output"])
    print(f"{'test':>4}  {'verdict':<16} {'cpu ms':>9} {'wall ms':>9} {'memory':>10}")
    for t in report["tests"]:
        print(f"{t['test']:>4}  {t['status']:<16} {t['cpu_ms']:>9.1f} {t['wall_ms']:>9.1f} {t['memory_bytes']:>10}")
    print(f"verdict: {report['verdict']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problem", required=True, type=pathlib.Path)
    parser.add_argument("--language", required=True)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--languages", type=pathlib.Path, default=LANGUAGES, help="the language catalog")
    parser.add_argument("source", type=pathlib.Path)
    args = parser.parse_args()
    try:
        report = asyncio.run(judge(args.problem, args.language, args.source, args.parallel, args.languages))
    except (isolette.IsoletteError, OSError, JudgeError) as e:
        print(f"judge: {e}", file=sys.stderr)
        raise SystemExit(2)
    if args.json:
        print(json.dumps(report))
    else:
        show(report)


if __name__ == "__main__":
    main()
