"""Container health probe: exit 0 when the service answers 2xx on a path (default /healthz), else 1.

Standard library only, so the same file works in every image and in compose healthchecks without curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def probe(path: str, port: str, timeout: float = 4.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return 200 <= r.status < 300
    except (urllib.error.URLError, OSError):  # HTTPError (non-2xx) is a URLError too
        return False


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/healthz"
    return 0 if probe(path, os.environ.get("OCRGAN_PORT", "8000")) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
