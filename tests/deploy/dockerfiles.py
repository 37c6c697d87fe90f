"""What a Dockerfile takes from the build context, and which context paths .dockerignore keeps.

The matcher follows Docker's rules for the patterns this repository uses: patterns are matched
against slash-separated paths relative to the context, `**` spans directories, `*` and `?` stay
within one path element, a pattern also matches everything below a matched directory, and the
last matching pattern wins (`!` re-includes).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Copy:
    line: int
    sources: list[str]
    dest: str
    from_stage: str | None  # --from=... copies from another stage or image, not the context


def instructions(path: Path) -> list[tuple[int, str, str]]:
    """(line number, INSTRUCTION, arguments), with continuation lines joined and comments dropped."""
    out: list[tuple[int, str, str]] = []
    pending, start = "", 0
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = n
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((start, word.upper(), rest.strip()))
    return out


def copies(path: Path) -> list[Copy]:
    result = []
    for n, word, rest in instructions(path):
        if word not in ("COPY", "ADD"):
            continue
        args = shlex.split(rest)
        flags = [a for a in args if a.startswith("--")]
        paths = [a for a in args if not a.startswith("--")]
        stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
        result.append(Copy(n, paths[:-1], paths[-1], stage))
    return result


@dataclass
class Stage:
    name: str
    base: str  # an image (global ARGs substituted) or an earlier stage's name
    lines: list[tuple[int, str, str]]

    def args(self, word: str) -> list[str]:
        return [rest for _, w, rest in self.lines if w == word]

    def copies(self, path: Path) -> list[Copy]:
        mine = {n for n, _, _ in self.lines}
        return [c for c in copies(path) if c.line in mine]


def stages(path: Path) -> list[Stage]:
    """The build stages in order; an unnamed stage is named by its index, as Docker does."""
    global_args: dict[str, str] = {}
    result: list[Stage] = []
    for n, word, rest in instructions(path):
        if word == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args.get(m.group(1) or m.group(2), m.group(0)),
                           parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else str(len(result))
            result.append(Stage(name, image, []))
        elif not result and word == "ARG":
            key, _, default = rest.partition("=")
            global_args[key] = default
        elif result:
            result[-1].lines.append((n, word, rest))
    return result


def _regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            j = pattern.index("]", i)
            out += pattern[i : j + 1]
            i = j + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


class DockerIgnore:
    def __init__(self, path: Path) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = line[1:].strip() if negate else line
            self.rules.append((negate, _regex(pattern.strip("/"))))

    def excluded(self, rel: str) -> bool:
        """Whether a file or directory (path relative to the context) is left out of the context."""
        parts = rel.strip("/").split("/")
        prefixes = ["/".join(parts[: k + 1]) for k in range(len(parts))]
        excluded = False
        for negate, rx in self.rules:
            if any(rx.match(p) for p in prefixes):
                excluded = not negate
        return excluded
