"""Render processes with hard bounds, so that one template a marketer broke cannot stall every send.

The sandbox (mail/templates.py) refuses Python internals and bounds what one call may ask for, but a
template can still loop for ever within those bounds or ask for gigabytes in a single C call. So every
render runs in a separate, long-lived Python process (started with exec, not fork: it inherits no
worker threads) under:

- a wall-clock deadline the pool enforces (`TEMPLATE_RENDER_SECONDS`, default 5 s): at the deadline the
  process is told to stop (the reply then names the template line), and killed and replaced if it does
  not answer within a grace period; RLIMIT_CPU in the process is the kernel's backstop;
- a memory bound (`TEMPLATE_RENDER_MEMORY_MB`, default 256 MB on top of the process's own footprint),
  set as RLIMIT_AS, so a huge allocation raises MemoryError there instead of growing the worker.

A render past either bound is a template failure (non-retryable for a send), and is remembered for those
exact sources for 10 minutes: the next sends of them fail at once, unless the template is edited (new
sources) or the 10 minutes have passed (a render slowed by a busy machine is not condemned for good). One template may
occupy at most all but one of the processes (`TEMPLATE_RENDER_PROCESSES`, default 2 to 4 by CPU count),
so sends of other templates always find one.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
MAX_RENDER_SECONDS = 20.0  # the send_email activity has 30 s to render and send
STARTUP_SECONDS = 60.0  # to import Jinja2 on a busy machine; a process is started only when none is free
GRACE_SECONDS = 1.0  # between the deadline's signal and the kill
_REMEMBERED_FAILURES = 256


class RenderPoolError(RuntimeError):
    """The render machinery itself failed (not the template): retryable."""


class RenderSettingsError(ValueError):
    """A TEMPLATE_RENDER_* setting out of range: names the variable."""


def _default_processes() -> int:
    return min(4, max(2, os.cpu_count() or 2))


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float, integer: bool) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    kind = "a whole number" if integer else "a number"
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise RenderSettingsError(f"{name} must be {kind} from {low:g} to {high:g}, not {raw!r}") from None
    if not low <= value <= high:
        raise RenderSettingsError(f"{name} must be {kind} from {low:g} to {high:g}, not {raw!r}")
    return value


@dataclass(frozen=True)
class RenderLimits:
    seconds: float = 5.0
    memory_mb: int = 256
    processes: int = field(default_factory=_default_processes)

    @staticmethod
    def from_env(env: Mapping[str, str] | None = None) -> RenderLimits:
        env = os.environ if env is None else env
        return RenderLimits(
            seconds=_number(env, "TEMPLATE_RENDER_SECONDS", 5.0, 0.1, MAX_RENDER_SECONDS, integer=False),
            memory_mb=int(_number(env, "TEMPLATE_RENDER_MEMORY_MB", 256, 32, 65536, integer=True)),
            processes=int(_number(env, "TEMPLATE_RENDER_PROCESSES", _default_processes(), 2, 64, integer=True)),
        )

    @property
    def per_template(self) -> int:
        """Renders of one template's sources at a time: all processes but one."""
        return max(1, self.processes - 1)

    def reason(self, bound: str) -> str:
        if bound == "time":
            return f"rendering took longer than {self.seconds:g} s (TEMPLATE_RENDER_SECONDS)"
        return f"rendering exceeded the memory bound ({self.memory_mb} MB, TEMPLATE_RENDER_MEMORY_MB)"


