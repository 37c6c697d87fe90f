"""Credentials never reach the logs: every handler gets a filter that passes each record, traceback
included, through redact() (uvicorn logs WebSocket paths with their query, where the API key may be)."""

from __future__ import annotations

import logging

from service.cameras.urls import redact

LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")  # "" is the root logger


class RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def redact_logs() -> None:
    """Add the filter to every handler of the root and uvicorn loggers (once each)."""
    for name in LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactFilter) for f in handler.filters):
                handler.addFilter(RedactFilter())
