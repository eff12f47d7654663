"""HTTP errors: one hierarchy, rendered as `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .domain import DomainError, Kind

if TYPE_CHECKING:
    from .client import UpstreamError

__all__ = [
    "ApiError",
    "BadGateway",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "GatewayTimeout",
    "NotFound",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "ValidationFailed",
    "api_error",
    "upstream_error",
]


class ApiError(Exception):
    """An error with an HTTP status, a stable machine `code` and a human `message`."""

    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        if code is not None:
            self.code = code
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(self.message)

    default_message = "internal server error"

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(ApiError):
    status, code, default_message = 400, "bad_request", "the request is malformed"


class Unauthorized(ApiError):
    status, code, default_message = 401, "unauthorized", "a valid bearer token is required"


class Forbidden(ApiError):
    status, code, default_message = 403, "forbidden", "your role does not allow this"


class NotFound(ApiError):
    status, code, default_message = 404, "not_found", "no such resource"


class Conflict(ApiError):
    status, code, default_message = 409, "conflict", "the resource changed; reload and retry"


class PayloadTooLarge(ApiError):
    status, code, default_message = 413, "payload_too_large", "the request body is over 1 MiB"


class ValidationFailed(ApiError):
    status, code, default_message = 422, "validation_error", "the request body is invalid"


class TooManyRequests(ApiError):
    status, code, default_message = 429, "rate_limited", "too many requests; slow down"


class BadGateway(ApiError):
    status, code, default_message = 502, "bad_gateway", "an upstream service failed"


class ServiceUnavailable(ApiError):
    status, code, default_message = 503, "unavailable", "the service is not ready"


class GatewayTimeout(ApiError):
    status, code, default_message = 504, "gateway_timeout", "an upstream service timed out"


_STATUS_OF_KIND = {
    Kind.NOT_FOUND: NotFound,
    Kind.CONFLICT: Conflict,
    Kind.INVALID: ValidationFailed,
    Kind.UNAVAILABLE: ServiceUnavailable,
}


def api_error(refusal: DomainError) -> ApiError:
    """The HTTP answer to a domain's refusal: its status by kind; the code, message and
    details as the domain gave them."""
    error_type = _STATUS_OF_KIND[refusal.kind]
    return error_type(refusal.message, code=refusal.code, details=refusal.details)


_UPSTREAM_MESSAGES = {
    "unavailable": "{}-service is unavailable; try again shortly",
    "timeout": "{}-service did not answer in time",
}


def upstream_error(error: UpstreamError) -> ApiError:
    """The HTTP answer when another service could not help: 503, 504 or 502. The client
    gets a fixed message; the cause (addresses, upstream bodies) is for the log."""
    error_type = {503: ServiceUnavailable, 504: GatewayTimeout}.get(error.status, BadGateway)
    message = _UPSTREAM_MESSAGES.get(error.kind, "{}-service failed").format(error.service)
    return error_type(message, code=error.code, details={"service": error.service})
