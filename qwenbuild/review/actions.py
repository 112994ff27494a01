"""Making a decision: approve, reject, pick, comment or clear one output, for the CLI
(`qwenbuild approve|reject|pick`) and the review page's server.

A decision is about the image the output holds now (its sha256 in the manifest, checked
against the file). Picking a variant takes the pick away from its siblings (the other
seeds of the same asset, aspect and provider). Approving or picking a *candidate* (the new
image `build --candidates` put beside a locked output) promotes it: under the output lock,
the candidate's file replaces the output, its manifest entry becomes the output's, and the
decision and the candidate's comments move to the output.

Each edit of the review file is made under its lock (`decisions.editing`), so two tabs and
a terminal never lose each other's decisions.
"""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..contracts import ExportEntry, ManifestEntry
from ..errors import CampaignError, InputError, UsageError
from ..fsutil import file_sha256
from ..manifest import MANIFEST_NAME, Manifest
from ..plan import candidate_of
from ..store import Store, cache_root, find_repo_root
from .decisions import APPROVED, PICKED, REJECTED, editing, review_path, variant_group

log = logging.getLogger(__name__)

#: What a reviewer can do to an output.
ACTIONS = ("approve", "reject", "pick", "comment", "clear")
_DECISION = {"approve": APPROVED, "reject": REJECTED, "pick": PICKED}


class StaleImage(InputError):
    """The output holds another image than the one the reviewer saw (the page is older
    than the last build): nothing was recorded."""


@dataclass(frozen=True)
class ReviewTarget:
    """Where a campaign's review lives and what it is about, read without validating the
    whole campaign (a reviewer can approve while the campaign file is mid-edit)."""

    campaign_path: Path
    name: str
    out: Path
    cache: Path

    @property
    def review_path(self) -> Path:
        return review_path(self.campaign_path)

    @classmethod
    def of(cls, campaign_path: Path) -> ReviewTarget:
        """Raises CampaignError when the file is no campaign."""
        path = campaign_path.resolve()
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise CampaignError(f"{campaign_path}: no such file") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise CampaignError(f"{campaign_path}: cannot read the campaign: {exc}") from None
        section = data.get("campaign")
        if not isinstance(section, dict) or not isinstance(section.get("name"), str):
            raise CampaignError(f"{campaign_path}: not a campaign file ([campaign] name is "
                                "missing)")
        out = section.get("out", "out")
        if not isinstance(out, str):
            raise CampaignError(f"{campaign_path}: campaign.out must be a string")
        root = path.parent
        return cls(path, section["name"], (root / out).resolve(),
                   cache_root(find_repo_root(root)))

    def manifest(self) -> Manifest:
        return Manifest.load(self.out, self.name)


def find_campaign(output: Path) -> ReviewTarget:
    """The campaign whose output folder holds `output`: the nearest folder above it with
    a manifest.json is the output folder; the campaign is the .toml file beside it (or
    higher up, to the repository) whose `out` is that folder. Raises UsageError."""
    path = output.resolve()
    out = next((f for f in path.parents if (f / MANIFEST_NAME).is_file()), None)
    if out is None:
        raise UsageError(f"{output}: not inside an output folder (no {MANIFEST_NAME} above "
                         "it); give the campaign with --campaign")
    top = find_repo_root(out.parent)
    for folder in (out.parent, *out.parent.parents):
        for candidate in sorted(folder.glob("*.toml")):
            if candidate.name == "review.toml" or candidate.name.endswith(".review.toml"):
                continue
            try:
                target = ReviewTarget.of(candidate)
            except CampaignError:
                continue
            if target.out == out:
                return target
        if folder == top:
            break
    raise UsageError(f"{output}: no campaign file found whose output folder is {out}; give "
                     "it with --campaign")


def relative_output(target: ReviewTarget, given: str) -> str:
    """An output as the review file names it (relative to the output folder) from what a
    user typed: a path to the file, or a path relative to the output folder."""
    candidate = Path(given)
    for path in (candidate, target.out / given):
        resolved = path.resolve()
        if resolved.is_relative_to(target.out) and resolved != target.out:
            return resolved.relative_to(target.out).as_posix()
    raise UsageError(f"{given}: not in the output folder of {target.campaign_path.name} "
                     f"({target.out})")


@dataclass(frozen=True)
class Outcome:
    """What a decision did."""

    output: str  # the output decided on (after a promotion: the output, not the candidate)
    action: str
    status: str  # its review status now
    sha256: str
    promoted_from: str | None = None


