"""The series names a Prometheus scrape of /metrics yields, from the exposition text's TYPE lines.

Families are read from TYPE lines, not samples, so a labelled metric that has no camera yet still
counts as exported. A histogram family `x` yields x_bucket, x_sum and x_count (never bare `x`);
a counter's TYPE line already carries its `_total` name.
"""

from __future__ import annotations

import re

_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count"),
             "gaugehistogram": ("_bucket", "_gsum", "_gcount")}


def families(text: str) -> dict[str, str]:
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M))


def series_names(text: str) -> set[str]:
    names = set()
    for name, kind in families(text).items():
        names.update(name + s for s in _SUFFIXES.get(kind, ("",)))
    return names


def samples(text: str, name: str) -> list[str]:
    """Sample lines of one series name."""
    return [line for line in text.splitlines() if re.match(rf"{re.escape(name)}(\{{| )", line)]
