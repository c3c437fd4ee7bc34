"""One render process: renders templates sent by `mail.render_pool` under hard CPU-time and memory bounds.

Run as `python -m mail.render_process SECONDS MEMORY_MB` by the pool, never by hand. Protocol: one JSON
object per line on stdin (a request), one per line back (a reply), after a first `{"ready": true}`.

- memory: RLIMIT_AS is set to what the process uses once its imports are done plus MEMORY_MB, so an
  allocation past it raises MemoryError (caught: a reply naming the bound) instead of growing the worker
  (Linux; elsewhere, where RLIMIT_AS is not enforced, only the time bound holds);
- time: the pool sends SIGUSR1 at the deadline; the handler stops the render where it is (so the reply
  names the template line), and the pool kills the process if no reply follows. RLIMIT_CPU, set before
  each render a little past the deadline, is the kernel's backstop (SIGXCPU ends the process).
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import sys
from collections import OrderedDict
from pathlib import Path
from types import FrameType
from typing import IO, Any

from mail.render_pool import RenderLimits
from mail.templates import RenderInterrupted, Sandbox, TemplateFailure, compile_sources, render_parts

_COMPILED_CACHE = 64  # environments by sources hash: an unchanged template is not recompiled per send


class _Deadline:
    def __init__(self) -> None:
        self.rendering = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.rendering:  # between renders the signal is late: the reply is already on its way
            raise RenderInterrupted


def _address_space() -> int:
    """Bytes of virtual memory this process has mapped now (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _limit_memory(memory_mb: int) -> None:
    try:
        limit = _address_space() + memory_mb * 1024 * 1024
    except OSError:  # no /proc: not Linux, where RLIMIT_AS is not enforced anyway
        print("template renders: the memory bound is enforced on Linux only", file=sys.stderr)
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _limit_cpu(seconds: float) -> None:
    """The kernel ends this process a little after the deadline, should the pool's signal not stop it."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = math.ceil(usage.ru_utime + usage.ru_stime)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (used + math.ceil(seconds) + 2, hard))


def _render(request: dict[str, Any], compiled: OrderedDict[str, Sandbox]) -> dict[str, str]:
    digest = request["digest"]
    env = compiled.get(digest)
    if env is None:
        env = compile_sources(Path(request["directory"]), request["sources"])
        compiled[digest] = env
        while len(compiled) > _COMPILED_CACHE:
            compiled.popitem(last=False)
    else:
        compiled.move_to_end(digest)
    return render_parts(env, request["roots"], request["context"])


def _reply(request: bytes, compiled: OrderedDict[str, Sandbox], limits: RenderLimits, deadline: _Deadline) -> bytes:
    reply: dict[str, Any]
    try:
        deadline.rendering = True
        try:
            reply = {"parts": _render(json.loads(request), compiled)}
        finally:
            deadline.rendering = False
    except TemplateFailure as err:
        reason = limits.reason(err.bound) if err.bound else err.reason
        reply = {"failure": [reason, err.file, err.line]}
        if err.bound:
            reply["bound"] = err.bound
    except RenderInterrupted:  # outside a template's own code (compiling it, inlining CSS)
        reply = {"failure": [limits.reason("time"), None, None], "bound": "time"}
    except MemoryError:
        reply = {"failure": [limits.reason("memory"), None, None], "bound": "memory"}
    try:
        return json.dumps(reply).encode() + b"\n"
    except MemoryError:
        return json.dumps({"failure": [limits.reason("memory"), None, None], "bound": "memory"}).encode() + b"\n"


def serve(limits: RenderLimits, requests: IO[bytes], replies: IO[bytes]) -> None:
    deadline = _Deadline()
    signal.signal(signal.SIGUSR1, deadline)
    compiled: OrderedDict[str, Sandbox] = OrderedDict()
    _limit_memory(limits.memory_mb)
    replies.write(b'{"ready": true}\n')
    replies.flush()
    for request in requests:
        _limit_cpu(limits.seconds)
        replies.write(_reply(request, compiled, limits, deadline))
        replies.flush()


def main(argv: list[str]) -> int:
    limits = RenderLimits(seconds=float(argv[1]), memory_mb=int(argv[2]), processes=1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when this process ends
    # The protocol has stdout to itself: anything a library prints goes to stderr.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(limits, sys.stdin.buffer, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
