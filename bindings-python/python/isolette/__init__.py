"""isolette: run untrusted code in a fresh Linux sandbox per request, and get back an
exact verdict.

    >>> import isolette
    >>> image = isolette.Image.open("/srv/images/python")
    >>> out = isolette.run(image, ["python3", "-c", "print(6*7)"], memory="256M", wall_time=2)
    >>> out.status == "ok", out.stdout
    (True, b'42\\n')

Everything happens in the native module (``isolette._native``, the Rust library);
this file only shapes it for Python: keyword options, file objects for streams,
asyncio, context managers.

Options (keyword-only, the same for :func:`run`, :class:`Sandbox` and ``spawn``):
``memory``, ``output_limit``, ``fsize``, ``tmpfs_size``, ``stack`` (bytes: an int or a
string such as ``"256M"``); ``cpu_time``, ``wall_time`` (seconds: a number, a
``timedelta`` or a string such as ``"1.5s"``); ``pids``, ``nofile`` (ints); ``cpus``
(a float), ``cpuset`` (``"0-1"``); ``env`` (a dict); ``workdir``; ``mounts`` (a list of
``"SRC:DST[:rw]"`` or ``(src, dst[, writable])``); ``volumes`` (a list of
``(Volume, dst[, writable])``); ``stdin`` (bytes or str to feed, a path, ``None``,
:data:`PIPE` or :data:`INHERIT`); ``stdout``, ``stderr`` (:data:`CAPTURE`, :data:`PIPE`,
:data:`NULL`, :data:`INHERIT` or a path); ``seccomp`` (``"default"``, ``"off"``,
``{"deny": [...]}`` or ``{"allow": [...]}``), ``seccomp_action`` (``"kill"`` or
``"errno"``); ``cgroup``, ``sys``, ``user_namespace`` (bools); ``user``
(``(uid, gid)``); ``hostname``; ``entrypoint`` (a list); ``tty`` (a bool, or
``(rows, cols)``); ``network`` (``"none"``, ``"outbound"`` or a network's name);
``publish`` (a list of ``"[ADDR:]HOSTPORT:PORT[/udp]"``); ``host_loopback`` (a bool);
``egress`` (a list of ``("allow" | "deny", "CIDR[:PORTS]")`` pairs or ``"allow:CIDR[:PORTS]"`` words, in order: the first match decides). An unknown option is a
``TypeError`` naming it.
"""

from __future__ import annotations

import asyncio
import io
import os
from typing import Any, Optional, Sequence, Union

from . import _native
from ._native import Image, Outcome, Project, RunningProject, Store, Volume, cleanup, gc
from ._types import (
    CAPTURE,
    INHERIT,
    NULL,
    PIPE,
    BuildError,
    CommandNotFound,
    ConfigError,
    HostError,
    ImageError,
    IsoletteError,
    Redirect,
    RegistryError,
    SetupError,
    Status,
)

__all__ = [
    "CAPTURE",
    "INHERIT",
    "NULL",
    "PIPE",
    "BuildError",
    "CommandNotFound",
    "ConfigError",
    "HostError",
    "Image",
    "ImageError",
    "IsoletteError",
    "Outcome",
    "Project",
    "Redirect",
    "RegistryError",
    "Running",
    "RunningProject",
    "Sandbox",
    "SetupError",
    "Status",
    "Store",
    "Volume",
    "cleanup",
    "gc",
    "run",
    "run_async",
    "spawn",
]

Arg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


def run(image: Image, argv: Sequence[Arg], **options: Any) -> Outcome:
    """Runs ``argv`` in a new sandbox made from ``image`` and returns its outcome.

    The GIL is released for the whole run, so other threads run meanwhile; Ctrl-C kills
    the sandbox and raises ``KeyboardInterrupt``."""
    return _native.run(image, list(argv), options)


def spawn(image: Image, argv: Sequence[Arg], **options: Any) -> "Running":
    """Starts ``argv`` in a new sandbox and returns at once with a :class:`Running`."""
    return Running(_native.spawn(image, list(argv), options))


async def run_async(image: Image, argv: Sequence[Arg], **options: Any) -> Outcome:
    """:func:`run` for asyncio: the event loop never blocks on the run (it watches an fd
    that becomes readable when the outcome is in). Cancelling the awaiting task kills the
    sandbox at once."""
    running = spawn(image, argv, **options)
    try:
        return await running.wait_async()
    finally:
        running.close()


