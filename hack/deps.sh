#!/usr/bin/env bash
# Installs what Tether's build, demo and tests need on a Debian machine:
# runc, crun, busybox-static and criu (checkpoint/restore). Run as root. Also makes crun usable on a
# cgroup v1 "hybrid" host (see README, "Hosts with hybrid cgroups").
set -euo pipefail

need=()
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v crun >/dev/null 2>&1 || need+=(crun)
command -v criu >/dev/null 2>&1 || [ -x /usr/sbin/criu ] || need+=(criu)
busybox_ok=false
for b in /bin/busybox /usr/bin/busybox; do
  if [ -x "$b" ] && ! readelf -l "$b" 2>/dev/null | grep -q 'INTERP'; then busybox_ok=true; fi
done
$busybox_ok || need+=(busybox-static)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing ${need[*]}: run as root (or apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

# crun refuses a hybrid cgroup layout while the cgroup v2 hierarchy holds
# controllers ("cgroups in hybrid mode not supported"). Give each such
# controller its own v1 mount, as a normal hybrid host has.
uni=/sys/fs/cgroup/unified
if [ "$(id -u)" -eq 0 ] && [ -f "$uni/cgroup.controllers" ] && [ "$(stat -f -c %T /sys/fs/cgroup)" = tmpfs ]; then
  for c in $(cat "$uni/cgroup.controllers"); do
    mkdir -p "/sys/fs/cgroup/$c"
    if ! mountpoint -q "/sys/fs/cgroup/$c"; then
      mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" && echo "deps: moved cgroup controller $c to a v1 mount for crun"
    fi
  done
fi
