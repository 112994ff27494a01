"""The one sandboxed Jinja2 environment, and rendering with errors that say where."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import TemplateError

_WHITESPACE = re.compile(r"\s+")


def collapse(text: str) -> str:
    """Prompts are one paragraph: templates may spread them over many readable lines."""
    return _WHITESPACE.sub(" ", text).strip()


class Prompts:
    """Renders prompt templates from a list of folders in Jinja's sandbox.

    Undefined variables are errors (StrictUndefined); a template reaching for Python
    internals is stopped by the sandbox. Compiled templates are cached per instance.
    """

    def __init__(self, folders: Sequence[Path]) -> None:
        from jinja2 import FileSystemLoader, StrictUndefined
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self.folders = [Path(f) for f in folders]
        self.env = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader([str(f) for f in self.folders]),
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            auto_reload=False,
        )
        self._strings: dict[str, Any] = {}

    def exists(self, name: str) -> bool:
        return any((folder / name).is_file() for folder in self.folders)

    def available(self) -> list[str]:
        names: set[str] = set()
        for folder in self.folders:
            if folder.is_dir():
                names.update(
                    p.relative_to(folder).as_posix()
                    for p in folder.rglob("*")
                    if p.is_file() and not p.name.startswith(("_", "."))
                )
        return sorted(names)

    def files(self) -> list[Path]:
        """Every file in the template folders (what a prompt may depend on)."""
        out: list[Path] = []
        for folder in self.folders:
            if folder.is_dir():
                out.extend(p for p in folder.rglob("*") if p.is_file())
        return sorted(out)

    def render(self, name: str, context: Mapping[str, Any], where: str) -> str:
        """Render template `name`; `where` names the asset for error messages."""
        try:
            template = self.env.get_template(name)
        except Exception as exc:
            raise TemplateError(f"{where}: template {name}: {_describe(exc, name)}") from exc
        return self._run(template, context, f"{where}: template {name}", name)

    def render_string(self, source: str, context: Mapping[str, Any], where: str) -> str:
        template = self._strings.get(source)
        if template is None:
            try:
                template = self.env.from_string(source)
            except Exception as exc:
                raise TemplateError(f"{where}: {_describe(exc, None)}") from exc
            self._strings[source] = template
        return self._run(template, context, where, "<string>")

    def _run(self, template: Any, context: Mapping[str, Any], where: str, name: str) -> str:
        try:
            return collapse(template.render(context))
        except Exception as exc:
            raise TemplateError(f"{where}: {_describe(exc, name)}") from exc


def _describe(exc: BaseException, name: str | None) -> str:
    from jinja2 import TemplateNotFound, TemplateSyntaxError, UndefinedError
    from jinja2.exceptions import SecurityError

    if isinstance(exc, TemplateSyntaxError):
        inside = f" of {exc.name}" if exc.name and exc.name != name else ""
        return f"syntax error at line {exc.lineno}{inside}: {exc.message}"
    if isinstance(exc, TemplateNotFound):
        return f"template not found: {exc.name}"
    line = _template_line(exc)
    at = f" (line {line})" if line else ""
    if isinstance(exc, UndefinedError):
        return f"undefined variable{at}: {_undefined_name(exc.message or str(exc))}"
    if isinstance(exc, SecurityError):
        return f"blocked by the template sandbox{at}: {exc}"
    return f"{type(exc).__name__}{at}: {exc}"


def _undefined_name(message: str) -> str:
    # Jinja says "'headline' is undefined" or "'dict object' has no attribute 'blocks'".
    m = re.match(r"'(.+)' is undefined", message)
    if m:
        return m.group(1)
    m = re.search(r"has no attribute '(.+)'", message)
    if m:
        return f"{m.group(1)} ({message})"
    return message


def _template_line(exc: BaseException) -> int | None:
    """The template line of the innermost frame Jinja attributes to a template file."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.endswith(".py"):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
