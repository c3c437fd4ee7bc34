"""Email templates that marketers own: sandboxed rendering, locale fallback, and the exact sources used.

A template NAME is three files under templates/: NAME.subject.j2, NAME.html.j2
and NAME.txt.j2; a locale variant inserts the locale (NAME.de.html.j2) and
falls back to the language (de-AT -> de) and then to the default locale.
Files starting with `_` are layouts and partials. The variables are documented
in templates/README.md and are the only ones passed (`VARIABLES`).

Every render reads the sources fresh (an edit applies at the next send),
hashes them, and renders exactly those sources, so the outbox can say what a
customer received. The sandbox refuses Python internals and bounds the work a
template can ask for (ranges, repetition, exponents, widths, output size); the
render itself runs in a separate process with hard time and memory bounds
(mail/render_pool.py), which also caches the compiled templates.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import css_inline
import jinja2
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from mail.render_pool import RenderLimits, RenderPool

DEFAULT_LOCALE = "en"
PARTS = ("subject", "html", "txt")
PART_LABELS = {"subject": "subject", "html": "HTML", "txt": "text"}
# The names a template may use; anything else is an error `check` reports.
VARIABLES = frozenset({"customer", "advocate", "ask", "links", "reward", "story", "company", "locale"})
GMAIL_CLIP_BYTES = 102 * 1024
MAX_OUTPUT_CHARS = 1_000_000
MAX_RANGE_ITEMS = 10_000  # across one render, so nested loops share the budget
MAX_INT_ARGUMENT = 100_000
_FORMAT_WIDTH = re.compile(r"(%|\{[^}]*:)[^a-zA-Z}]*\d{6,}")
_FILE = re.compile(
    r"^(?P<name>[A-Za-z0-9][\w-]*?)(?:\.(?P<locale>[a-z]{2}(?:-[A-Za-z]{2})?))?\.(?P<part>subject|html|txt)\.j2$"
)


class TemplateFailure(Exception):
    """A template that cannot render: names the file and line when known.

    `bound` is "time" or "memory" when the render went past a resource bound (the reason then names it).
    """

    def __init__(self, reason: str, file: str | None = None, line: int | None = None, bound: str | None = None) -> None:
        self.reason, self.file, self.line, self.bound = reason, file, line, bound
        where = ":".join(str(x) for x in (file, line) if x is not None)
        super().__init__(f"{where}: {reason}" if where else reason)


@dataclass
class RenderedEmail:
    name: str
    locale: str
    subject: str
    html: str
    text: str
    # sha256 over the names and sources of every file used (parts, layout, partials).
    sources_hash: str
    sources: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ---- the sandbox ------------------------------------------------------------------

_range_budget: contextvars.ContextVar[list[int]] = contextvars.ContextVar("range_budget")


def _budgeted_range(*args: int) -> range:
    r = range(*args)
    budget = _range_budget.get([MAX_RANGE_ITEMS])
    budget[0] -= len(r)
    if len(r) > MAX_RANGE_ITEMS or budget[0] < 0:
        raise SecurityError(f"range() budget exceeded ({MAX_RANGE_ITEMS} items per render)")
    return r


def _check_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], widths: bool = True) -> None:
    """Refuse output-sizing arguments beyond the limit: integer widths, and widths inside format strings."""
    for value in (*args, *kwargs.values()):
        if widths and isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT_ARGUMENT:
            raise SecurityError(f"width {value} is too large (limit {MAX_INT_ARGUMENT})")
        if isinstance(value, str) and _FORMAT_WIDTH.search(value):
            raise SecurityError("format width is too large")


# Filters and string methods whose arguments size their output.
_WIDTH_FILTERS = frozenset({"center", "indent", "wordwrap", "truncate", "format"})
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "format", "format_map"})


def _bounded_filter(fn: Callable[..., Any], widths: bool) -> Callable[..., Any]:
    @functools.wraps(fn)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_arguments(args, kwargs, widths)
        return fn(*args, **kwargs)

    return bounded


class Sandbox(SandboxedEnvironment):
    """Jinja2's sandbox, plus bounds on what a template can make the renderer do."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(
            autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            **options,
        )
        self.globals = {"range": _budgeted_range, "dict": dict, "namespace": self.globals["namespace"]}
        for name in _WIDTH_FILTERS:
            self.filters[name] = _bounded_filter(self.filters[name], widths=name != "format")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and (not isinstance(right, int | float) or abs(right) > 64 or abs(left) > 10**6):
            raise SecurityError("exponent too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > MAX_OUTPUT_CHARS
                ):
                    raise SecurityError("repetition too large")
        if operator == "%" and isinstance(left, str) and _FORMAT_WIDTH.search(left):
            raise SecurityError("format width is too large")
        return super().call_binop(context, operator, left, right)

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(getattr(__obj, "__self__", None), str) and getattr(__obj, "__name__", "") in _PADDING_METHODS:
            _check_arguments((__obj.__self__, *args), kwargs, widths=not __obj.__name__.startswith("format"))
        return super().call(__context, __obj, *args, **kwargs)


