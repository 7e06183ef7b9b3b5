"""The times the query API accepts, as one regular expression and its parser. Pure.

The API's OpenAPI document gives every time parameter (``from``, ``to``, ``at``, the
path's ``{minute}``) ``TIME_PATTERN`` as its schema, and the API reads a time only
after the same pattern has matched it, the way a JSON Schema validator applies it
(``re.search``). So a client's validator and the API agree on every string: what
matches parses, what does not gets a 400 (docs/design.md §2.10). The grammar:

- epoch seconds, ``1795960980`` or ``1795960980.5`` (at most 11 integer digits);
- a date, ``2026-11-29`` (its first minute, UTC);
- a date and a time, ``2026-11-29T14:03``, ``2026-11-29 14:03:07.25``, with ``T``,
  ``t`` or a space between them, seconds and their fraction optional, and an
  optional offset ``Z``, ``z`` or ``±HH:MM`` (RFC 3339 is the case with seconds and
  an offset); without an offset the time is UTC.

Years run from 1970 to 8999 and only real calendar days match (29 February in leap
years only), so every matching string is a moment ``datetime`` can hold even after
a window of 90 days is added to it or taken from it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from farloom_tasks.core.windows import minute_of

_YEAR = r"(?:19[7-9][0-9]|[2-8][0-9]{3})"
# Leap years of that range: a multiple of 4 that is not a century, or a century
# that is a multiple of 400.
_LEAP_YEAR = (r"(?:19(?:7[26]|8[048]|9[26])|[2-8][0-9](?:0[48]|[2468][048]|[13579][26])"
              r"|(?:2[048]|3[26]|4[048]|5[26]|6[048]|7[26]|8[048])00)")
_MONTH_DAY = (r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
              r"|(?:0[13-9]|1[0-2])-(?:29|30)"
              r"|(?:0[13578]|1[02])-31)")
_DATE = rf"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,9})?)?"
_OFFSET = r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
_EPOCH = r"[0-9]{1,11}(?:\.[0-9]{1,9})?"

# ECMA 262 and Python read it alike: ASCII classes only ([0-9], never \d, which
# Python widens to every Unicode digit), no look-around, no named groups.
TIME_PATTERN = rf"^(?:{_EPOCH}|{_DATE}(?:[Tt ]{_TIME}{_OFFSET}?)?)$"
TIME_EXAMPLES = ("2026-11-29T14:03:00Z", "2026-11-29 14:03", "1795960980")
TIME_DESCRIPTION = ("RFC 3339 (2026-11-29T14:03:00Z), 'YYYY-MM-DD HH:MM' (UTC), a date "
                    "(2026-11-29) or epoch seconds (1795960980); a time inside a minute "
                    "means that minute")

_MATCHES = re.compile(TIME_PATTERN)
_EPOCH_ONLY = re.compile(rf"^{_EPOCH}$")


def parse_query_minute(text: str) -> int:
    """The minute ``text`` names, when it matches TIME_PATTERN.

    Raises ValueError with a sentence saying what to send instead.
    """
    if _MATCHES.search(text) is None:
        raise ValueError(f"{text!r} is not a time; use {TIME_DESCRIPTION}")
    cleaned = text.strip()
    if _EPOCH_ONLY.search(cleaned):
        return minute_of(float(cleaned))
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    moment = datetime.fromisoformat(cleaned)  # cannot fail on what the pattern matched
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return minute_of(moment.timestamp())
