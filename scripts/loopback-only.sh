#!/usr/bin/env bash
# Runs a command in a network namespace of its own in which only loopback is up: nothing it starts (a
# service given a camera URL, a browser, a fuzzer) can connect beyond this machine, and names resolve
# through /etc/hosts or a resolver on loopback only. Needs root, or unprivileged user namespaces.
set -euo pipefail
if [ $# -eq 0 ]; then
  echo "usage: $0 COMMAND [ARG...]" >&2
  exit 2
fi
if [ "$(id -u)" -eq 0 ]; then
  enter=(unshare --net --mount)
else
  enter=(unshare --user --map-root-user --net --mount)
fi
resolv=$(mktemp)
trap 'rm -f "$resolv"' EXIT
printf 'nameserver 127.0.0.1\n' >"$resolv"
# shellcheck disable=SC2016  # expanded inside the namespace
"${enter[@]}" sh -c 'ip link set lo up && mount --bind "$0" /etc/resolv.conf && exec "$@"' "$resolv" "$@" || {
  rc=$?
  if ! "${enter[@]}" true 2>/dev/null; then
    echo "$0: cannot create a network namespace (run as root, or enable unprivileged user namespaces)" >&2
  fi
  exit $rc
}
