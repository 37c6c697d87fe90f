"""Register a camera with the ocrgan service once it is ready; used by the compose stack's demo
camera and usable by hand (`python deploy/register_stream.py --id gate --url rtsp://...`).

Waits for /readyz, then POSTs /streams. A camera that is already registered (409) counts as done,
so running it again, or after a restart with the registry kept in Redis, is harmless.
Standard library only: it runs in a bare python image.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request


def _request(req: urllib.request.Request, timeout: float) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def wait_ready(base: str, deadline: float) -> bool:
    while True:
        try:
            if _request(urllib.request.Request(f"{base}/readyz"), 5.0)[0] == 200:
                return True
        except (urllib.error.URLError, OSError):
            pass  # not listening yet
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)


def register(base: str, spec: dict, api_key: str | None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["X-API-Key"] = api_key
    req = urllib.request.Request(f"{base}/streams", data=json.dumps(spec).encode(), headers=headers, method="POST")
    return _request(req, 30.0)


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--service", default=env("OCRGAN_SERVICE_URL", "http://ocrgan:8000"), help="service base URL")
    p.add_argument("--id", default=env("STREAM_ID"), help="camera id (letters, digits, _ . -)")
    p.add_argument("--url", default=env("STREAM_URL"), help="camera URL, e.g. rtsp://host:8554/path")
    p.add_argument("--fps", type=float, default=float(env("STREAM_FPS")) if env("STREAM_FPS") else None)
    p.add_argument("--calibrate", action="store_true", default=env("STREAM_CALIBRATE", "").lower() == "true",
                   help="learn the camera's own normal score level over its first frames")
    p.add_argument("--wait", type=float, default=float(env("REGISTER_WAIT_SECONDS", "300")),
                   help="seconds to wait for the service to become ready")
    args = p.parse_args(argv)
    if not args.id or not args.url:
        p.error("--id and --url (or STREAM_ID and STREAM_URL) are required")
    base = args.service.rstrip("/")
    if not wait_ready(base, time.monotonic() + args.wait):
        print(f"register: {base} was not ready after {args.wait:.0f}s", file=sys.stderr)
        return 1
    spec = {"id": args.id, "url": args.url, **({"fps": args.fps} if args.fps else {}),
            **({"calibrate": True} if args.calibrate else {})}
    status, body = register(base, spec, os.environ.get("OCRGAN_API_KEY") or None)
    if status == 201:
        print(f"register: camera {args.id!r} registered")
        return 0
    if status == 409:
        print(f"register: camera {args.id!r} was already registered")
        return 0
    print(f"register: POST /streams answered {status}: {body}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
