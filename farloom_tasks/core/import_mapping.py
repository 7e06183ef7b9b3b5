"""``farloom import``'s column mapping flags, read and checked before any row is. Pure.

``--dimension NAME=COLUMN`` puts a CSV column into the click's custom
``dimensions`` object under NAME; ``--dimension COLUMN`` names it after the
column. NAME must be a custom dimension name the click contract accepts
(core/custom_dimensions.py): a built-in such as ``device`` has a flag of its
own (``--device-column``), because its values are the contract's device
classes, not whatever the column holds.
"""

from __future__ import annotations

from farloom_tasks.core import custom_dimensions


class BadMapping(ValueError):
    """A mapping flag that cannot be used; the message says why and what to do."""


def parse_dimension_flags(flags: list[str]) -> dict[str, str]:
    """``--dimension`` values to {dimension name: column}, in the order given."""
    mapping: dict[str, str] = {}
    for flag in flags:
        name, separator, column = flag.partition("=")
        name, column = name.strip(), column.strip()
        if not separator:
            column = name
        if not column:
            raise BadMapping(f"--dimension {flag!r}: no column; write NAME=COLUMN or COLUMN")
        problem = custom_dimensions.name_problem(name)
        if problem is not None:
            hint = (" (map a column to the contract's own fields with --country-column, "
                    "--device-column, --campaign-column or --advertiser-column; name a "
                    "custom dimension otherwise, e.g. --dimension device_model=device)"
                    if name in custom_dimensions.CONTRACT_NAMES else
                    " (name it with NAME=COLUMN, e.g. --dimension os_version=OsVersion)")
            raise BadMapping(f"--dimension {flag!r}: {problem}{hint}")
        if name in mapping:
            raise BadMapping(f"--dimension {flag!r}: dimension {name!r} is mapped twice")
        mapping[name] = column
    if len(mapping) > custom_dimensions.MAX_ENTRIES:
        raise BadMapping(f"{len(mapping)} --dimension flags; a click holds at most "
                         f"{custom_dimensions.MAX_ENTRIES} custom dimensions")
    return mapping
