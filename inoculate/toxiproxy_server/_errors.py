"""The API's errors: predeclared, each carrying its HTTP status (as Toxiproxy's ``api.go``).

Hierarchy::

    ApiError                      {"error": message, "status": code} with that HTTP status
    ├── ERR_BAD_REQUEST_BODY      400 bad request body[: detail]
    ├── ERR_MISSING_FIELD         400 missing required field: name
    ├── ERR_INVALID_STREAM        400 stream was invalid, can be either upstream or downstream
    ├── ERR_INVALID_TOXIC_TYPE    400 invalid toxic type
    ├── ERR_PROXY_NOT_FOUND       404 proxy not found
    ├── ERR_TOXIC_NOT_FOUND       404 toxic not found
    ├── ERR_PROXY_ALREADY_EXISTS  409 proxy already exists
    └── ERR_TOXIC_ALREADY_EXISTS  409 toxic already exists

A handler raises one (``raise ERR_PROXY_NOT_FOUND``, or ``ERR_BAD_REQUEST_BODY.with_detail(x)``)
and the API turns it into the response; messages and statuses are Toxiproxy's, so clients
written for Toxiproxy (toxiproxy-python raises ``NotFound`` on 404, ``ProxyExists`` on 409,
``InvalidToxic`` on 400) behave the same against this server.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ERR_BAD_REQUEST_BODY",
    "ERR_INVALID_STREAM",
    "ERR_INVALID_TOXIC_TYPE",
    "ERR_MISSING_FIELD",
    "ERR_PROXY_ALREADY_EXISTS",
    "ERR_PROXY_NOT_FOUND",
    "ERR_TOXIC_ALREADY_EXISTS",
    "ERR_TOXIC_NOT_FOUND",
    "ApiError",
]


class ApiError(Exception):
    """An error the API answers with: a message and the HTTP status it carries."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def with_detail(self, detail: object) -> ApiError:
        """The same error with a detail appended (Toxiproxy's ``joinError``)."""
        return ApiError(f"{self.message}: {detail}", self.status)

    def to_json(self) -> dict[str, Any]:
        """The response body."""
        return {"error": self.message, "status": self.status}


ERR_BAD_REQUEST_BODY = ApiError("bad request body", 400)
ERR_MISSING_FIELD = ApiError("missing required field", 400)
ERR_PROXY_NOT_FOUND = ApiError("proxy not found", 404)
ERR_PROXY_ALREADY_EXISTS = ApiError("proxy already exists", 409)
ERR_INVALID_STREAM = ApiError("stream was invalid, can be either upstream or downstream", 400)
ERR_INVALID_TOXIC_TYPE = ApiError("invalid toxic type", 400)
ERR_TOXIC_ALREADY_EXISTS = ApiError("toxic already exists", 409)
ERR_TOXIC_NOT_FOUND = ApiError("toxic not found", 404)
