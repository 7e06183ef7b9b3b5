"""Custom dimensions: the names and values a click's ``dimensions`` object may hold. Pure.

A deployment's own dimensions (the TalkingData sample's ``os``, for one) travel
in the click as ``"dimensions": {"os": "13"}`` and are kept in
``raw.ad_clicks.dimensions`` (migration 0014). ``FARLOOM_DIMENSIONS`` may slice
by them (core/dimensions.py), and the slice statement (stores/slices.py) reads
one as ``r.dimensions ->> 'name' AS name`` and then uses the name bare as a
column. So a name is a plain lower-case SQL identifier that is no PostgreSQL
keyword (``user`` would be read as ``current_user``) and none of the names the
contract or that statement already use: that keeps the literal and the column
safe without quoting.

A value is an opaque label: 1-64 printable characters, without ``*``, which
joins the values of a combination slice (``ios*13``): a value holding it could
make two different combinations one slice value.
"""

from __future__ import annotations

import re

FIELD = "dimensions"  # the click contract's field
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
MAX_ENTRIES = 16
MAX_VALUE_CHARS = 64
FORBIDDEN_IN_VALUE = "*"  # core.dimensions.COMBINATION_SEPARATOR

# The click contract's fields and the slices every deployment has.
CONTRACT_NAMES = frozenset({
    "click_id", "ad_id", "clicked_at", "user_id", "ip", "country", "device",
    "campaign_id", "advertiser_id", "campaign", "advertiser", FIELD,
})
# Column names and aliases of raw.ad_clicks and of the slice statement.
STATEMENT_NAMES = frozenset({
    "minute", "clicks", "g", "slice", "value", "distinct_ads", "ad_ids", "ad_clicks",
    "revision",
})
# PostgreSQL 15's keywords that are not unreserved (pg_get_keywords() catcode C, R, T):
# a bare column of one of these names does not parse, or means something else.
SQL_KEYWORDS = frozenset({
    "between", "bigint", "bit", "boolean", "char", "character", "coalesce", "dec", "decimal",
    "exists", "extract", "float", "greatest", "grouping", "inout", "int", "integer",
    "interval", "least", "national", "nchar", "none", "normalize", "nullif", "numeric", "out",
    "overlay", "position", "precision", "real", "row", "setof", "smallint", "substring",
    "time", "timestamp", "treat", "trim", "values", "varchar", "xmlattributes", "xmlconcat",
    "xmlelement", "xmlexists", "xmlforest", "xmlnamespaces", "xmlparse", "xmlpi", "xmlroot",
    "xmlserialize", "xmltable", "all", "analyse", "analyze", "and", "any", "array", "as",
    "asc", "asymmetric", "both", "case", "cast", "check", "collate", "column", "constraint",
    "create", "current_catalog", "current_date", "current_role", "current_time",
    "current_timestamp", "current_user", "default", "deferrable", "desc", "distinct", "do",
    "else", "end", "except", "false", "fetch", "for", "foreign", "from", "grant", "group",
    "having", "in", "initially", "intersect", "into", "lateral", "leading", "limit",
    "localtime", "localtimestamp", "not", "null", "offset", "on", "only", "or", "order",
    "placing", "primary", "references", "returning", "select", "session_user", "some",
    "symmetric", "table", "then", "to", "trailing", "true", "union", "unique", "user", "using",
    "variadic", "when", "where", "window", "with", "authorization", "binary", "collation",
    "concurrently", "cross", "current_schema", "freeze", "full", "ilike", "inner", "is",
    "isnull", "join", "left", "like", "natural", "notnull", "outer", "overlaps", "right",
    "similar", "tablesample", "verbose",
})
RESERVED = CONTRACT_NAMES | STATEMENT_NAMES | SQL_KEYWORDS


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a custom dimension's name, or None if it can."""
    if not isinstance(name, str):
        return f"a dimension name must be a string, got {type(name).__name__}"
    if NAME_PATTERN.match(name) is None:
        return (f"dimension name {name[:80]!r} must be 1-32 characters of a-z, 0-9 and _, "
                "starting with a letter")
    if name in RESERVED:
        return (f"dimension name {name!r} is reserved (a click field, a built-in slice, "
                "or a word the slice SQL uses)")
    return None


def is_valid_name(name: object) -> bool:
    return (type(name) is str and NAME_PATTERN.match(name) is not None
            and name not in RESERVED)


def value_problem(name: str, value: object) -> str | None:
    """Why ``value`` cannot be dimension ``name``'s value, or None if it can."""
    if not isinstance(value, str):
        return f"dimension {name!r} must be a string, got {type(value).__name__}"
    if not 1 <= len(value) <= MAX_VALUE_CHARS:
        return (f"dimension {name!r} must have 1-{MAX_VALUE_CHARS} characters, "
                f"got {len(value)}")
    if not value.isprintable():  # also refuses NUL and unpaired surrogates
        return f"dimension {name!r} must contain printable characters only"
    if FORBIDDEN_IN_VALUE in value:
        return (f"dimension {name!r} must not contain {FORBIDDEN_IN_VALUE!r} (it joins "
                "the values of a combination slice)")
    return None


def dimensions_problem(value: object) -> str | None:
    """Why ``value`` cannot be a click's ``dimensions`` object, or None if it can."""
    if not isinstance(value, dict):
        return f"{FIELD} must be an object of name -> value, got {type(value).__name__}"
    if len(value) > MAX_ENTRIES:
        return f"{FIELD} has {len(value)} entries; at most {MAX_ENTRIES}"
    for name, item in value.items():
        problem = name_problem(name) or value_problem(name, item)
        if problem is not None:
            return problem
    return None


def is_common_shape(value: object) -> bool:
    """The valid objects most producers send (ASCII values), checked in one pass: the
    click validator's fast path. False means "ask ``dimensions_problem``"."""
    if type(value) is not dict or len(value) > MAX_ENTRIES:
        return False
    for name, item in value.items():
        if not (type(name) is str and NAME_PATTERN.match(name) is not None
                and name not in RESERVED and type(item) is str
                and 0 < len(item) <= MAX_VALUE_CHARS and item.isascii() and item.isprintable()
                and FORBIDDEN_IN_VALUE not in item):
            return False
    return True
