#!/usr/bin/env bash
# Installs the system packages the test suite talks to (a real RTSP server, with TLS for rtsps cameras,
# Redis, Prometheus, Chromium, ffmpeg, docker-compose for validating the compose file) and runs under
# (iproute2 and util-linux for its loopback-only network namespace, strace to watch connect()).
# Installs only what is missing.
set -euo pipefail
PKGS=(
  ffmpeg redis-server
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-tools glib-networking openssl
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
  chromium prometheus docker-compose
  iproute2 util-linux strace
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "missing system packages (${missing[*]}); run as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
