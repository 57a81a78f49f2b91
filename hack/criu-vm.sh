#!/usr/bin/env bash
# criu-vm.sh: runs the checkpoint/restore test (TestOpsCheckpointRestore)
# in the cgroup v2 VM (../shared/tools/cgroup2-vm, Debian 12's own 6.1
# kernel), where Debian's CRIU 3.17 works; on a host kernel of 6.13 or
# later it cannot (README, "Stop, events, checkpoint and restore").
# CRIU needs netfilter and socket-diag modules the VM's initramfs lacks:
# they are taken from the same kernel's Debian package (apt-get download)
# and loaded from the shared work folder. Run as root: make test-criu-vm.
set -euo pipefail
cd "$(dirname "$0")/.."
vm=${CGROUP2_VM:-../shared/tools/cgroup2-vm}
[ -x "$vm" ] || vm=/work/shared/tools/cgroup2-vm
vm=$(readlink -f "$vm")
cache=${CGROUP2_VM_CACHE:-/var/cache/cgroup2-vm}
work=$(mktemp -d "$PWD/.criu-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$vm" -t 60 -- true >/dev/null # sets the VM up once
ver=$(cat "$cache/version")
(cd "$work" && apt-get download "linux-image-$ver" >/dev/null 2>&1) ||
	{ echo "criu-vm: apt-get download linux-image-$ver failed (apt-get update?)" >&2; exit 1; }
dpkg -x "$work"/linux-image-*.deb "$work/k"
depmod -b "$work/k" "$ver"
CGO_ENABLED=0 ${GO:-go} build -trimpath -o "$work/bin/" ./cmd/tether ./cmd/tether-shim
${GO:-go} test -c -race -o "$work/integ.test" ./integration
cat >"$work/run.sh" <<SH
for m in x_tables ip_tables ip6_tables iptable_filter ip6table_filter xt_mark nft_chain_nat af_packet_diag \
	nfnetlink nf_tables nft_compat inet_diag unix_diag tcp_diag udp_diag netlink_diag raw_diag tun veth; do
	modprobe -d "$work/k" \$m 2>/dev/null
done
criu check || exit 1
cd "$work" && TETHER_BIN_DIR="$work/bin" TETHER_REQUIRE_ROOT_TESTS=1 ./integ.test -test.run 'TestOpsCheckpointRestore' -test.v
SH
cd "$work" && "$vm" -t 1500 -- bash "$work/run.sh"
