"""`qwenbuild init`: a brand asset repository that builds at once.

The files come from package data: the prompt templates (`qwenbuild/templates/`, the one
copy, which the demo projects use too) and `scaffold_files/`: an example campaign on the
offline preview provider, a README walking through the workflow, a `.gitignore` (the
cache and the per-machine review page stay out of git) and a `.gitattributes` (binary
images, LF text, Git LFS suggested).
The campaign schema is generated for the installed qwenbuild, so editors check campaign
files against the version that builds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import InputError
from .fsutil import atomic_write

#: Package file -> path in the new repository (dot files are stored without their dot:
#: packaging tools tend to leave hidden files out).
_RENAMES = {
    "gitignore": ".gitignore",
    "gitattributes": ".gitattributes",
    "README.md": "README.md",
    "campaign.toml": "projects/example/campaign.toml",
}
EXAMPLE_CAMPAIGN = "projects/example/campaign.toml"
SCHEMA_PATH = "schema/campaign.schema.json"


@dataclass(frozen=True)
class Scaffold:
    """What `init` wrote: the folder and the files, relative to it."""

    root: Path
    files: tuple[str, ...]


def scaffold_files() -> dict[str, bytes]:
    """The files of a new brand repository, by path relative to its root."""
    from .schema import schema_text

    package = resources.files("qwenbuild") / "scaffold_files"
    files: dict[str, bytes] = {}
    for name, target in _RENAMES.items():
        files[target] = (package / name).read_bytes()
    templates = resources.files("qwenbuild") / "templates"
    for item in sorted(templates.iterdir(), key=lambda i: i.name):
        if item.name.endswith(".j2"):
            files[f"templates/{item.name}"] = item.read_bytes()
    files[SCHEMA_PATH] = schema_text().encode("utf-8")
    return dict(sorted(files.items()))


def init(folder: Path, force: bool = False) -> Scaffold:
    """Write a new brand repository into `folder` (created if needed). Refuses, writing
    nothing, when any of its files exists already, unless `force`."""
    files = scaffold_files()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    if not force:
        taken = [rel for rel in files if (folder / rel).exists() or (folder / rel).is_symlink()]
        if taken:
            shown = ", ".join(taken[:6]) + (f" and {len(taken) - 6} more" if len(taken) > 6
                                             else "")
            raise InputError(f"{folder}: {shown} already exist{'s' if len(taken) == 1 else ''};"
                             " init never overwrites a file (pass --force to replace the "
                             "scaffold's files; nothing was written)")
    for rel in files:
        target = folder / rel
        if target.is_dir():
            raise InputError(f"{target}: is a folder; init would write a file there")
    for rel, data in files.items():
        atomic_write(folder / rel, data)
    return Scaffold(folder, tuple(files))