def check(target: ReviewTarget, rel: str, action: str, comment: str | None = None,
          seen: str | None = None) -> tuple[str, ManifestEntry | ExportEntry]:
    """Check that `action` can be recorded on `rel`; returns what it is ("output",
    "candidate" or "export") and its manifest entry. Raises InputError (StaleImage when
    the output holds another image than `seen`)."""
    if action not in ACTIONS:
        raise UsageError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    if action == "comment" and not (comment and comment.strip()):
        raise UsageError("a comment needs some text (-m TEXT)")
    kind, entry = _find(target.manifest(), rel)
    if entry is None:
        raise UsageError(f"{rel}: not an output of {target.campaign_path.name} (its manifest "
                         "lists no such output or rendition; build first)")
    sha = str(entry.sha256)
    if seen is not None and (len(seen) < 12 or not sha.startswith(seen)):
        raise StaleImage(f"{rel}: the output holds another image than the one shown "
                         "(rebuilt since); reload the page and decide again")
    _check_file(target.out / rel, sha, rel)
    if kind == "export" and action == "pick":
        raise UsageError(f"{rel}: an export rendition is approved or rejected, not picked "
                         "(pick the output it is cut from)")
    return kind, entry


def decide(target: ReviewTarget, rel: str, action: str, by: str,
           comment: str | None = None, seen: str | None = None) -> Outcome:
    """Record `action` on the output `rel` (relative to the output folder). `seen`: the
    sha256 (or its first 12 digits) of the image the reviewer saw; refused with
    StaleImage when the output holds another. Raises InputError for anything else wrong
    (an unknown output, a file edited by hand), with nothing written."""
    kind, entry = check(target, rel, action, comment, seen)
    sha = entry.sha256
    if kind == "candidate" and action in ("approve", "pick"):
        return _promote(target, rel, action, by, comment)
    with editing(target.review_path) as review:
        if action == "comment":
            assert comment is not None
            review.comment(rel, sha, by, comment)
        elif action == "clear":
            review.decide(rel, None, sha, by, comment=comment)
        else:
            review.decide(rel, _DECISION[action], sha, by, comment=comment)
            if action == "pick" and isinstance(entry, ManifestEntry):
                for sibling in _siblings(target.manifest(), rel, entry):
                    review.unpick(sibling)
        status = review.status(rel, sha)
    return Outcome(rel, action, status, sha)


def _find(manifest: Manifest, rel: str
          ) -> tuple[str, ManifestEntry | ExportEntry | None]:
    if rel in manifest.entries:
        return "output", manifest.entries[rel]
    if rel in manifest.candidates:
        return "candidate", manifest.candidates[rel]
    if rel in manifest.exports:
        return "export", manifest.exports[rel]
    return "", None


def _check_file(path: Path, sha: str, rel: str) -> None:
    try:
        actual = file_sha256(path)
    except OSError:
        raise UsageError(f"{rel}: the file is missing; build first") from None
    if actual != sha:
        raise UsageError(f"{rel}: the file differs from the manifest (edited by hand?); "
                         "build first, so that the decision is about the image qwenbuild "
                         "made")


def _siblings(manifest: Manifest, rel: str, entry: ManifestEntry) -> list[str]:
    """The other variants of the same asset, aspect, provider and locale."""
    group = variant_group(entry)
    return sorted(other for other, e in manifest.entries.items()
                  if other != rel and variant_group(e) == group)


def _promote(target: ReviewTarget, rel: str, action: str, by: str,
             comment: str | None) -> Outcome:
    """Make the candidate `rel` the output it stands beside, then record the decision."""
    output = candidate_of(rel)
    assert output is not None
    store = Store(target.cache)
    with editing(target.review_path) as review, store.output_lock(target.out):
        manifest = target.manifest()  # again, under the lock: a build may have finished
        entry = manifest.candidates.get(rel)
        if entry is None:
            raise UsageError(f"{rel}: no longer a candidate (a build replaced it); reload")
        _check_file(target.out / rel, entry.sha256, rel)
        stats = store.stat_cache(target.out)
        os.replace(target.out / rel, target.out / output)
        manifest.set(output, entry)
        manifest.remove_candidate(rel)
        stats.forget(rel)
        stats.remember(output, target.out / output, entry.sha256)
        manifest.save()
        stats.save()
        review.move(rel, output)
        review.decide(output, _DECISION[action], entry.sha256, by, comment=comment)
        if action == "pick":
            for sibling in _siblings(manifest, output, entry):
                review.unpick(sibling)
        status = review.status(output, entry.sha256)
    log.info("promoted %s to %s", rel, output)
    return Outcome(output, action, status, entry.sha256, promoted_from=rel)


def refresh_page(target: ReviewTarget) -> bool:
    """Write the review page again from the manifest (after a promotion changed an
    output): best effort, since the campaign may be mid-edit; the next build writes it
    anyway. Returns whether it did. Takes the output lock (a build may be writing it)."""
    from ..campaign import load_campaign
    from ..errors import QwenbuildError
    from ..plan import plan
    from .page import refresh_review

    try:
        campaign = load_campaign(target.campaign_path)
        store = Store(campaign.cache_dir)
        the_plan = plan(campaign, store=store)
        with store.output_lock(campaign.out):
            refresh_review(the_plan, Manifest.load(campaign.out, campaign.name), store)
    except QwenbuildError as exc:
        log.warning("the review page is not updated until the next build: %s", exc)
        return False
    return True