class _Process:
    """One render process and its pipes: a request line in, a reply line out, within a deadline."""

    def __init__(self, limits: RenderLimits) -> None:
        # `-m` from the project's root: the render process imports our modules whatever the worker's cwd.
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "mail.render_process", repr(limits.seconds), str(limits.memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            close_fds=True,
            start_new_session=True,  # a Ctrl-C meant for the worker does not reach it
        )
        self._buffer = bytearray()
        try:
            ready = self._read_line(time.monotonic() + STARTUP_SECONDS)
        except EOFError:
            ready = None
        if ready is None or json.loads(ready) != {"ready": True}:
            self.kill()
            raise RenderPoolError(f"a template render process did not start (exit status {self.popen.poll()})")

    @property
    def _stdin(self) -> IO[bytes]:
        assert self.popen.stdin is not None
        return self.popen.stdin

    def _read_line(self, deadline: float) -> bytes | None:
        """The next line, None at the deadline; EOFError when the process has ended."""
        assert self.popen.stdout is not None
        fd = self.popen.stdout.fileno()
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise EOFError
            self._buffer += chunk

    def ask(self, payload: bytes, limits: RenderLimits) -> dict[str, Any]:
        try:
            self._stdin.write(payload)
            self._stdin.flush()
            line = self._read_line(time.monotonic() + limits.seconds)
            if line is None:
                self.popen.send_signal(signal.SIGUSR1)  # stop where you are, and say where that was
                line = self._read_line(time.monotonic() + GRACE_SECONDS)
        except (EOFError, OSError):
            self.kill()
            if self.popen.returncode == -signal.SIGXCPU:
                return {"failure": [limits.reason("time"), None, None], "bound": "time"}
            raise RenderPoolError(f"a template render process ended (exit status {self.popen.returncode})") from None
        if line is None:
            self.kill()
            return {"failure": [limits.reason("time"), None, None], "bound": "time"}
        try:
            reply: dict[str, Any] = json.loads(line)
        except ValueError:
            self.kill()
            raise RenderPoolError("a template render process answered with something other than JSON") from None
        return reply

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()
        for pipe in (self.popen.stdin, self.popen.stdout):
            if pipe is not None:
                pipe.close()

    def close(self) -> None:
        """Ask it to leave (end of input), then make sure."""
        try:
            self._stdin.close()
            self.popen.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class RenderPool:
    """Long-lived render processes shared by every renderer in this process with the same limits."""

    _shared: ClassVar[dict[RenderLimits, RenderPool]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()
    remember_failures_seconds: ClassVar[float] = 600.0

    @classmethod
    def shared(cls, limits: RenderLimits) -> RenderPool:
        with cls._shared_lock:
            pool = cls._shared.get(limits)
            if pool is None or pool._closed:
                pool = cls._shared[limits] = RenderPool(limits)
            return pool

    @classmethod
    def close_shared(cls) -> None:
        with cls._shared_lock:
            pools, cls._shared = list(cls._shared.values()), {}
        for pool in pools:
            pool.close()

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self._cond = threading.Condition()
        self._idle: list[_Process] = []
        self._count = 0  # processes idle, busy or starting
        self._busy: dict[str, int] = {}  # renders in progress by sources digest
        self._failed: OrderedDict[str, tuple[float, list[Any]]] = OrderedDict()  # digest -> (until, failure)
        self._closed = False

    def render(self, digest: str, payload: bytes) -> dict[str, Any]:
        """The reply to one request line: {"parts": {...}} or {"failure": [reason, file, line]}."""
        with self._cond:
            self._cond.wait_for(lambda: self._busy.get(digest, 0) < self.limits.per_template)
            self._busy[digest] = self._busy.get(digest, 0) + 1
        try:
            with self._cond:
                until, failed = self._failed.get(digest, (0.0, None))
            if failed is not None and time.monotonic() < until:
                reason, file, line = failed
                period = self.remember_failures_seconds
                wait = f"{period / 60:g} min" if period >= 60 else f"{period:g} s"
                again = f"; not rendered again for {wait} unless the template changes"
                return {"failure": [reason + again, file, line]}
            process = self._checkout()
            healthy = False
            try:
                reply = process.ask(payload, self.limits)
                healthy = "bound" not in reply  # after a bound, a fresh process for the next render
            finally:
                self._checkin(process, healthy)
            if "bound" in reply:
                with self._cond:
                    self._failed[digest] = (time.monotonic() + self.remember_failures_seconds, reply["failure"])
                    self._failed.move_to_end(digest)
                    while len(self._failed) > _REMEMBERED_FAILURES:
                        self._failed.popitem(last=False)
            return reply
        finally:
            with self._cond:
                self._busy[digest] -= 1
                if not self._busy[digest]:
                    del self._busy[digest]
                self._cond.notify_all()

    def _checkout(self) -> _Process:
        dead: list[_Process] = []
        try:
            with self._cond:
                while True:
                    if self._closed:
                        raise RenderPoolError("the template render processes are shut down")
                    while self._idle:
                        process = self._idle.pop()
                        if process.alive():
                            return process
                        dead.append(process)
                        self._count -= 1
                    if self._count < self.limits.processes:
                        self._count += 1
                        break
                    self._cond.wait()
        finally:
            for process in dead:
                process.kill()
        try:
            return _Process(self.limits)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify_all()
            raise

    def _checkin(self, process: _Process, healthy: bool) -> None:
        with self._cond:
            keep = healthy and not self._closed and process.alive()
            if keep:
                self._idle.append(process)
            else:
                self._count -= 1
            self._cond.notify_all()
        if not keep:
            process.kill()

    def close(self) -> None:
        """End the idle processes; busy ones end when their render returns."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for process in idle:
            process.close()


atexit.register(RenderPool.close_shared)
