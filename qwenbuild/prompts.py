"""The one sandboxed Jinja2 environment, and rendering with errors that say where.

The sandbox keeps templates away from Python internals (Jinja's own sandbox), from files
outside the repository and from special files (our loader), and within bounds of time and
memory (our limits below): a template cannot hang a build or exhaust memory, whatever it
holds. The limits are checked inside the sandbox, on every call, attribute lookup,
operator, filter, loop iteration and piece of output, so a render over its deadline stops
where it is; nothing runs in a thread that could not be stopped.
"""

from __future__ import annotations

import contextvars
import difflib
import functools
import math
import os
import re
import string
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import TemplateError
from .safeio import MAX_TEMPLATE_BYTES, UnsafeFileError, check_regular, inside, read_regular

_WHITESPACE = re.compile(r"\s+")

# -- limits (documented in README.md, "Prompt templates: limits") ---------------------------

#: Seconds one template may take to render (a prompt renders in milliseconds).
RENDER_SECONDS = 5.0
#: Longest text a template may build: any one string, and a template's whole output.
MAX_TEXT = 100_000
#: Most items `range()` may give, and the longest list a template may build.
MAX_ITEMS = 10_000
#: Most loop iterations in one render, all loops together.
MAX_ITERATIONS = 100_000
#: Largest integer a template may compute, in bits (about 1,233 decimal digits).
MAX_INT_BITS = 4096
#: Longest input of the filters whose running time grows faster than their input
#: (regular expressions over the text): striptags, urlize, wordwrap.
MAX_SLOW_FILTER_TEXT = 10_000
#: Most characters (and list items) one render may build in all, every intermediate
#: value counted: bounds the memory of many values each under the limits above.
MAX_BUILT = 10_000_000


def collapse(text: str) -> str:
    """Prompts are one paragraph: templates may spread them over many readable lines."""
    return _WHITESPACE.sub(" ", text).strip()


class TemplateLimitError(Exception):
    """A template went over one of the limits above."""


class TemplateRefusedError(Exception):
    """A template file that is never read: outside the repository, or a special file."""


class _Budget:
    __slots__ = ("deadline", "iterations", "built")

    def __init__(self) -> None:
        self.deadline = time.monotonic() + RENDER_SECONDS
        self.iterations = 0
        self.built = 0


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "qwenbuild_template_budget", default=None)


def _tick() -> None:
    budget = _BUDGET.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise TemplateLimitError(f"took longer than {RENDER_SECONDS:g} s to render (the limit "
                                 "per template)")


def _iterate_once() -> None:
    budget = _BUDGET.get()
    if budget is None:
        return
    budget.iterations += 1
    if budget.iterations > MAX_ITERATIONS:
        raise TemplateLimitError(f"more than {MAX_ITERATIONS:,} loop iterations (the limit "
                                 "per template)")
    if budget.iterations % 64 == 0 and time.monotonic() > budget.deadline:
        raise TemplateLimitError(f"took longer than {RENDER_SECONDS:g} s to render (the limit "
                                 "per template)")


def _too_long(what: str, size: int, limit: int, unit: str = "characters") -> TemplateLimitError:
    return TemplateLimitError(f"{what} would be {size:,} {unit}; the limit is {limit:,}")


def _built(size: int) -> None:
    """Count what a render builds; refuse a render that builds too much in all."""
    budget = _BUDGET.get()
    if budget is not None:
        budget.built += size
        if budget.built > MAX_BUILT:
            raise TemplateLimitError(f"built more than {MAX_BUILT:,} characters and items in "
                                     "all (the limit per template)")


def _check_value(value: Any) -> Any:
    """Refuse a value over the limits (after an operation whose inputs were checked)."""
    if isinstance(value, str | bytes):
        if len(value) > MAX_TEXT:
            raise _too_long("a text", len(value), MAX_TEXT)
        _built(len(value))
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise TemplateLimitError(f"an integer of {value.bit_length():,} bits; the limit is "
                                     f"{MAX_INT_BITS:,} bits")
    elif isinstance(value, list | tuple):
        if len(value) > MAX_ITEMS:
            raise _too_long("a list", len(value), MAX_ITEMS, "items")
        _built(len(value))
    return value


