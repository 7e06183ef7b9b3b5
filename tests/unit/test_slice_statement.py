"""The slice statement's shape (stores/slices.computed_sql): one scan of raw, one grouping
set per dimension slice and one of the per-ad counts, the catalog joined to those only.

Its results are checked against clicks in tests/integration/test_slices.py; here, that
the owner slices no longer join every raw row to agg.ads (docs/benchmarks.md, "Slices
at close")."""

from __future__ import annotations

import re

from farloom_tasks.core.dimensions import parse_dimensions
from farloom_tasks.stores.slices import computed_sql


def test_every_slice_is_a_grouping_set_of_one_raw_scan_and_owners_come_from_per_ad_counts(
        ) -> None:
    statement = computed_sql(parse_dimensions("country,device,country*device"))
    assert statement.count("FROM raw.ad_clicks") == 1
    assert ("GROUPING SETS ((minute, country, ad_id), (minute, device, ad_id), "
            "(minute, country, device, ad_id), (minute, ad_id))") in statement
    # GROUPING(country, device): a bit per dimension left out, country the higher one.
    assert "WHEN 1 THEN 'country'" in statement and "WHEN 2 THEN 'device'" in statement
    assert "WHEN 0 THEN 'country*device'" in statement
    # The catalog is joined once, to the per-ad set (g = 3: no dimension grouped).
    assert statement.count("agg.ads") == 1
    assert re.search(r"FROM grouped p JOIN agg\.ads a ON a\.ad_id = p\.ad_id", statement)
    assert "WHERE p.g = 3 AND o.value IS NOT NULL" in statement


def test_a_custom_dimension_is_read_from_the_click_s_dimensions() -> None:
    statement = computed_sql(parse_dimensions("os"))
    assert "r.dimensions ->> 'os' AS os" in statement
    assert "GROUPING(os)" in statement and "WHERE p.g = 1 AND" in statement