class RenderInterrupted(BaseException):
    """Raised into a render at its deadline (a BaseException, so no `except Exception` on the way swallows it)."""


class _SnapshotLoader(jinja2.BaseLoader):
    """Serves the sources read for one render, under their real file names (tracebacks show them)."""

    def __init__(self, directory: Path, sources: dict[str, str]) -> None:
        self.directory, self.sources = directory, sources

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        if template not in self.sources:
            raise jinja2.TemplateNotFound(template)
        return self.sources[template], str(self.directory / template), lambda: True


def compile_sources(directory: Path, sources: dict[str, str]) -> Sandbox:
    """An environment that serves exactly these sources (compiled once, on first use of each)."""
    return Sandbox(loader=_SnapshotLoader(directory, sources))


def render_parts(env: Sandbox, roots: dict[str, str], context: dict[str, Any]) -> dict[str, str]:
    """Each part rendered from its root file, the HTML with its CSS inlined. In the render process."""
    out = {part: _render(env, file, context) for part, file in roots.items()}
    out["html"] = css_inline.inline(out["html"])
    return out


# ---- rendering --------------------------------------------------------------------


class TemplateRenderer:
    def __init__(self, directory: Path, limits: RenderLimits | None = None) -> None:
        self.directory = directory
        self._files = jinja2.FileSystemLoader(str(directory))
        self._parser = Sandbox()
        # Time and memory bounds (TEMPLATE_RENDER_* in the environment); a bad value fails here, at start-up.
        self.limits = limits or RenderLimits.from_env()
        self._pool = RenderPool.shared(self.limits)

    # What exists.

    def catalog(self) -> dict[str, dict[str, list[str]]]:
        """NAME -> locale -> parts present."""
        out: dict[str, dict[str, list[str]]] = {}
        for path in sorted(self.directory.glob("*.j2")):
            m = _FILE.match(path.name)
            if m is None or path.name.startswith("_"):
                continue
            parts = out.setdefault(m["name"], {}).setdefault(m["locale"] or DEFAULT_LOCALE, [])
            parts.append(m["part"])
        return out

    def file_name(self, name: str, part: str, locale: str) -> str:
        return f"{name}.{part}.j2" if locale == DEFAULT_LOCALE else f"{name}.{locale}.{part}.j2"

    def resolve_locale(self, name: str, locale: str) -> str:
        """The most specific locale with an HTML part: de-AT, then de, then the default."""
        for candidate in dict.fromkeys((locale, locale.split("-")[0], DEFAULT_LOCALE)):
            if (self.directory / self.file_name(name, "html", candidate)).is_file():
                return candidate
        raise TemplateFailure(f"no template named {name!r}", self.file_name(name, "html", DEFAULT_LOCALE))

    # Sources.

    def _read(self, name: str) -> str:
        try:
            source, _, _ = self._files.get_source(self._parser, name)
        except jinja2.TemplateNotFound:
            raise TemplateFailure("file not found", name) from None
        return source

    def _collect(self, roots: list[str]) -> dict[str, str]:
        """The roots and every layout and partial they reach, read once."""
        sources: dict[str, str] = {}
        pending = list(roots)
        while pending:
            current = pending.pop()
            if current in sources:
                continue
            sources[current] = self._read(current)
            try:
                tree = self._parser.parse(sources[current], current, current)
            except jinja2.TemplateSyntaxError as err:
                raise TemplateFailure(f"syntax error: {err.message}", current, err.lineno) from None
            except RecursionError:
                raise TemplateFailure("syntax error: nested too deeply", current) from None
            pending += [ref for ref in meta.find_referenced_templates(tree) if ref]
        return sources

    def request(self, name: str, locale: str, variables: dict[str, Any]) -> RenderRequest:
        """What one render needs: the locale used, each part's root file, and every source, read now."""
        unknown = set(variables) - VARIABLES
        if unknown:
            raise TemplateFailure(f"variables not in the documented set: {', '.join(sorted(unknown))}")
        used = self.resolve_locale(name, locale)
        roots = {part: self.file_name(name, part, used) for part in PARTS}
        for part, file in roots.items():
            if not (self.directory / file).is_file():
                # Fall back part by part (a translated HTML may share the default subject), but never lose one.
                fallback = self.file_name(name, part, DEFAULT_LOCALE)
                if not (self.directory / fallback).is_file():
                    raise TemplateFailure(f"missing {PART_LABELS[part]} part", file)
                roots[part] = fallback
        sources = self._collect(list(roots.values()))
        digest = hashlib.sha256(b"".join(f"{n}\0{sources[n]}\0".encode() for n in sorted(sources))).hexdigest()
        return RenderRequest(name, used, digest, self.directory, sources, roots, {**variables, "locale": used})

    def render(self, name: str, locale: str, variables: dict[str, Any]) -> RenderedEmail:
        """Render all three parts, in a render process; TemplateFailure names the file and line at fault."""
        request = self.request(name, locale, variables)
        try:
            payload = request.payload()
        except (TypeError, ValueError) as err:
            raise TemplateFailure(f"variables cannot be passed to the renderer: {err}") from None
        reply = self._pool.render(request.digest, payload)
        if "failure" in reply:
            reason, file, line = reply["failure"]
            raise TemplateFailure(reason, file, line, reply.get("bound"))
        return request.result(reply["parts"])