class Sandbox:
    """A reusable set of options for one image: ``Sandbox(image, memory="256M").run(argv)``.

    Options are checked here, once; ``run`` and ``spawn`` take overrides."""

    def __init__(self, image: Image, **options: Any) -> None:
        _native.check_options(image, options)
        self.image = image
        self.options = options

    def run(self, argv: Sequence[Arg], **overrides: Any) -> Outcome:
        """Runs ``argv`` with these options (and the overrides); see :func:`run`."""
        return _native.run(self.image, list(argv), {**self.options, **overrides})

    def spawn(self, argv: Sequence[Arg], **overrides: Any) -> "Running":
        """Starts ``argv`` with these options (and the overrides); see :func:`spawn`."""
        return Running(_native.spawn(self.image, list(argv), {**self.options, **overrides}))

    async def run_async(self, argv: Sequence[Arg], **overrides: Any) -> Outcome:
        """:func:`run_async` with these options (and the overrides)."""
        return await run_async(self.image, argv, **{**self.options, **overrides})

    def __repr__(self) -> str:
        return f"Sandbox({self.image!r}, {', '.join(f'{k}={v!r}' for k, v in self.options.items())})"


class Running:
    """A sandbox started by ``spawn``. Its limits hold whether or not anyone waits.

    ``stdin``, ``stdout`` and ``stderr`` are file objects for the streams asked for with
    :data:`PIPE` (``None`` otherwise); with ``tty=True``, ``stdin`` types into the
    program's terminal and ``stdout`` shows it. Used as a context manager, the run is
    killed on exit unless it has ended."""

    stdin: Optional[io.BufferedWriter]
    stdout: Optional[io.BufferedReader]
    stderr: Optional[io.BufferedReader]

    def __init__(self, native: "_native.Running") -> None:
        self._native = native
        self._outcome: Optional[Outcome] = None
        stdin_fd, stdout_fd, stderr_fd = native.take_streams()
        self.stdin = open(stdin_fd, "wb") if stdin_fd is not None else None
        self.stdout = open(stdout_fd, "rb") if stdout_fd is not None else None
        self.stderr = open(stderr_fd, "rb") if stderr_fd is not None else None

    @property
    def pid(self) -> int:
        """The host pid of the sandbox's init (pid 1 inside)."""
        return self._native.pid

    @property
    def id(self) -> str:
        """This sandbox's id, unique in this process."""
        return self._native.id

    @property
    def ports(self) -> "list[str]":
        """The published ports, as ``"127.0.0.1:8080->8000/tcp"`` (with the host port
        chosen where ``0`` was asked for)."""
        return self._native.ports

    def wait(self, timeout: Optional[float] = None) -> Outcome:
        """Waits for the run to end (``TimeoutError`` after ``timeout`` seconds) and
        returns its outcome; again and again once it has one."""
        if self._outcome is None:
            outcome = self._native.wait(timeout)
            if outcome is None:
                raise TimeoutError(f"the run is still going after {timeout} s")
            self._outcome = outcome
        return self._outcome

    def poll(self) -> Optional[Outcome]:
        """The outcome if the run has ended, else ``None``, without waiting."""
        if self._outcome is None:
            self._outcome = self._native.wait(0.0)
        return self._outcome

    async def wait_async(self) -> Outcome:
        """:meth:`wait` for asyncio, without blocking the loop; cancelling the awaiting
        task kills the sandbox."""
        if self._outcome is not None:
            return self._outcome
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = self._native.ready_fd()

        def on_ready() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, on_ready)
        try:
            await ready
        except asyncio.CancelledError:
            self.kill()
            raise
        finally:
            loop.remove_reader(fd)
        return self.wait()

    def kill(self) -> None:
        """Stops the sandbox now; the run ends ``cancelled``."""
        self._native.kill()

    cancel = kill

    def signal(self, signum: int) -> None:
        """Sends ``signum`` to the program (the sandbox's init passes it on)."""
        self._native.signal(int(signum))

    def resize(self, rows: int, cols: int) -> None:
        """Resizes the program's terminal (``tty=True``)."""
        self._native.resize(rows, cols)

    def close(self) -> None:
        """Kills the run unless it has ended, waits for it to be gone, and closes the
        streams."""
        if self._outcome is None and self.poll() is None:
            self.kill()
            self.wait()
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def __enter__(self) -> "Running":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = self._outcome.status.value if self._outcome is not None else "running"
        return f"<isolette.Running id={self.id!r} pid={self.pid} {state}>"
