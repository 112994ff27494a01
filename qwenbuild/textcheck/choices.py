"""Text rerolls and the record of which one became a job's output.

Reroll n = 1, 2, ... of a job sends the job's exact request with only the seed changed to
`reroll_seed(asset, seed, n)`. Another seed is another key, so every attempt is its own
store entry, paid for once and kept. When a reroll wins, a choice record in the store
(`textcheck/choices/<planned key>.json`) names it, so that a restore from the store brings
back the chosen image (`restore_source`); the choice is void once the planned key's image
changes (`build --force`).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from ..keys import job_key
from ..plan import Job
from ..store import Store


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
    """The reroll chosen for `job`, while the planned key's image is still the one the
    choice was made against (a forced rebuild replaces it and voids the choice)."""
    choice = store.choices.get(job.key)
    if choice is None:
        return None
    planned = store.record(job.key, job.ext)
    if planned is None or planned.sha256 != choice.get("attempt0_sha256"):
        return None
    return choice


def write_choice(store: Store, job: Job, choice: dict[str, Any] | None) -> None:
    """Record (or, with None, forget) the reroll chosen for `job`."""
    if choice is None:
        store.choices.delete(job.key)
    elif choice != store.choices.get(job.key):
        store.choices.put(job.key, choice)


def restore_source(store: Store, job: Job) -> Job:
    """The job whose stored image a restore of `job` brings back: the chosen reroll when a
    text check chose one, else `job` itself."""
    choice = read_choice(store, job)
    if choice is None:
        return job
    try:
        source = reseed(job, int(choice["seed"]))
    except (KeyError, TypeError, ValueError):  # a damaged record: restore the planned image
        return job
    if source.key != choice.get("key") or not store.has(source.key, job.ext):
        return job
    return source