@dataclass
class RenderRequest:
    name: str
    locale: str
    digest: str
    directory: Path
    sources: dict[str, str]
    roots: dict[str, str]
    context: dict[str, Any]

    def payload(self) -> bytes:
        """One line of JSON for a render process."""
        request = {"digest": self.digest, "directory": str(self.directory), "sources": self.sources}
        return json.dumps({**request, "roots": self.roots, "context": self.context}).encode() + b"\n"

    def result(self, parts: dict[str, str]) -> RenderedEmail:
        html = parts["html"]
        warnings = []
        if len(html.encode()) > GMAIL_CLIP_BYTES:
            warnings.append(f"HTML is {len(html.encode()) // 1024} KB: Gmail clips messages over 102 KB")
        return RenderedEmail(
            name=self.name,
            locale=self.locale,
            subject=" ".join(parts["subject"].split()),
            html=html,
            text=parts["txt"].strip() + "\n",
            sources_hash=self.digest,
            sources=sorted(self.sources),
            warnings=warnings,
        )


def _render(env: Sandbox, file: str, context: dict[str, Any]) -> str:
    token = _range_budget.set([MAX_RANGE_ITEMS])
    try:
        template = env.get_template(file)
        chunks: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise SecurityError(f"output larger than {MAX_OUTPUT_CHARS} characters")
            chunks.append(chunk)
        return "".join(chunks)
    except jinja2.TemplateSyntaxError as err:
        raise TemplateFailure(f"syntax error: {err.message}", err.name or file, err.lineno) from None
    except SecurityError as err:
        raise TemplateFailure(f"sandbox violation: {err}", *_where(err, file)) from None
    except jinja2.UndefinedError as err:
        raise TemplateFailure(f"undefined: {err.message}", *_where(err, file)) from None
    except RecursionError:
        raise TemplateFailure("recursion too deep", file) from None
    except MemoryError as err:
        raise TemplateFailure("memory", *_where(err, file), bound="memory") from None
    except RenderInterrupted as err:
        raise TemplateFailure("time", *_where(err, file), bound="time") from None
    except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as err:
        raise TemplateFailure(f"{type(err).__name__}: {err}", *_where(err, file)) from None
    finally:
        _range_budget.reset(token)


def _where(err: BaseException, default: str) -> tuple[str, int | None]:
    """The template file and line of the innermost template frame in the (Jinja-rewritten) traceback."""
    found: tuple[str, int | None] = (default, None)
    tb = err.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            # A traceback Jinja did not rewrite (a BaseException) has the compiled code's lines: map them back.
            template = tb.tb_frame.f_globals.get("__jinja_template__")
            line = template.get_corresponding_lineno(tb.tb_lineno) if template is not None else tb.tb_lineno
            found = (Path(filename).name, line)
        tb = tb.tb_next
    return found


def undeclared_names(renderer: TemplateRenderer, file: str) -> Iterator[tuple[str, int]]:
    """Names a template reads that are neither documented variables nor set in the template."""
    tree = renderer._parser.parse(renderer._read(file), file, file)
    undeclared = meta.find_undeclared_variables(tree) - VARIABLES - set(renderer._parser.globals)
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load" and node.name in undeclared:
            undeclared.discard(node.name)
            yield node.name, node.lineno
