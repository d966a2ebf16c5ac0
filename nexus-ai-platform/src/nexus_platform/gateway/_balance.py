"""Which instance takes a request: the fewest requests in flight through this gateway among the ready
instances that are not cooling down (ties broken at random, so that idle instances share the load); when
every candidate cools down, the one whose cool-down ends first anyway (an instance that keeps failing is
cooled again at each failure; one that failed once recovers first): a cool-down is a preference, and
answering 503 at once would be worse than trying."""

import random
import time
from collections.abc import Sequence

from nexus_platform.gateway._table import Instance

__all__ = ["pick"]


def pick(candidates: Sequence[Instance], tried: Instance | None = None) -> Instance | None:
    """The instance for the next attempt, never `tried` (the one that just failed); None when none is left."""
    now = time.monotonic()
    usable = [each for each in candidates if each is not tried and each.cool_until <= now]
    if not usable:
        cooling = [each for each in candidates if each is not tried]
        return min(cooling, key=lambda each: each.cool_until) if cooling else None
    if len(usable) == 1:
        return usable[0]
    least = min(each.outstanding for each in usable)
    best = [each for each in usable if each.outstanding == least]
    return best[0] if len(best) == 1 else random.choice(best)  # noqa: S311 - load spreading, not security
