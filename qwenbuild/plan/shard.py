"""`--shard i/n`: a stable split of a plan's jobs by key, for n CI runners.

A job belongs to shard `int(key[:16], 16) % n + 1`: the same job lands in the same shard
on every machine and every run, whatever else the campaign holds, and the shards of one
plan are disjoint and cover it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..errors import UsageError
from .planner import Plan

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`i/n` with 1 <= i <= n. Raises UsageError."""
        match = _SHARD.match(text)
        if not match:
            raise UsageError(f"--shard {text}: expected I/N, such as 1/4")
        index, count = int(match[1]), int(match[2])
        if count < 1 or not 1 <= index <= count:
            raise UsageError(f"--shard {text}: I must be between 1 and N (N at least 1)")
        return cls(index, count)

    def holds(self, key: str) -> bool:
        return int(key[:16], 16) % self.count + 1 == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_plan(the_plan: Plan, shard: Shard | None) -> Plan:
    """The jobs of `the_plan` in `shard` (all of them without one). Every output of the
    campaign stays known, so the other shards' outputs are never taken for stale ones."""
    if shard is None or shard.count == 1:
        return the_plan
    return replace(the_plan, jobs=tuple(j for j in the_plan.jobs if shard.holds(j.key)))
