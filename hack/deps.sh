#!/usr/bin/env bash
# Installs what Tether's build, demo and tests need on a Debian machine:
# runc, crun, busybox-static, criu (checkpoint/restore), containerd, and podman (with its conmon
# and CNI plugins) plus script(1) for the tether-conmon tests, uidmap for the rootless tests. Run as root. Also makes crun usable on a
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
# containerd (with ctr) for the containerd front end's tests; script
# (bsdutils) gives ctr -t a terminal in them.
command -v containerd >/dev/null 2>&1 || need+=(containerd)
command -v podman >/dev/null 2>&1 || need+=(podman)
# newuidmap/newgidmap: rootless podman maps the subuid and subgid ranges with them
command -v newuidmap >/dev/null 2>&1 || need+=(uidmap)
command -v conmon >/dev/null 2>&1 || need+=(conmon)
[ -d /usr/lib/cni ] || need+=(containernetworking-plugins)
command -v script >/dev/null 2>&1 || need+=(bsdutils)
# newuidmap and newgidmap (uidmap) let a rootless container map its user's
# /etc/subuid and /etc/subgid ranges (the rootless tests, README "Rootless").
{ command -v newuidmap && command -v newgidmap; } >/dev/null 2>&1 || need+=(uidmap)

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

# crictl for the CRI tests, built from the Go module proxy (cri-tools is
# not packaged in Debian 12). Its build is part of a fresh machine's
# `make test`: without optimisation, inlining and DWARF it takes 173 s of
# CPU instead of 211 s (fresh build cache, this host); the tests make a few
# dozen calls, for which an unoptimised crictl is as good.
if ! command -v crictl >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  echo "deps: building crictl v1.37.0 into /usr/local/bin (a few minutes)"
  GOBIN=/usr/local/bin CGO_ENABLED=0 "${GO:-go}" install -trimpath -ldflags='-s -w' -gcflags='all=-N -l' \
    sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0
fi