def _text_size(value: Any, limit: int = MAX_TEXT) -> int:
    """About how many characters `str(value)` would have, counted without building it
    (a list of 10,000 references to one long text would be a gigabyte); stops counting,
    and refuses, past `limit`."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item) + 4
        elif isinstance(item, Mapping):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            stack.extend(item)
        elif type(item).__name__ == "Namespace":
            try:
                stack.append(object.__getattribute__(item, "_Namespace__attrs"))
            except AttributeError:
                pass
        elif isinstance(item, int):
            total += item.bit_length() * 3 // 10 + 2  # its decimal digits, about
        else:
            total += 24
        if total > limit:
            raise _too_long("the text of a value", total, limit)
    return total


def _is_seq(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple)


def _seq_limit(value: Any) -> tuple[int, str]:
    return (MAX_TEXT, "characters") if isinstance(value, str | bytes) else (MAX_ITEMS, "items")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "**":
        if _int(left) and _int(right) and right > 0 and abs(left) > 1:
            bits = right * math.log2(abs(left))
            if bits > MAX_INT_BITS:
                raise TemplateLimitError(f"{left} ** {right} would have about {bits:,.0f} bits; "
                                         f"the limit is {MAX_INT_BITS:,} bits")
    elif operator == "*":
        if _int(left) and _int(right):
            bits = left.bit_length() + right.bit_length()
            if bits > MAX_INT_BITS:
                raise TemplateLimitError(f"a product of about {bits:,} bits; the limit is "
                                         f"{MAX_INT_BITS:,} bits")
        for seq, n in ((left, right), (right, left)):
            if _is_seq(seq) and _int(n) and n > 0:
                limit, unit = _seq_limit(seq)
                if len(seq) * n > limit:
                    raise _too_long("a repetition", len(seq) * n, limit, unit)
                if isinstance(seq, list | tuple) and _text_size(seq) * n > MAX_TEXT:
                    raise _too_long("the text of a repeated list", _text_size(seq) * n,
                                    MAX_TEXT)
    elif operator == "+":
        if _is_seq(left) and _is_seq(right):
            limit, unit = _seq_limit(left)
            if len(left) + len(right) > limit:
                raise _too_long("a concatenation", len(left) + len(right), limit, unit)
    elif operator == "%" and isinstance(left, str):
        _check_percent_format(left, right)
        _text_size(right)


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def _check_percent_format(fmt: str, args: Any) -> None:
    """`'%09999999d' % 1` would build a huge string: refuse widths over the limit."""
    star = False
    for m in _PERCENT_SPEC.finditer(fmt):
        for group in m.groups():
            if group == "*":
                star = True
            elif group is not None and int(group) > MAX_TEXT:
                raise _too_long("a formatted field", int(group), MAX_TEXT)
    if star:
        values = args if isinstance(args, tuple) else (args,)
        for value in values:
            if _int(value) and abs(value) > MAX_TEXT:
                raise _too_long("a formatted field", abs(value), MAX_TEXT)


def _check_brace_format(fmt: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """`'{:>999999999}'.format(1)` likewise, including widths given as arguments."""
    _text_size((list(args), dict(kwargs)))
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # the real call reports the malformed format
    for _, _, spec, _ in parsed:
        if not spec:
            continue
        for digits in re.findall(r"\d+", spec):
            if int(digits) > MAX_TEXT:
                raise _too_long("a formatted field", int(digits), MAX_TEXT)
        if "{" in spec:
            for value in (*args, *kwargs.values()):
                width = value if _int(value) else max(
                    (int(d) for d in re.findall(r"\d+", value)), default=0) \
                    if isinstance(value, str) else 0
                if abs(width) > MAX_TEXT:
                    raise _too_long("a formatted field", abs(width), MAX_TEXT)


def _bounded_list(items: Iterable[Any]) -> list[Any]:
    """The items to join, refused when their text would be over the limit."""
    out = []
    total = 0
    for item in items:
        _iterate_once()
        out.append(item)
        total += _text_size(item)
        if total > MAX_TEXT:
            raise _too_long("a joined text", total, MAX_TEXT)
        if len(out) > MAX_ITEMS:
            raise _too_long("a list", len(out), MAX_ITEMS, "items")
    return out


def _check_replace(text: str, old: Any, new: Any, count: Any = -1) -> None:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return
    hits = len(text) + 1 if old == "" else text.count(old)
    if _int(count) and count >= 0:
        hits = min(hits, count)
    size = len(text) + hits * (len(new) - len(old))
    if size > MAX_TEXT:
        raise _too_long("a replacement", size, MAX_TEXT)


def _check_str_method(name: str, text: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> \
        tuple[tuple[Any, ...], dict[str, Any]]:
    _text_size((list(args), dict(kwargs)))
    if name in ("center", "ljust", "rjust", "zfill", "expandtabs"):
        for value in (*args, *kwargs.values()):
            if _int(value) and value > MAX_TEXT:
                raise TemplateLimitError(f"str.{name}() argument {value:,} is over the limit of "
                                         f"{MAX_TEXT:,}")
        if name == "expandtabs":
            size = args[0] if args and _int(args[0]) else kwargs.get("tabsize", 8)
            if _int(size) and size * text.count("\t") > MAX_TEXT:
                raise _too_long("str.expandtabs()", size * text.count("\t"), MAX_TEXT)
    elif name == "replace" and len(args) >= 2:
        _check_replace(text, *args[:3])
    elif name == "join" and args:
        items = _bounded_list(args[0])
        total = sum(len(i) for i in items if isinstance(i, str)) + len(text) * len(items)
        if total > MAX_TEXT:
            raise _too_long("a joined text", total, MAX_TEXT)
        args = (items, *args[1:])
    return args, kwargs


# -- filters: the builtin ones, bounded -----------------------------------------------------

def _filter_value(fn: Any, args: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    """(the filtered value, the other arguments), skipping a passed context."""
    skip = 1 if getattr(fn, "jinja_pass_arg", None) is not None else 0
    if len(args) <= skip:
        return None, ()
    return args[skip], args[skip + 1:]


def _precheck_filter(name: str, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    value, rest = _filter_value(fn, args)
    extra = (*rest, *kwargs.values())
    if not isinstance(value, str):
        _text_size(value)  # most filters may turn their value into text
    if name in ("center", "wordwrap", "batch", "slice", "truncate", "urlize", "indent"):
        for arg in extra:
            if _int(arg) and abs(arg) > MAX_TEXT:
                raise TemplateLimitError(f"the {name} filter's argument {arg:,} is over the "
                                         f"limit of {MAX_TEXT:,}")
    if name in ("striptags", "urlize", "wordwrap") and isinstance(value, str) \
            and len(value) > MAX_SLOW_FILTER_TEXT:
        raise _too_long(f"the input of the {name} filter", len(value), MAX_SLOW_FILTER_TEXT)
    if name == "indent" and isinstance(value, str):
        width = rest[0] if rest else kwargs.get("width", 4)
        prefix = len(width) if isinstance(width, str) else width if _int(width) else 0
        size = len(value) + prefix * (value.count("\n") + 1)
        if size > MAX_TEXT:
            raise _too_long("an indented text", size, MAX_TEXT)
    elif name == "replace" and isinstance(value, str) and len(rest) >= 2:
        _check_replace(value, *rest[:3])
    elif name == "format" and isinstance(value, str):
        _check_percent_format(value, tuple(rest) or tuple(kwargs.values()))
    elif name == "center" and isinstance(value, str):
        pass  # its width is checked above


def _guard_filter(name: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        _precheck_filter(name, fn, args, kwargs)
        if name == "join":
            value, rest = _filter_value(fn, args)
            if value is not None and not isinstance(value, str | Mapping):
                items = _bounded_list(value)
                args = tuple(items if a is value else a for a in args)
                sep = rest[0] if rest and isinstance(rest[0], str) else ""
                total = sum(_text_size(i) for i in items) + len(sep) * len(items)
                if total > MAX_TEXT:
                    raise _too_long("a joined text", total, MAX_TEXT)
        return _check_value(fn(*args, **kwargs))

    return guarded


@functools.cache
def _guarded_filters() -> dict[str, Any]:
    from jinja2.filters import FILTERS

    return {name: _guard_filter(name, fn) for name, fn in FILTERS.items()}


def _safe_range(*args: Any) -> range:
    if not all(_int(a) for a in args):
        raise TypeError("range() takes integers")
    rng = range(*args)
    try:
        size = len(rng)
    except OverflowError:
        size = MAX_ITEMS + 1
    if size > MAX_ITEMS:
        raise TemplateLimitError(f"range() of more than {MAX_ITEMS:,} items (the limit)")
    return rng


def _safe_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    from jinja2.utils import generate_lorem_ipsum

    for value in (n, min, max):
        if not _int(value) or not 0 <= value <= 1000:
            raise TemplateLimitError("lipsum() takes counts from 0 to 1000")
    return str(_check_value(generate_lorem_ipsum(n=n, html=html, min=min, max=max)))


# -- the context: mappings that know their name, for messages -------------------------------

class _Labelled(dict[str, Any]):
    """A dict from the context (copy, brand, ...) that knows what it is, so that a missing
    key can be reported as "the copy of asset hero has no key 'headlin'". It has no public
    attribute: `copy.label` must still be the copy's key `label` (see `getattr` below)."""

    __slots__ = ("_qb_label", "_qb_owner")

    def __init__(self, data: Mapping[str, Any], label: str, owner: str) -> None:
        super().__init__(data)
        self._qb_label = label
        self._qb_owner = owner


