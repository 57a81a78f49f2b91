#!/usr/bin/env bash
# Installs what `make bench` needs beyond hack/deps.sh: conmon, the
# baseline of the memory row (CRI-O's and podman's container monitor,
# Debian package "conmon"). Without it the bench still runs and prints
# "n/a" for that baseline, saying why.
set -uo pipefail

command -v conmon >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "bench-deps: conmon is missing and we are not root: the memory row will have no baseline" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "bench-deps: no apt-get: install conmon by hand for the memory row's baseline" >&2
  exit 0
fi
echo "bench-deps: installing conmon (memory baseline)"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq conmon >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1
  apt-get install -y -qq conmon >/dev/null 2>&1 ||
    echo "bench-deps: apt-get install conmon failed: the memory row will have no baseline" >&2
fi
exit 0
