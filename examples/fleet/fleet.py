"""A judge fleet on Celery and Redis, isolette as each node's executor.

    celery -A fleet worker -c 1 [-Q judge.gcc,judge.python3,...]    (one per core, as root)

One task judges one whole submission (the compile and every test, with the Python judge's
logic and the catalog's profiles). The submission waits in Redis (`fleet:submission:ID`),
the task carries only its id, and the verdict is written once (`fleet:result:ID`, SET NX):
a task delivered again after its worker died finds the verdict there, or writes the same
one, never a second record. Settings (environment):

    FLEET_REDIS          redis://127.0.0.1:6379/0
    FLEET_TIME_LIMIT     the hard time limit of a task, seconds (default 300; soft: 30 s less,
                         or 90 % when that is shorter); every profile's compile and a
                         problem's tests take less
    FLEET_VISIBILITY     how long a task a dead worker took waits before it is delivered
                         again (default: twice the hard limit, the longest a task can take)
    FLEET_RESUBMIT       how long a submission may go without a verdict before a node's
                         sweeper enqueues its task again (default: visibility + hard limit)

Celery's Redis transport moves a task to its `unacked` set only after `BRPOP` has taken it
off the queue: a worker killed, or a Redis stopped, between the two loses the task. So each
submission is also in `fleet:pending` (by when it was last enqueued) until its verdict is
written, and every node's sweeper enqueues again what has waited there longer than
FLEET_RESUBMIT; a copy that finds the verdict written does nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any, Callable, Dict, Optional, TypeVar

import isolette
import kombu.exceptions
import redis
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from kombu import Queue
from celery.signals import worker_init, worker_process_init, worker_process_shutdown

HERE = pathlib.Path(__file__).resolve().parent
EXAMPLES = HERE.parent
sys.path.insert(0, str(EXAMPLES / "python"))
import judge as single  # noqa: E402  (the Python judge: the same logic, one process)

REDIS_URL = os.environ.get("FLEET_REDIS", "redis://127.0.0.1:6379/0")
TIME_LIMIT = float(os.environ.get("FLEET_TIME_LIMIT", "300"))
SOFT_TIME_LIMIT = TIME_LIMIT - min(30.0, TIME_LIMIT * 0.1)
VISIBILITY = float(os.environ.get("FLEET_VISIBILITY", str(2 * TIME_LIMIT)))
RESUBMIT = float(os.environ.get("FLEET_RESUBMIT", str(VISIBILITY + TIME_LIMIT)))
# Contest over practice over rejudge (Redis: 0 is the first served).
PRIORITIES = {"contest": 0, "practice": 3, "rejudge": 6}
MAX_CODE = 64 << 10
RESULT_TTL = 7 * 24 * 3600
# Submissions without a verdict yet, scored by when their task was last enqueued.
PENDING = "fleet:pending"

app = Celery("isolette-fleet", broker=REDIS_URL)
app.conf.update(
    # A task is acknowledged when it has ended, and given back when its worker dies, so a
    # worker killed in the middle loses nothing.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # One task at a time per process: a slot takes the next only when it is free.
    worker_prefetch_multiplier=1,
    task_time_limit=TIME_LIMIT,
    task_soft_time_limit=SOFT_TIME_LIMIT,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,
    broker_transport_options={
        "visibility_timeout": VISIBILITY,
        "queue_order_strategy": "priority",
        "priority_steps": list(range(10)),
        "sep": ":",
    },
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
)



def queue_of(language: str) -> str:
    """The queue of a language: one per image, so a node serves the images it has."""
    lang = single.load_language(single.LANGUAGES, language)
    return "judge." + lang["image"].rsplit("/", 1)[-1].split(":")[0]


# Every image's queue: a worker consumes them all unless `-Q` names some.
QUEUES = sorted({queue_of(p.parent.name) for p in single.LANGUAGES.glob("*/language.json")})
app.conf.task_queues = [Queue(q) for q in QUEUES]

T = TypeVar("T")


def retrying(what: Callable[[], T], deadline: float = 120.0) -> T:
    """`what()`, tried again while Redis is away (a restart, a failover), up to `deadline` s."""
    end = time.monotonic() + deadline
    pause = 0.05
    while True:
        try:
            return what()
        except (redis.ConnectionError, redis.TimeoutError, kombu.exceptions.OperationalError):
            if time.monotonic() > end:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def connect() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL, socket_timeout=10, socket_connect_timeout=5)


class Refused(ValueError):
    """A submission the fleet does not take: too big (status 413), an unknown language or
    problem (400)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def submit(r: redis.Redis, language: str, problem: str, code: str, kind: str = "practice") -> str:
    """Stores a submission and enqueues its task; returns its id."""
    if not isinstance(code, str) or len(code.encode()) > MAX_CODE:
        raise Refused(f"code must be a string of at most {MAX_CODE} bytes", 413)
    if not isinstance(language, str):
        raise Refused("language must be a language's name")
    try:
        queue_of(language)  # an unknown language is refused here
    except single.JudgeError as e:
        raise Refused(str(e)) from None
    if not isinstance(problem, str) or not re.fullmatch(r"[a-z0-9-]+", problem):
        raise Refused("problem must be a problem's name")
    if not (EXAMPLES / "problems" / problem / "limits.json").is_file():
        raise Refused(f"no problem `{problem}`")
    if kind not in PRIORITIES:
        raise Refused(f"kind must be one of {', '.join(PRIORITIES)}")
    sid = uuid.uuid4().hex
    now = time.time()
    record = {"language": language, "problem": problem, "code": code, "kind": kind, "enqueued": repr(now)}
    retrying(lambda: r.pipeline().hset(f"fleet:submission:{sid}", mapping=record).zadd(PENDING, {sid: now}).execute())
    enqueue(sid, language, kind)
    return sid


