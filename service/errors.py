"""The one error type routes turn into a JSON response (an HTTP status and what was wrong), and the error
responses each kind of route declares in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from service.api.schemas import ErrorResponse, ValidationErrorResponse

CLIENT_GONE = 499  # nginx's "client closed request": the work was stopped, nobody is left to read the answer


class ServiceError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


Responses = dict[int | str, dict[str, Any]]

INVALID: Responses = {422: {"model": ValidationErrorResponse,
                            "description": "the request does not match the schema (a list of field errors), or is "
                                           "well-formed but refused (a sentence)"}}
UNKNOWN_STREAM: Responses = {404: _error("no such stream")}
BACKEND_DOWN: Responses = {503: _error("the shared backend (Redis) is unreachable")}
AUTH: Responses = {401: _error("missing API key (when OCRGAN_API_KEY is set)"), 403: _error("invalid API key")}

UNREADABLE_BODY: Responses = {400: _error("the body cannot be read as JSON text")}

# reads of one camera; writes add the API key's refusals
STREAM_READ: Responses = {**UNKNOWN_STREAM, **INVALID}
STREAM_WRITE: Responses = {**AUTH, **INVALID, **BACKEND_DOWN}
SCORE: Responses = {
    400: _error("malformed multipart body, or the client disconnected during the upload"),
    **AUTH,
    404: _error("?camera= names no camera"),
    408: _error("the upload stalled, trickled, or took too long"),
    409: _error("?camera= is still calibrating, not scored by any replica, or does not calibrate"),
    413: _error("over the size or frame limit, a decompression bomb, or it took too long to score"),
    415: _error("not a video: a still image, audio only, or nothing FFmpeg can read"),
    **INVALID,
    429: _error("too many uploads in progress; retry after the Retry-After header's seconds"),
    503: _error("the scorer is shutting down"),
}
