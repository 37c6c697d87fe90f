"""The one error type routes turn into a JSON response: an HTTP status and what was wrong."""

from __future__ import annotations


class ServiceError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
