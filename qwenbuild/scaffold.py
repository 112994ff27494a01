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

import hashlib
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
#: Every version of the scaffold's files, by sha256 (package data).
RELEASED = "released.sha256"
SCHEMA_PATH = "schema/campaign.schema.json"


@dataclass(frozen=True)
class Scaffold:
    """What `init` did, per file (relative to the folder): `created`, `updated` (it held
    a version init wrote before, unchanged since), `unchanged` (already what init would
    write), `kept` (changed since init wrote it, or not init's: left alone) or
    `overwritten` (the same, replaced because the user said so)."""

    root: Path
    actions: dict[str, str]

    @property
    def files(self) -> tuple[str, ...]:
        """The files written."""
        return tuple(rel for rel, action in self.actions.items()
                     if action in ("created", "updated", "overwritten"))

    @property
    def kept(self) -> tuple[str, ...]:
        return tuple(rel for rel, action in self.actions.items() if action == "kept")


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


def released_versions() -> dict[str, frozenset[str]]:
    """sha256 of every version init has written, per file (`scaffold_files/released.sha256`)."""
    text = (resources.files("qwenbuild") / "scaffold_files" / RELEASED).read_text("utf-8")
    found: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            digest, rel = line.split(maxsplit=1)
            found.setdefault(rel.strip(), set()).add(digest)
    return {rel: frozenset(digests) for rel, digests in found.items()}


def init(folder: Path, force: bool = False, overwrite: bool = False) -> Scaffold:
    """Write a new brand repository into `folder` (created if needed).

    Without `force`, refuses (writing nothing) when any of its files exists already. With
    `force`, writes the missing files and replaces only those that still hold a version
    init wrote (nobody changed them since); a file changed since, or not init's, is kept
    and reported, unless `overwrite` says to replace it too."""
    files = scaffold_files()
    if overwrite and not force:
        raise InputError("--overwrite replaces files you changed: it goes with --force")
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    existing = [rel for rel in files if (folder / rel).exists() or (folder / rel).is_symlink()]
    if existing and not force:
        shown = ", ".join(existing[:6]) + (f" and {len(existing) - 6} more"
                                           if len(existing) > 6 else "")
        raise InputError(f"{folder}: {shown} already exist{'s' if len(existing) == 1 else ''}"
                         "; init never overwrites a file (pass --force to add the missing "
                         "files and update the ones init wrote that nobody changed; "
                         "nothing was written)")
    for rel in files:
        target = folder / rel
        if target.is_dir() and not target.is_symlink():
            raise InputError(f"{target}: is a folder; init would write a file there")
    released = released_versions()
    actions: dict[str, str] = {}
    for rel, data in files.items():
        target = folder / rel
        if rel not in existing:
            actions[rel] = "created"
            continue
        try:
            current = None if target.is_symlink() else target.read_bytes()
        except OSError:
            current = None
        if current == data:
            actions[rel] = "unchanged"
        elif current is not None and \
                hashlib.sha256(current).hexdigest() in released.get(rel, frozenset()):
            actions[rel] = "updated"
        else:
            actions[rel] = "overwritten" if overwrite else "kept"
    for rel, action in actions.items():
        if action in ("created", "updated", "overwritten"):
            target = folder / rel
            if action == "overwritten" and target.is_symlink():
                target.unlink()  # replace the link, never write through it
            atomic_write(target, files[rel])
    return Scaffold(folder, actions)
