#!/bin/sh
# Demo camera: loops a clip into the RTSP server in real time (-re), forever (-stream_loop -1), at
# the clip's own frame rate, as a real camera would send it (the service samples it down).
# Re-encoded rather than copied so every loop restarts timestamps cleanly, with a keyframe every
# second so the service (or a viewer) joining mid-stream starts decoding within a second.
# Exits when the server is not (yet) reachable; the container's restart policy starts it again.
set -eu
CLIP="${DEMO_CLIP:-/demo/clip.mp4}"
URL="${DEMO_RTSP_URL:-rtsp://mediamtx:8554/demo}"
exec ffmpeg -hide_banner -loglevel "${DEMO_LOGLEVEL:-warning}" -nostdin \
  -re -stream_loop -1 -i "$CLIP" \
  -an -c:v libx264 -preset ultrafast -tune zerolatency -pix_fmt yuv420p \
  -force_key_frames "expr:gte(t,n_forced*1)" \
  -f rtsp -rtsp_transport tcp "$URL"
