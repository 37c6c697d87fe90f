"""Metric names that PromQL expressions (alert rules, Grafana panels and variables) read.

Not a PromQL parser: it blanks out what cannot hold a metric name (strings, label matchers,
range selectors, grouping clauses, Grafana variables) and keeps the identifiers that are not
called as functions and are not keywords. test_promql.py pins its behaviour on known expressions.
"""

from __future__ import annotations

import re

KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
            "group_right", "inf", "nan", "start", "end"}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_GRAFANA_VARS = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENT = re.compile(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>[^,]+),\s*\w+\s*\)\s*$")


def metric_names(expr: str) -> set[str]:
    s = _STRINGS.sub('""', expr)
    s = _MATCHERS.sub(" ", s)
    s = _RANGES.sub(" ", s)
    s = _GROUPING.sub(" ", s)
    s = _GRAFANA_VARS.sub(" ", s)
    names = set()
    for m in _IDENT.finditer(s):
        word = m.group(0)
        if word.lower() in KEYWORDS or s[m.end():].lstrip().startswith("("):
            continue
        names.add(word)
    return names


def variable_query(query: str) -> str:
    """The PromQL inside a Grafana variable query: `label_values(selector, label)` -> selector."""
    m = _LABEL_VALUES.match(query)
    return m.group("selector") if m else query
