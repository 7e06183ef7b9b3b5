"""``farloom import --dimension``: NAME=COLUMN or COLUMN, checked as the contract checks
names, with the built-in fields pointed at their own flags."""

from __future__ import annotations

import pytest

from farloom_tasks.core.import_mapping import BadMapping, parse_dimension_flags


def test_a_dimension_is_named_explicitly_or_after_its_column() -> None:
    assert parse_dimension_flags(["device_model=device", "os", " os_version = OS Version "]) == {
        "device_model": "device", "os": "os", "os_version": "OS Version"}
    assert parse_dimension_flags([]) == {}


@pytest.mark.parametrize(("flags", "message"), [
    (["device"], "dimension name 'device' is reserved"),
    (["device"], "--device-column"),
    (["campaign_id=app"], "--campaign-column"),
    (["Os=os"], "must be 1-32 characters of a-z, 0-9 and _"),
    (["OsVersion"], "name it with NAME=COLUMN"),
    (["select=os"], "is reserved"),
    (["os="], "no column"),
    (["=os"], "must be 1-32 characters"),
    (["os", "os=other"], "dimension 'os' is mapped twice"),
    ([f"d{n}" for n in range(17)], "at most 16 custom dimensions"),
])
def test_a_bad_flag_is_refused_saying_why(flags: list[str], message: str) -> None:
    with pytest.raises(BadMapping) as refused:
        parse_dimension_flags(flags)
    assert message in str(refused.value)