def enqueue(sid: str, language: str, kind: str) -> None:
    """Puts the task of submission `sid` on its image's queue, at its kind's priority."""
    queue = queue_of(language)
    retrying(lambda: judge_submission.apply_async(args=[sid], queue=queue, priority=PRIORITIES[kind]))


def sweep(r: redis.Redis) -> int:
    """Enqueues again the tasks of submissions that have waited longer than RESUBMIT for a
    verdict (their task may have been lost between a `BRPOP` and Celery's `unacked`);
    returns how many. One node sweeps at a time."""
    if not r.set("fleet:sweeping", "1", nx=True, ex=max(1, int(RESUBMIT / 2))):
        return 0
    now = time.time()
    again = 0
    for raw in r.zrangebyscore(PENDING, "-inf", now - RESUBMIT, start=0, num=1000):
        sid = raw.decode()
        judged, fields = r.pipeline(transaction=False).exists(f"fleet:result:{sid}").hgetall(f"fleet:submission:{sid}").execute()
        if judged or not fields:
            r.zrem(PENDING, sid)
            continue
        r.zadd(PENDING, {sid: now})
        enqueue(sid, fields[b"language"].decode(), fields[b"kind"].decode())
        again += 1
    return again


def result(r: redis.Redis, sid: str) -> Optional[Dict[str, Any]]:
    """The verdict of a submission; `{"status": "queued"}` while it waits; None when there
    is no such submission."""
    raw = retrying(lambda: r.get(f"fleet:result:{sid}"))
    if raw is not None:
        return dict(json.loads(raw), status="done")
    return {"status": "queued"} if retrying(lambda: r.exists(f"fleet:submission:{sid}")) else None


# Each worker process's own connection, made after the fork (worker_process_init).
_redis: Optional[redis.Redis] = None


# Each worker process keeps its submissions' directories in one of its own, so that what a
# process killed with SIGKILL left is found and removed when the node starts again.
WORK = pathlib.Path(tempfile.gettempdir()) / "isolette-fleet"


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def clean_work() -> None:
    """Removes the work directories of worker processes that are gone (zombies included)."""
    for d in WORK.glob("*"):
        if d.name.isdigit() and not alive(int(d.name)):
            shutil.rmtree(d, ignore_errors=True)


@worker_init.connect
def _node_start(**_: Any) -> None:
    """At a node's start, before its processes fork: what a crashed run left is cleaned
    (`isolette gc`: the cgroups and sandboxes of dead owners; the work directories of dead
    worker processes), and a heartbeat starts."""
    # In a process of its own: nothing of isolette's is made in the parent of the forks.
    subprocess.run([sys.executable, "-c", "import isolette; isolette.gc()"], check=True)
    clean_work()
    node = f"{socket.gethostname()}:{os.getpid()}"

    def beat() -> None:
        r = connect()
        while True:
            try:
                r.set(f"fleet:node:{node}", repr(time.time()), ex=15)
                sweep(r)
            except (redis.RedisError, kombu.exceptions.OperationalError):
                pass
            time.sleep(5)

    threading.Thread(target=beat, name="heartbeat", daemon=True).start()


@worker_process_init.connect
def _process_start(**_: Any) -> None:
    global _redis
    _redis = connect()
    mine = WORK / str(os.getpid())
    mine.mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(mine)


@worker_process_shutdown.connect
def _process_end(**_: Any) -> None:
    if _redis is not None:
        _redis.close()
    shutil.rmtree(WORK / str(os.getpid()), ignore_errors=True)


@app.task(name="fleet.judge_submission")
def judge_submission(sid: str) -> None:
    """Judges one submission whole and writes its verdict once."""
    r = _redis or connect()
    key = f"fleet:result:{sid}"
    # One round trip: whether it was judged already (a task delivered again after its
    # worker died), and the submission.
    judged, fields = retrying(lambda: r.pipeline(transaction=False).exists(key).hgetall(f"fleet:submission:{sid}").execute())
    if judged or not fields:
        retrying(lambda: r.zrem(PENDING, sid))
        return  # judged already, or expired: nothing to do
    sub = {k.decode(): v.decode() for k, v in fields.items()}
    started = time.time()
    retrying(lambda: r.hincrby("fleet:starts", sid, 1))
    with tempfile.TemporaryDirectory(prefix="submission-") as tmp:
        source = pathlib.Path(tmp) / "source"
        source.write_text(sub["code"])
        try:
            report = asyncio.run(single.judge(EXAMPLES / "problems" / sub["problem"], sub["language"], source, 1))
        except (single.JudgeError, isolette.IsoletteError, OSError, SoftTimeLimitExceeded) as e:
            # The submission gets an answer (an operator's to look at), not a silent loss.
            report = {"verdict": "judge_error", "error": str(e) or type(e).__name__, "compile": None, "tests": []}
    report.update(
        id=sid,
        enqueued=float(sub["enqueued"]),
        started=started,
        finished=time.time(),
        node=socket.gethostname(),
    )
    # Written once: a second judgement of the same submission finds it there. Every
    # judgement's verdict is kept beside it (a redelivered task's too), for the operator and
    # the fault test to see that they agree.
    judgements = f"fleet:judgements:{sid}"
    retrying(
        lambda: r.pipeline(transaction=False)
        .rpush(judgements, report["verdict"])
        .expire(judgements, RESULT_TTL)
        .set(key, json.dumps(report), nx=True, ex=RESULT_TTL)
        .zrem(PENDING, sid)
        .execute()
    )
