"""Bearer-token check for every endpoint but ``/health``."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False, description="the server's token, sent as `Authorization: Bearer <token>`")


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """FastAPI dependency: 401 unless the request carries the server's token.

    Compared in constant time, so the answer time does not leak how much of a guess was right.
    """
    expected: str | None = request.app.state.settings.token
    if expected is None:
        return
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong token", headers={"WWW-Authenticate": "Bearer"})
