"""Text rerolls and repairs, and the record of which attempt became a job's output.

Reroll n = 1, 2, ... of a job sends the job's exact request with only the seed changed to
`reroll_seed(asset, seed, n)`. Another seed is another key, so every attempt is its own
store entry, paid for once and kept. A repair (`repair.py`) is an edit of an attempt's
image, with its own key too.

When an attempt other than the planned image wins, a choice record in the store
(`textcheck/choices/<planned key>.json`) names it, so that a restore from the store brings
back the chosen image, whatever kind it is (`restore_source`); the choice is void once
the planned key's image changes (`build --regenerate`). The record (format 2):

    {"v": 2, "attempt": 1, "kind": "repair", "how": "repaired from attempt 0",
     "key": <the chosen image's key>, "seed": 5, "source_key": <the image repaired>,
     "attempt0_sha256": <the planned image's sha256>, "output_sha256": <the output's>,
     "repairs": [{"key", "source_key", "source_sha256", "instruction", "mode"}, ...]}

`repairs` lists every repair made for the job (chosen or not), so a later build uses the
stored repair of an image again instead of paying for a new one, even when its reading of
the image (and so the instruction) changed meanwhile. Format 1 records (rerolls only:
`key`, `seed`, `attempt`, `attempt0_sha256`, `output_sha256`) read as a chosen reroll.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from ..contracts import ManifestEntry
from ..keys import job_key
from ..plan import Job
from ..store import Store

PLANNED, REPAIR, REROLL = "planned", "repair", "reroll"
CHOICE_FORMAT = 2


def reroll_seed(asset: str, seed: int, attempt: int) -> int:
    """The seed of reroll `attempt` (1, 2, ...) of the job of `asset` with `seed`: the first
    4 bytes of sha256("qwenbuild-reroll:<asset>:<seed>:<attempt>"), 31 bits (every provider
    takes it). Stable on every machine, so each reroll has a stable key and is paid once."""
    digest = hashlib.sha256(f"qwenbuild-reroll:{asset}:{seed}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def reseed(job: Job, seed: int) -> Job:
    """The same job with another seed: the planned request, prompts as rendered, with only
    the seed changed, and the key that follows from it. Same output path."""
    fields = {**job.key_fields, "seed": seed}
    return job.with_request(replace(job.request, seed=seed), fields, job_key(fields))


def read_choice(store: Store, job: Job) -> dict[str, Any] | None:
    """The choice record of `job`, while the planned key's image is still the one the
    choice was made against (a forced rebuild replaces it and voids the choice)."""
    choice = store.choices.get(job.key)
    if not isinstance(choice, dict):
        return None
    planned = store.record(job.key, job.ext)
    if planned is None or planned.sha256 != choice.get("attempt0_sha256"):
        return None
    return choice


def recover_choice(store: Store, job: Job, entry: ManifestEntry | None) -> None:
    """Where this machine has no choice record for `job` but its manifest entry (committed,
    so shared) says a text check chose another attempt (a reroll
    or a repair, `text_check.chosen` > 0), write the record from the manifest, with the
    planned and the chosen images fetched from the team cache when this machine lacks
    them: a restore (`restore_source`) then brings back the committed bytes, not the
    planned image. Does nothing when either image is in neither cache."""
    if entry is None or entry.key != job.key:
        return
    text_check = entry.text_check
    if not isinstance(text_check, dict) or not text_check.get("chosen"):
        return
    if read_choice(store, job) is not None:
        return
    attempts = [a for a in text_check.get("attempts") or () if isinstance(a, dict)]
    by_number = {a.get("attempt"): a for a in attempts}
    chosen = by_number.get(text_check["chosen"])
    if chosen is None or not isinstance(chosen.get("key"), str):
        return
    key = str(chosen["key"])
    for needed in (job.key, key):
        if not (store.has(needed, job.ext) or store.fetch(needed, job.ext)):
            return
    planned = store.record(job.key, job.ext)
    kind = chosen.get("kind") if chosen.get("kind") in (REPAIR, REROLL) else REROLL
    record: dict[str, Any] = {
        "v": CHOICE_FORMAT, "attempt": chosen.get("attempt"), "kind": kind,
        "how": chosen.get("how"), "key": key, "seed": chosen.get("seed"),
        "attempt0_sha256": planned.sha256 if planned else None,
        "output_sha256": entry.sha256}
    repairs = []
    for a in attempts:
        source = by_number.get(a.get("source"))
        if a.get("kind") != REPAIR or not isinstance(a.get("key"), str) or source is None \
                or not isinstance(source.get("key"), str):
            continue
        source_record = store.record(str(source["key"]), job.ext)
        repairs.append({"key": a["key"], "source_key": source["key"],
                        "source_sha256": source_record.sha256 if source_record else None,
                        "instruction": a.get("instruction"), "mode": a.get("mode")})
        if a is chosen:
            record["source_key"] = source["key"]
    if repairs:
        record["repairs"] = repairs
    write_choice(store, job, record)


def known_repairs(choice: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The repairs a choice record lists, by the sha256 of the image each repaired."""
    found: dict[str, dict[str, Any]] = {}
    for item in (choice or {}).get("repairs") or ():
        if isinstance(item, dict) and isinstance(item.get("source_sha256"), str) and \
                isinstance(item.get("key"), str):
            found.setdefault(item["source_sha256"], item)
    return found


def write_choice(store: Store, job: Job, choice: dict[str, Any] | None) -> None:
    """Record (or, with None, forget) the attempt chosen for `job`."""
    if choice is None:
        store.choices.delete(job.key)
    elif choice != store.choices.get(job.key):
        store.choices.put(job.key, choice)


def restore_source(store: Store, job: Job) -> Job:
    """The job whose stored image a restore of `job` brings back: the chosen reroll or
    repair when a text check chose one, else `job` itself."""
    choice = read_choice(store, job)
    if choice is None or choice.get("kind", REROLL) == PLANNED:
        return job
    key = choice.get("key")
    if not isinstance(key, str):
        return job
    if choice.get("kind") == REPAIR:
        from .repair import stored_repair

        record = store.record(key, job.ext)
        source = stored_repair(job, key, record.inputs) if record is not None else None
        return source if source is not None else job
    try:
        source = reseed(job, int(choice["seed"]))
    except (KeyError, TypeError, ValueError):  # a damaged record: restore the planned image
        return job
    if source.key != key or not store.has(source.key, job.ext):
        return job
    return source


__all__ = ["CHOICE_FORMAT", "PLANNED", "REPAIR", "REROLL", "known_repairs", "read_choice",
           "recover_choice", "reroll_seed", "reseed", "restore_source", "write_choice"]