def _missing(mapping: _Labelled, key: Any) -> str:
    keys = [str(k) for k in mapping]
    message = f"{mapping._qb_label}.{key}: {mapping._qb_owner} has no key {key!r}"
    if isinstance(key, str):
        match = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
        if match:
            return (f"{message}; did you mean {match[0]!r}? Its keys: "
                    + ", ".join(keys[:20]) + (", ..." if len(keys) > 20 else ""))
    shown = ", ".join(keys[:20]) + (", ..." if len(keys) > 20 else "")
    return message + (f". Its keys: {shown}" if keys else ". It has no keys")


def _label(value: Any, label: str, owner: str) -> Any:
    return _Labelled(value, label, owner) if type(value) is dict else value


@functools.cache
def _undefined_class() -> Any:
    from jinja2 import StrictUndefined

    class _Undefined(StrictUndefined):
        __slots__ = ()

        @property
        def _undefined_message(self) -> str:
            obj = self._undefined_obj
            if isinstance(obj, _Labelled) and self._undefined_hint is None:
                return _missing(obj, self._undefined_name)
            return str(super()._undefined_message)

    return _Undefined


# -- the environment ------------------------------------------------------------------------

@functools.cache
def _environment_class() -> Any:
    from jinja2.compiler import CodeGenerator
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _Generator(CodeGenerator):
        """Compiles every loop's iterable through `environment.qb_iterate` (counted and
        under the deadline) and every `~` concatenation through `environment.qb_text`."""

        def visit_For(self, node: Any, frame: Any) -> None:
            marks = self.__dict__.setdefault("_qb_loop_iters", set())
            marks.add(id(node.iter))
            super().visit_For(node, frame)

        def visit(self, node: Any, *args: Any, **kwargs: Any) -> Any:
            marks = self.__dict__.get("_qb_loop_iters")
            if marks and id(node) in marks:
                marks.discard(id(node))
                self.write("environment.qb_iterate(")
                super().visit(node, *args, **kwargs)
                self.write(")")
                return None
            return super().visit(node, *args, **kwargs)

        def visit_Concat(self, node: Any, frame: Any) -> None:
            # `a ~ b`: the sizes of the parts are checked before they become text.
            self.write("environment.qb_concat(context.eval_ctx, (")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write("))")

    class _Environment(ImmutableSandboxedEnvironment):
        code_generator_class = _Generator
        intercepted_binops = frozenset({"**", "*", "+", "%"})

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.globals["range"] = _safe_range
            self.globals["lipsum"] = _safe_lipsum
            self.filters = dict(_guarded_filters())

        @staticmethod
        def concat(parts: Iterable[str]) -> str:
            """Every template's output, and every macro, block and `set` block: bounded."""
            out = []
            total = 0
            for n, part in enumerate(parts):
                total += len(part)
                if total > MAX_TEXT:
                    raise _too_long("the output", total, MAX_TEXT)
                _built(len(part))
                out.append(part)
                if n % 64 == 0:
                    _tick()
            return "".join(out)

        @staticmethod
        def qb_iterate(iterable: Any) -> Iterator[Any]:
            _tick()
            for item in iterable:
                _iterate_once()
                yield item

        @staticmethod
        def qb_concat(eval_ctx: Any, parts: tuple[Any, ...]) -> Any:
            from jinja2.runtime import markup_join, str_join

            _tick()
            total = sum(_text_size(part) for part in parts)
            if total > MAX_TEXT:
                raise _too_long("a concatenation", total, MAX_TEXT)
            join = markup_join if eval_ctx.autoescape else str_join
            return _check_value(join(parts))

        @staticmethod
        def qb_finalize(value: Any) -> Any:
            """Every `{{ value }}` before it becomes text."""
            if not isinstance(value, str):
                _text_size(value)
            return value

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _tick()
            _check_binop(operator, left, right)
            return _check_value(self.binop_table[operator](left, right))

        def call(__self, __context: Any, __obj: Any, *args: Any,  # noqa: N805
                 **kwargs: Any) -> Any:
            _tick()
            owner = getattr(__obj, "__self__", None)
            name = getattr(__obj, "__name__", "")
            if isinstance(owner, str | bytes) and name:
                args, kwargs = _check_str_method(name, owner, args, kwargs)
            return _check_value(ImmutableSandboxedEnvironment.call(
                __self, __context, __obj, *args, **kwargs))

        def getattr(self, obj: Any, attribute: str) -> Any:
            _tick()
            if isinstance(obj, _Labelled):
                if attribute.startswith("_qb_"):  # our slots are not the copy's keys
                    value = obj[attribute] if attribute in obj else self.undefined(
                        obj=obj, name=attribute)
                else:
                    value = super().getattr(obj, attribute)
                label = f"{obj._qb_label}.{attribute}"
                return _label(value, label, label)
            return super().getattr(obj, attribute)

        def getitem(self, obj: Any, argument: Any) -> Any:
            _tick()
            value = super().getitem(obj, argument)
            if isinstance(obj, _Labelled):
                label = f"{obj._qb_label}.{argument}"
                return _label(value, label, label)
            return value

        def wrap_str_format(self, value: Any) -> Any:
            wrapped = super().wrap_str_format(value)
            if wrapped is None:
                return None
            text = value.__self__
            is_map = value.__name__ == "format_map"

            def checked(*args: Any, **kwargs: Any) -> Any:
                _tick()
                if is_map and args and isinstance(args[0], Mapping):
                    _check_brace_format(text, (), args[0])
                else:
                    _check_brace_format(text, args, kwargs)
                return _check_value(wrapped(*args, **kwargs))

            return checked

    return _Environment


