"""What a build would cost, and the budget that stops it before it spends.

Prices come from the providers' tables (`ModelInfo.price_usd`, or `Provider.price_usd()` for
a provider whose options change the price, such as EmpirioLabs' Pro variant). Only jobs a
build would send to a provider count: outputs restored from the cache or up to date cost
nothing, because they were paid for already.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from .contracts import Action
from .errors import BudgetError
from .plan import Assessment, Job, Plan

#: How many of the biggest items a budget refusal names.
SHOWN_ITEMS = 5


@dataclass(frozen=True)
class CostItem:
    """The images of one asset at one provider that a build would generate."""

    asset: str
    provider: str
    model: str
    images: int
    usd: float


@dataclass(frozen=True)
class Estimate:
    """The estimated cost of the jobs a build would send to a provider."""

    usd: float
    images: int
    #: Biggest first.
    items: tuple[CostItem, ...]


def job_price(the_plan: Plan, job: Job) -> float:
    """The estimated price of one job's image at its provider, in USD: the list price, or
    for a provider whose price grows with size and steps (runware:108@1) an estimate."""
    return the_plan.providers[job.provider].job_price_usd(job.width, job.height)


def estimate(the_plan: Plan, assessments: Iterable[Assessment]) -> Estimate:
    """The cost of the jobs that would be generated (status build)."""
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for a in assessments:
        if a.action == Action.GENERATE:
            groups[(a.job.asset, a.job.provider, a.job.model)].append(job_price(the_plan, a.job))
    items = sorted(
        (CostItem(asset, provider, model, len(prices), round(sum(prices), 6))
         for (asset, provider, model), prices in groups.items()),
        key=lambda item: (-item.usd, -item.images, item.asset, item.provider),
    )
    return Estimate(round(sum(i.usd for i in items), 6), sum(i.images for i in items),
                    tuple(items))


def check_budget(the_plan: Plan, assessments: Iterable[Assessment],
                 override: float | None = None) -> Estimate:
    """Raise BudgetError when the estimate is over the budget: `override` (the command
    line's `--budget`) when given, else the campaign's `budget`. Returns the estimate."""
    campaign = the_plan.campaign
    found = estimate(the_plan, assessments)
    budget = override if override is not None else campaign.budget
    if budget is None or found.usd <= budget + 1e-9:
        return found
    source = "--budget" if override is not None else f"campaign.budget in {campaign.shown}"
    paid = [i for i in found.items if i.usd > 0]  # free previews are not worth naming
    lines = [f"estimated cost {usd(found.usd)} for {sum(i.images for i in paid)} images is "
             f"over the budget of {usd(budget)} ({source}); nothing was requested"]
    lines += [f"  {usd(i.usd):>9}  {i.asset} at {i.provider} ({i.model}): {i.images} "
              f"image{'s' if i.images != 1 else ''}" for i in paid[:SHOWN_ITEMS]]
    if len(paid) > SHOWN_ITEMS:
        rest = paid[SHOWN_ITEMS:]
        lines.append(f"  {usd(sum(i.usd for i in rest)):>9}  {len(rest)} more items")
    lines.append("raise the budget (build --budget USD), or narrow the build with --only, "
                 "--provider or --aspect")
    raise BudgetError(lines)


def usd(amount: float) -> str:
    """A dollar amount as people read it: $0.035, $0.66, $12.00."""
    text = f"{amount:.4f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"
