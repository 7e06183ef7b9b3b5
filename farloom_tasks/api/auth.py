"""Who is asking: the API's key check, as a FastAPI dependency.

Every ``/v1`` route (and ``/metrics``) depends on ``Authenticator``: it reads the
``Authorization: Bearer <key>`` header, never the query string (an access log or
a proxy would keep a key sent there), looks the key up by its id through the
read-only role and compares the secret's SHA-256 in constant time (core.api_keys).
It answers 401 with ``WWW-Authenticate: Bearer`` and a sentence saying how to get
a key; with FARLOOM_API_OPEN=1 it lets everything through as an admin would be.
Nothing here logs: a key or a header never reaches a log line.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from farloom_tasks.core import api_keys as keys
from farloom_tasks.core.api_keys import Caller
from farloom_tasks.errors import ConfigError
from farloom_tasks.stores import api_keys, db

HOW_TO_GET_A_KEY = ("an operator makes one with `farloom api-key create --advertiser "
                    "ADVERTISER_ID` (docs/operations.md, \"API keys\")")
NO_KEY = ("this API needs a key: send the header 'Authorization: Bearer <key>' (not a "
          f"query parameter); {HOW_TO_GET_A_KEY}")
NOT_A_KEY = ("the bearer token is not a Farloom API key (they read flk_<id>_<secret>); "
             f"{HOW_TO_GET_A_KEY}")
UNKNOWN_KEY = ("the API key is not known (mistyped, or made for another deployment); "
               f"{HOW_TO_GET_A_KEY}")
REVOKED_KEY = f"the API key was revoked; ask for a new one: {HOW_TO_GET_A_KEY}"
ADMIN_ONLY = ("{what} is for admin keys only (pipeline control data, not an advertiser's); "
              "an operator makes one with `farloom api-key create --admin`")

# Declared so the OpenAPI document names the scheme (securitySchemes: bearer) and /docs
# offers an "Authorize" button; the header itself is parsed by core.api_keys.
bearer_scheme = HTTPBearer(auto_error=False, description="an API key: flk_<id>_<secret>")


def _refused(detail: str, *, bad_token: bool) -> HTTPException:
    challenge = 'Bearer error="invalid_token"' if bad_token else "Bearer"
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


class Authenticator:
    """Judges a request's key; create_app keeps one in ``app.state.authenticator``."""

    def __init__(self, engine: db.Engine, *, open_mode: bool) -> None:
        self.engine = engine
        self.open_mode = open_mode

    def caller(self, request: Request) -> Caller:
        """Whom the request is served to, or a 401."""
        if self.open_mode:
            return keys.OPEN
        token = keys.bearer_token(request.headers.get("authorization"))
        if token is None:
            raise _refused(NO_KEY, bad_token=False)
        key = keys.parse(token)
        if key is None:
            raise _refused(NOT_A_KEY, bad_token=True)
        try:
            with api_keys.table_required(), self.engine.connect() as conn:
                stored = api_keys.lookup(conn, key.key_id)
        except ConfigError as exc:  # deployed before `farloom migrate`: say so, not a 500
            raise HTTPException(503, f"the API cannot check keys: {exc}") from None
        if stored is None or not keys.matches(key, stored.secret_sha256):
            raise _refused(UNKNOWN_KEY, bad_token=True)
        if stored.revoked:  # said only to the key's holder: the secret matched
            raise _refused(REVOKED_KEY, bad_token=True)
        return Caller(advertiser_id=stored.advertiser_id, key_id=stored.key_id)


def caller_of(request: Request, _declared: Annotated[
        HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]) -> Caller:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator.caller(request)


# A route's parameter `caller: Authenticated` makes the route need a key.
Authenticated = Annotated[Caller, Depends(caller_of)]


def require_admin(caller: Caller, what: str) -> None:
    """A 403 for an advertiser's key: it is a valid key, only not for this."""
    if not caller.is_admin:
        raise HTTPException(403, ADMIN_ONLY.format(what=what))
