"""A loopback RTSP server for the tests and benchmarks, run with the system python (python3-gi + gst-rtsp-server).

Serves a moving test pattern, H.264 over RTP, on every mount given; prints "ready" once listening. With --tls, over
TLS only (rtsps), with the certificate and key of the PEM files given.
Usage: /usr/bin/python3 rtsp_server.py PORT [--mounts cam0,cam1] [--size 96x64] [--fps 10] [--tls CERT,KEY]
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtspServer  # noqa: E402


def launch_line(width: int, height: int, fps: int, pattern: str) -> str:
    return (
        f"( videotestsrc is-live=true pattern={pattern} ! video/x-raw,width={width},height={height},"
        f"framerate={fps}/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} threads=1 "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("--mounts", default="cam")
    p.add_argument("--size", default="96x64")
    p.add_argument("--fps", type=int, default=10)
    p.add_argument("--pattern", default="ball")
    p.add_argument("--tls", default="", help="CERT,KEY: PEM files of the server's certificate and key")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    if args.tls:  # TLS on every connection; everyone may watch, as without it
        cert, key = args.tls.split(",")
        auth = GstRtspServer.RTSPAuth()
        auth.set_tls_certificate(Gio.TlsCertificate.new_from_files(cert, key))
        token = GstRtspServer.RTSPToken.new()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "anyone")
        auth.set_default_token(token)
        server.set_auth(auth)
    mounts = server.get_mount_points()
    for name in args.mounts.split(","):
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch_line(width, height, args.fps, args.pattern))
        factory.set_shared(True)
        if args.tls:
            role = f"anyone, {GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS}=(boolean)true, "
            role += f"{GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT}=(boolean)true"
            factory.add_role_from_structure(Gst.Structure.from_string(role)[0])
        mounts.add_factory(f"/{name}", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print("ready", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
