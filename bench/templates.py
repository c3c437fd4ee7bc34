"""`make bench` (part 3): what rendering in bounded processes costs, against rendering in this process.

Each shipped template, in every locale, rendered with the sample variables, in interleaved rounds:
through `TemplateRenderer.render` (a render process under the time and memory bounds: JSON over a
pipe, compiled templates cached in the process) and in this process from the same request (the
compiled environment cached here too, as rendering was before the bounds). Both include reading,
parsing and hashing the sources, which every send does. Reports the median per-render latency of
each, their ratio, and the throughput of bounded rendering from 16 threads (the worker's activity
slots) sharing the processes.

Writes bench/templates_results.json. Measured, never asserted in tests.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mail.lint import sample_variables
from mail.render_pool import RenderLimits
from mail.templates import RenderedEmail, Sandbox, TemplateRenderer, compile_sources, render_parts
from plumbing.config import TEMPLATES_DIR
from plumbing.entrypoint import exit_now
from worker import ACTIVITY_SLOTS

ROUNDS = 5
RENDERS_PER_ROUND = 200


def _in_process(renderer: TemplateRenderer, compiled: dict[str, Sandbox], job: tuple[str, str, Any]) -> RenderedEmail:
    request = renderer.request(*job)
    env = compiled.get(request.digest)
    if env is None:
        env = compiled[request.digest] = compile_sources(request.directory, request.sources)
    return request.result(render_parts(env, request.roots, request.context))


def _median_seconds(render: Any, jobs: list[tuple[str, str, Any]]) -> float:
    times = []
    for n in range(RENDERS_PER_ROUND):
        start = time.perf_counter()
        render(jobs[n % len(jobs)])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    limits = RenderLimits.from_env()
    renderer = TemplateRenderer(TEMPLATES_DIR, limits)
    jobs = [
        (name, locale, sample_variables(name, locale))
        for name, locales in renderer.catalog().items()
        for locale in locales
    ]
    compiled: dict[str, Sandbox] = {}

    def bounded(job: tuple[str, str, Any]) -> RenderedEmail:
        return renderer.render(*job)

    def in_process(job: tuple[str, str, Any]) -> RenderedEmail:
        return _in_process(renderer, compiled, job)

    for job in jobs:  # warm both caches (and start the render processes) before timing
        assert bounded(job).html == in_process(job).html
    rounds = []
    for _ in range(ROUNDS):
        rounds.append((_median_seconds(in_process, jobs), _median_seconds(bounded, jobs)))
    with ThreadPoolExecutor(ACTIVITY_SLOTS) as pool:
        start = time.perf_counter()
        list(pool.map(bounded, [jobs[n % len(jobs)] for n in range(RENDERS_PER_ROUND * 2)]))
        concurrent_per_s = RENDERS_PER_ROUND * 2 / (time.perf_counter() - start)
    results = {
        "templates": len(jobs),
        "limits": {"seconds": limits.seconds, "memory_mb": limits.memory_mb, "processes": limits.processes},
        "in_process_ms": round(statistics.median(i for i, _ in rounds) * 1000, 3),
        "bounded_ms": round(statistics.median(b for _, b in rounds) * 1000, 3),
        "bounded_over_in_process": round(statistics.median(b / i for i, b in rounds), 2),
        "bounded_renders_per_s_16_threads": round(concurrent_per_s, 1),
        "rounds": [{"in_process_ms": round(i * 1000, 3), "bounded_ms": round(b * 1000, 3)} for i, b in rounds],
    }
    out = Path(__file__).parent / "templates_results.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    rows = [
        ("render in process, median ms", results["in_process_ms"]),
        ("render in a bounded process, median ms", results["bounded_ms"]),
        ("ratio bounded / in process", results["bounded_over_in_process"]),
        (f"bounded renders/s from {ACTIVITY_SLOTS} threads", results["bounded_renders_per_s_16_threads"]),
    ]
    for name, value in rows:
        print(f"{name:<42} {value:>10}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    exit_now(main())
