"""Schemathesis hooks for the API's contract (loaded by the root's schemathesis.toml).

schemathesis' positive_data_acceptance takes a 400 to a schema-valid request as the
schema lying. The query API has rules across parameters that no OpenAPI schema can
state (``from`` after ``to``, a window too long, ``minutes`` together with ``from``),
so schemathesis.toml lets a 400 pass that check, and this check takes
back all but those: a schema-valid request answered 400 must give one of those
reasons, never ``malformed`` (a parameter the schema should have refused) and never
a body without a reason.
"""

from __future__ import annotations

import schemathesis

# The reasons openapi_contract.Reason names besides "malformed"; kept here as data so
# the hook reads no application module (schemathesis loads it in its own process).
# Two filters whose combination is no configured slice are a rule across parameters
# too; a filter whose slice is not configured (unconfigured_filter) is not: the
# document leaves such a filter out (and names only the configured custom dimensions in
# the `dimension` pattern). One custom dimension given twice (`dimension=os:1&dimension=
# os:2`) is one too: a schema can say items differ, not that their names do.
RULES_ACROSS_PARAMETERS = frozenset({"reversed_window", "window_too_long",
                                     "conflicting_parameters", "unconfigured_combination",
                                     "duplicate_filter"})


@schemathesis.check
def a_schema_valid_request_is_refused_only_by_a_rule_across_parameters(
        ctx: schemathesis.CheckContext, response: schemathesis.Response,
        case: schemathesis.Case) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    try:
        reason = response.json().get("reason")
    except ValueError:
        reason = None
    if reason not in RULES_ACROSS_PARAMETERS:
        raise AssertionError(
            f"a schema-valid request got a 400 with reason {reason!r}; only "
            f"{sorted(RULES_ACROSS_PARAMETERS)} may refuse one: {response.text[:300]}")
    return None
