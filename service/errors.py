"""The one error type routes turn into a JSON response: an HTTP status and what was wrong."""

from __future__ import annotations

CLIENT_GONE = 499  # nginx's "client closed request": the work was stopped, nobody is left to read the answer


class ServiceError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
