"""Plain-Python types the native module hands out: the status enum, the exception
hierarchy and the stream redirections; and the projects brought up in this process, taken
down at the interpreter's exit. Kept apart from ``__init__`` so that the native
module can import them at any time without a cycle."""

from __future__ import annotations

import atexit
import enum
import weakref
from typing import Any, Optional


class Status(str, enum.Enum):
    """How a run ended. A ``str`` enum: ``out.status == "ok"`` works."""

    OK = "ok"
    RUNTIME_ERROR = "runtime_error"
    SIGNALED = "signaled"
    CPU_TIME_LIMIT = "cpu_time_limit"
    WALL_TIME_LIMIT = "wall_time_limit"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    SYSCALL_BLOCKED = "syscall_blocked"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


class IsoletteError(Exception):
    """Base of every error isolette raises. A verdict (a limit, a crash) is never an
    error: it is the ``status`` of the outcome."""

    kind: str
    step: Optional[str]
    path: Optional[str]

    def __init__(
        self,
        message: str,
        *,
        kind: str = "",
        step: Optional[str] = None,
        errno: Optional[int] = None,
        path: Optional[str] = None,
    ) -> None:
        Exception.__init__(self, message)
        self._describe(message, kind, step, path)

    def _describe(self, message: str, kind: str, step: Optional[str], path: Optional[str]) -> None:
        self.message = message
        self.kind = kind
        self.step = step
        self.path = path

    def __str__(self) -> str:
        return self.message


class ConfigError(IsoletteError, ValueError):
    """A bad option or argument; nothing was created."""


class ImageError(IsoletteError):
    """The image cannot be used as given (missing, damaged, not in the store)."""


class CommandNotFound(IsoletteError):
    """The command is not in the image."""


class HostError(IsoletteError):
    """This host lacks something isolette needs (what to do is in the message)."""


class SetupError(IsoletteError, OSError):
    """A step of making the sandbox failed (``step``, ``errno``, ``path`` say which and
    where), or an I/O operation of the supervisor did (``kind == "io"``)."""

    def __init__(
        self,
        message: str,
        *,
        kind: str = "setup",
        step: Optional[str] = None,
        errno: Optional[int] = None,
        path: Optional[str] = None,
    ) -> None:
        if errno is None:
            OSError.__init__(self, message)
        else:
            OSError.__init__(self, errno, message, path)
        self._describe(message, kind, step, path)

    def __str__(self) -> str:
        return self.message


class RegistryError(IsoletteError):
    """A registry could not be reached, refused a request, or served something unusable."""


class BuildError(IsoletteError):
    """A build step failed: ``line`` is its Dockerfile line, ``exit_code`` a ``RUN``'s exit code."""

    line: Optional[int] = None
    exit_code: Optional[int] = None


class Redirect(enum.Enum):
    """Where a stream goes, besides bytes (stdin) or a file path."""

    #: Captured into the outcome (stdout and stderr; the default).
    CAPTURE = "capture"
    #: A stream the caller reads or writes while the program runs (``spawn``).
    PIPE = "pipe"
    #: Nothing: ``/dev/null``.
    NULL = "null"
    #: This process's own stdin, stdout or stderr.
    INHERIT = "inherit"


CAPTURE = Redirect.CAPTURE
PIPE = Redirect.PIPE
NULL = Redirect.NULL
INHERIT = Redirect.INHERIT

#: Exception class for each kind of core error.
BY_KIND = {
    "config": ConfigError,
    "image": ImageError,
    "command_not_found": CommandNotFound,
    "host": HostError,
    "setup": SetupError,
    "io": SetupError,
    "registry": RegistryError,
    "build": BuildError,
}


# Every `RunningProject` still up (the native `Project.up` adds each): at the interpreter's
# exit they go down, so that no service or network outlives the program that owned it.
LIVE_PROJECTS: "weakref.WeakSet[Any]" = weakref.WeakSet()


@atexit.register
def _down_live_projects() -> None:
    for running in list(LIVE_PROJECTS):
        try:
            running.down()
        except Exception:  # noqa: BLE001 - at exit, the others still go down
            pass