# -- the loader: templates inside the repository, regular files only ------------------------

class _Loader:
    """Finds templates in the folders, in order, and reads them safely: a template file
    (after resolving symbolic links, also one reached through include, import or extends)
    must be a regular file of at most MAX_TEMPLATE_BYTES, and inside `root` unless `root`
    is None (campaign.allow_external_templates)."""

    def __init__(self, folders: Sequence[Path], root: Path | None) -> None:
        self.folders = list(folders)
        self.root = root
        self._found: dict[str, tuple[Path | None, str | None]] = {}

    def find(self, name: str) -> tuple[Path | None, str | None]:
        """(the file of template `name`, why it is refused), (None, None) when not found."""
        found = self._found.get(name)
        if found is None:
            found = self._found[name] = self._find(name)
        return found

    def _find(self, name: str) -> tuple[Path | None, str | None]:
        from jinja2.loaders import split_template_path

        try:
            pieces = split_template_path(name)
        except Exception:
            return None, None
        if not pieces or "\0" in name:
            return None, None
        for folder in self.folders:
            path = folder.joinpath(*pieces)
            try:
                if not os.path.lexists(path) or os.path.isdir(path):
                    continue
            except (OSError, ValueError):
                continue
            return path, self.problem(path)
        return None, None

    def problem(self, path: Path) -> str | None:
        try:
            real = Path(os.path.realpath(path))
        except (OSError, ValueError) as exc:
            return f"cannot resolve it: {exc}"
        if self.root is not None and not inside(real, self.root):
            return (f"it resolves to {real}, outside the repository ({self.root}); set "
                    "campaign.allow_external_templates = true to allow it")
        return check_regular(real, MAX_TEMPLATE_BYTES, resolved=True)

    def jinja_loader(self) -> Any:
        from jinja2 import BaseLoader, TemplateNotFound

        outer = self

        class Loader(BaseLoader):
            def get_source(self, environment: Any, template: str) -> tuple[str, str, Any]:
                path, problem = outer.find(template)
                if path is None:
                    raise TemplateNotFound(template)
                if problem is None:
                    problem = outer.problem(path)  # again, right before reading it
                if problem is not None:
                    raise TemplateRefusedError(f"{template} is not read: {problem}")
                try:
                    data = read_regular(path, MAX_TEMPLATE_BYTES)
                except UnsafeFileError as exc:
                    raise TemplateRefusedError(f"{template} is not read: {exc.reason}") \
                        from None
                except OSError as exc:
                    raise TemplateRefusedError(f"{template}: cannot read it: "
                                               f"{exc.strerror or exc}") from None
                try:
                    source = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise TemplateRefusedError(f"{template}: not UTF-8 text (byte "
                                               f"{exc.start})") from None
                return source, os.path.normpath(path), lambda: True

        return Loader()


