"""core.ranked_heads: the heads settle a top only when no other ad can reach it."""

from __future__ import annotations

import random
from collections import Counter

from farloom_tasks.core.ranked_heads import Head, settled


def test_a_complete_top_above_every_bound_is_settled() -> None:
    top = [Head("a", 50, 0), Head("b", 40, 0)]
    assert settled(top, 2, other_upper=39, unseen=10)
    assert settled(top, 2, other_upper=None, unseen=39)


def test_an_incomplete_ad_in_the_top_or_a_bound_reaching_the_nth_is_not() -> None:
    assert not settled([Head("a", 50, 0), Head("b", 40, 1)], 2, other_upper=None, unseen=0)
    # A tie with the n-th could rank before it by ad id: strictly below only.
    assert not settled([Head("a", 50, 0), Head("b", 40, 0)], 2, other_upper=40, unseen=0)
    assert not settled([Head("a", 50, 0), Head("b", 40, 0)], 2, other_upper=None, unseen=40)


def test_fewer_candidates_than_n_are_settled_only_when_nothing_is_beyond_the_heads() -> None:
    assert settled([Head("a", 5, 0)], 3, other_upper=None, unseen=0)
    assert not settled([Head("a", 5, 0)], 3, other_upper=None, unseen=1)


def _heads(minutes: list[Counter[str]], depth: int, n: int) -> tuple[list[Head], int | None, int]:
    """What stores.slice_reads computes in SQL, here from ranked Python lists."""
    partial: Counter[str] = Counter()
    bound_seen: Counter[str] = Counter()
    bounds = []
    for counts in minutes:
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        bound = ranked[depth][1] if len(ranked) > depth else 0
        bounds.append(bound)
        for ad, clicks in ranked[:depth]:
            partial[ad] += clicks
            bound_seen[ad] += bound
    heads = sorted((Head(ad, p, sum(bounds) - bound_seen[ad]) for ad, p in partial.items()),
                   key=lambda h: (-h.partial, h.ad_id))
    others = [h.partial + h.missing for h in heads[n:] if h.missing]
    return heads[:n], max(others) if others else None, sum(bounds)


def test_whenever_the_heads_settle_a_top_it_is_the_exact_one() -> None:
    rng = random.Random(5)
    decided = 0
    for trial in range(300):
        ads = [f"ad-{i}" for i in range(rng.randrange(5, 60))]
        minutes = [Counter(rng.choices(ads, weights=[1 / (r + 1) ** rng.choice([0.3, 1.2])
                                                     for r in range(len(ads))], k=200))
                   for _ in range(rng.randrange(1, 6))]
        n, depth = rng.randrange(1, 8), rng.randrange(1, 30)
        top, other_upper, unseen = _heads(minutes, depth, n)
        if settled(top, n, other_upper=other_upper, unseen=unseen):
            decided += 1
            total = sum(minutes, Counter())
            exact = sorted(total.items(), key=lambda item: (-item[1], item[0]))[:n]
            assert [(h.ad_id, h.partial) for h in top] == exact, trial
    assert 50 < decided < 300  # both outcomes happen, so the check is exercised


def test_heads_of_mixed_minute_and_period_tiles_settle_only_the_exact_top() -> None:
    """A built hour (day) is one tile whose rows are the sums of its minutes: its head
    and bound weigh the same as a minute's, and a settled top equals the one summed
    from every minute."""
    rng = random.Random(13)
    decided = undecided = 0
    for trial in range(200):
        ads = [f"ad-{i}" for i in range(rng.randrange(5, 80))]
        weights = [1 / (r + 1) ** rng.choice([0.2, 1.0, 1.5]) for r in range(len(ads))]
        periods = [[Counter(rng.choices(ads, weights=weights, k=rng.randrange(0, 60)))
                    for _ in range(rng.randrange(1, 5))] for _ in range(rng.randrange(0, 3))]
        edges = [Counter(rng.choices(ads, weights=weights, k=rng.randrange(0, 60)))
                 for _ in range(rng.randrange(0, 4))]
        if not periods and not edges:
            continue
        tiles = [*edges, *(sum(minutes, Counter()) for minutes in periods)]
        n, depth = rng.randrange(1, 10), rng.randrange(1, 25)
        top, other_upper, unseen = _heads(tiles, depth, n)
        every_minute = sum([*edges, *(m for minutes in periods for m in minutes)], Counter())
        exact = sorted(every_minute.items(), key=lambda item: (-item[1], item[0]))[:n]
        if settled(top, n, other_upper=other_upper, unseen=unseen):
            decided += 1
            assert [(h.ad_id, h.partial) for h in top] == exact, trial
        else:
            undecided += 1
    assert decided > 20 and undecided > 20  # both outcomes happen


def test_a_tile_without_rows_adds_no_bound_and_one_tile_heads_are_its_top() -> None:
    hour = Counter({"b": 7, "a": 7, "c": 3, "d": 1})
    empty: Counter[str] = Counter()
    # One tile read n deep: its first n in rank order, ties broken by ad id.
    top, _, unseen = _heads([hour], 2, 2)
    assert [(h.ad_id, h.partial, h.missing) for h in top] == [("a", 7, 0), ("b", 7, 0)]
    assert unseen == 3
    top, other_upper, unseen = _heads([hour, empty], 3, 2)
    assert (unseen, other_upper) == (1, None)
    assert settled(top, 2, other_upper=other_upper, unseen=unseen)
