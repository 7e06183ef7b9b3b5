"""What reconciliation found for one minute, its slices, one hour or day rollup or one
slice's hour or day rollup, and whether it differs. Pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    """raw's and agg's view of one minute; None on agg's side: agg has no totals."""

    minute: int
    raw_clicks: int
    agg_clicks: int | None
    raw_distinct_ads: int
    agg_distinct_ads: int | None
    differing_ads: int

    @property
    def differs(self) -> bool:
        """Whether the minute must be replayed: any count disagrees, or raw has clicks
        and agg has no totals for the minute."""
        if self.agg_clicks is None:
            return self.raw_clicks > 0
        return (self.differing_ads > 0 or self.raw_clicks != self.agg_clicks
                or self.raw_distinct_ads != self.agg_distinct_ads)


@dataclass(frozen=True, slots=True)
class SliceFinding:
    """A minute whose slices differ from raw, or lack a slice its revision should have."""

    minute: int
    differing_values: int  # (slice, value) rows whose clicks or ranked ads differ from raw
    missing_slices: int  # configured slices with no row at the published revision


@dataclass(frozen=True, slots=True)
class RollupFinding:
    """One hour's or day's rollup against the sum of its minute rows.

    ``rollup_clicks`` is its totals row (None: no row); ``differing_ads`` counts
    the ads whose rollup row differs from the sum of their minute rows (a missing
    row counts as 0 clicks).
    """

    grain: str  # "hour" or "day"
    period: int  # its start, epoch seconds
    rollup_clicks: int | None
    minute_clicks: int
    differing_ads: int

    @property
    def differs(self) -> bool:
        return self.differing_ads > 0 or (self.rollup_clicks or 0) != self.minute_clicks


@dataclass(frozen=True, slots=True)
class SliceRollupFinding:
    """One slice's hour or day rollup rows against the sum of its minutes' slice rows.

    ``rollup_clicks`` sums its totals rows, ``minute_clicks`` the minutes' values;
    ``differing_rows`` counts the (value, ad) rows and the value totals rows that
    differ from their minutes (a missing row counts as 0 clicks).
    """

    grain: str  # "hour" or "day"
    period: int  # its start, epoch seconds
    slice: str
    rollup_clicks: int
    minute_clicks: int
    differing_rows: int

    @property
    def differs(self) -> bool:
        return self.differing_rows > 0 or self.rollup_clicks != self.minute_clicks


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: int
    minutes_checked: int
    findings: tuple[Finding, ...]
    minutes_fixed: int
    rollups_checked: int = 0
    rollup_findings: tuple[RollupFinding, ...] = ()  # the differing ones
    rollups_fixed: int = 0
    slice_findings: tuple[SliceFinding, ...] = ()  # minutes whose slices differ from raw
    slices_fixed: int = 0
    slice_rollups_checked: int = 0  # (grain, period, slice) triples with rows
    slice_rollup_findings: tuple[SliceRollupFinding, ...] = ()  # the differing ones
    slice_rollups_fixed: int = 0