class Prompts:
    """Renders prompt templates from a list of folders in Jinja's sandbox.

    Undefined variables are errors (StrictUndefined); a template reaching for Python
    internals is stopped by the sandbox; a template over a limit of time or size is
    stopped too. Template files must be inside `root` (the repository) unless it is None.
    Compiled templates are cached per instance.
    """

    def __init__(self, folders: Sequence[Path], root: Path | None = None) -> None:
        self.folders = [Path(f) for f in folders]
        self.root = root
        self._loader = _Loader(self.folders, root)
        env_class = _environment_class()
        self.env = env_class(
            loader=self._loader.jinja_loader(),
            finalize=env_class.qb_finalize,
            undefined=_undefined_class(),
            autoescape=False,
            keep_trailing_newline=False,
            auto_reload=False,
        )
        self._strings: dict[str, Any] = {}
        self._available: list[str] | None = None

    def exists(self, name: str) -> bool:
        return self._loader.find(name)[0] is not None

    def problem(self, name: str) -> str | None:
        """Why template `name` would not be read ("not found" is not a problem here)."""
        return self._loader.find(name)[1]

    def _walk(self) -> Iterator[tuple[Path, Path]]:
        """(folder, file) for every file below the folders, not following linked folders."""
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for top, dirs, names in os.walk(folder):
                dirs.sort()
                for name in sorted(names):
                    yield folder, Path(top) / name

    def available(self) -> list[str]:
        """Template names, for suggestions (the first 10,000: a folder holding more is
        not a template folder)."""
        if self._available is None:
            names: set[str] = set()
            for folder, path in self._walk():
                if not path.name.startswith(("_", ".")):
                    names.add(path.relative_to(folder).as_posix())
                    if len(names) >= 10_000:
                        break
            self._available = sorted(names)
        return self._available

    def files(self) -> list[Path]:
        """Every template file in the folders that may be read (what a prompt may depend
        on); files that would be refused are left out, and never read."""
        return sorted({path for _, path in self._walk() if self._loader.problem(path) is None})

    def render(self, name: str, context: Mapping[str, Any], where: str) -> str:
        """Render template `name`; `where` names the asset for error messages."""
        try:
            template = self.env.get_template(name)
        except Exception as exc:
            raise TemplateError(f"{where}: template {name}: {self._describe(exc, name)}") \
                from exc
        return self._run(template, context, f"{where}: template {name}", name)

    def render_string(self, source: str, context: Mapping[str, Any], where: str) -> str:
        template = self._strings.get(source)
        if template is None:
            try:
                template = self.env.from_string(source)
            except Exception as exc:
                raise TemplateError(f"{where}: {self._describe(exc, None)}") from exc
            self._strings[source] = template
        return self._run(template, context, where, None)

    def _run(self, template: Any, context: Mapping[str, Any], where: str,
             name: str | None) -> str:
        asset = context.get("asset")
        asset_id = asset.get("id") if isinstance(asset, Mapping) else None
        owners = {"copy": f"the copy of asset {asset_id}" if asset_id else "the copy"}
        labelled = {key: _label(value, key, owners.get(key, key))
                    for key, value in context.items()}
        token = _BUDGET.set(_Budget())
        try:
            return collapse(template.render(labelled))
        except Exception as exc:
            raise TemplateError(f"{where}: {self._describe(exc, name, context)}") from exc
        finally:
            _BUDGET.reset(token)

    def _name_of(self, filename: str) -> str | None:
        """The template name of a file Jinja compiled (None for a string template)."""
        if filename.startswith("<"):
            return None
        path = Path(filename)
        for folder in self.folders:
            if path.is_relative_to(folder):
                return path.relative_to(folder).as_posix()
        return path.name

    def _describe(self, exc: BaseException, name: str | None,
                  context: Mapping[str, Any] | None = None) -> str:
        from jinja2 import TemplateNotFound, TemplateSyntaxError, UndefinedError
        from jinja2.exceptions import SecurityError

        if isinstance(exc, TemplateSyntaxError):
            inside_of = f" of {exc.name}" if exc.name and exc.name != name else ""
            return f"syntax error at line {exc.lineno}{inside_of}: {exc.message}"
        if isinstance(exc, TemplateNotFound):
            return f"template not found: {exc.name}"
        if isinstance(exc, TemplateRefusedError):
            return str(exc)
        at = self._where_in(exc, name)
        if isinstance(exc, UndefinedError):
            message = _undefined_name(exc.message or str(exc))
            if context is not None and isinstance(message, str):
                message += _top_level_hint(message, context)
            return f"undefined variable{at}: {message}"
        if isinstance(exc, SecurityError):
            return f"blocked by the template sandbox{at}: {exc}"
        if isinstance(exc, TemplateLimitError):
            return f"over a template limit{at}: {exc} (see README, \"Limits of prompt templates\")"
        if isinstance(exc, RecursionError):
            return (f"nested too deeply, or recursive without end{at} (a macro, include or "
                    "import that calls itself?)")
        if isinstance(exc, MemoryError):
            return f"out of memory{at}"
        return f"{type(exc).__name__}{at}: {exc}"

    def _where_in(self, exc: BaseException, name: str | None) -> str:
        found = _template_frame(exc)
        if found is None:
            return ""
        filename, line = found
        owner = self._name_of(filename)
        if owner is None or owner == name:
            return f" (line {line})"
        return f" (line {line} of {owner})"


def _top_level_hint(message: str, context: Mapping[str, Any]) -> str:
    """`{{ headline }}` where the copy has `headline`: say `copy.headline`."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", message):
        return ""
    for key in ("copy", "brand", "asset"):
        value = context.get(key)
        if isinstance(value, Mapping) and message in value:
            return f" (did you mean {key}.{message}?)"
    return ""


def _undefined_name(message: str) -> str:
    # Jinja says "'headline' is undefined" or "'dict object' has no attribute 'blocks'".
    m = re.match(r"'(.+)' is undefined", message)
    if m:
        return m.group(1)
    m = re.search(r"has no attribute '(.+)'", message)
    if m:
        return f"{m.group(1)} ({message})"
    return message


def _template_frame(exc: BaseException) -> tuple[str, int] | None:
    """(file, line) of the innermost frame Jinja attributes to a template."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.endswith(".py"):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found
