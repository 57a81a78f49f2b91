#!/usr/bin/env bash
# test-cgroup2: run Tether's kernel-touching test suites on a cgroup-v2-only
# kernel, in a throwaway VM on this machine (README, "cgroup v1 and v2").
#
#   hack/test-cgroup2.sh [-run REGEX] [-v] [PACKAGE...]      (make test-cgroup2)
#   hack/test-cgroup2.sh -ci                                  (make test-cgroup2-ci, .ci/run)
#
# 1. Installs what it needs (qemu-system-x86, busybox-static, kmod) and, once,
#    fetches Debian's stock kernel and builds a small initramfs, cached in
#    $TETHER_VM_CACHE (default /var/cache/tether-vm).
# 2. Builds each suite's test binary on the host (go test -c, without -race:
#    the race detector runs on the host, in make test) into bin/cgroup2/.
# 3. Boots the kernel under qemu with cgroup_no_v1=all and only the unified
#    hierarchy mounted, no systemd, private mount propagation on /, fresh
#    tmpfs on /tmp and /run, and the host's userland (go, runc, crun,
#    containerd, podman) as a read-only root under a throwaway overlay; the
#    repository is shared read-write at its host path.
# 4. Runs every binary there, several at once, and prints go test's summary:
#    an "ok" line per passing package, the whole output and a FAIL line per
#    failing one. Exits non-zero if any failed. Full logs (go test -v):
#    bin/cgroup2/logs/. When the VM runs out of time, it says how far each
#    unfinished run got: tests passed and failed, the test running.
#
# Which packages run: every package with tests (go list ./...), so a new
# suite (the containerd and podman front ends) runs here the day it lands,
# minus SKIP below. Naming PACKAGEs runs only those.
#
# Settings (environment): TETHER_BIN_DIR (default bin/, built by make build),
# TETHER_VM_CPUS (default: all host cores), TETHER_VM_MEM (MiB, default 4096),
# TETHER_VM_JOBS (test binaries at once, default: the VM's CPUs),
# TETHER_VM_TIMEOUT (seconds for the whole VM, default 1800: CI's budget),
# TETHER_VM_TEST_TIMEOUT (go -test.timeout per binary, default 25m),
# TETHER_VM_CACHE, GO.
#
# The CPU is emulated (TCG, about 6x slower than the host): nested KVM hangs
# at boot on the machines this was written on. TETHER_VM_ACCEL=kvm tries it.
set -euo pipefail

# Packages that cannot run in the VM, each with the reason; the run prints
# them. None today: every package with tests runs there, the pure ones
# too (they take seconds), so nothing is left out by a guess about what
# touches the kernel.
SKIP=()

# Counts scaled down for the emulated CPU (set in run.sh below, printed at
# the start): TETHER_EXEC_MANY=120 execs in a row (TestExecManyInARow), not
# 500 runc and 150 crun ones: still past the exec retention of 100.

# Extra go test flags for a suite in the VM, keyed by package folder, with
# the reason: only tests timed for a real CPU, which the host runs.
declare -A FLAGS=(
	# 200 shells started and reaped within 30 s: a load test, ~6x slower here
	[reaper]='-test.skip=^TestSlowSubscriber$'
)

# The CI pass (-ci): what .ci/run runs after make test, so that a change
# breaking a cgroup v2 path fails CI within the VM's budget. It keeps the
# suites and tests whose code differs between cgroup v1 and v2 or that use
# a kernel feature the host's own pass cannot vary: cgroup reading and
# limits, OOM records (memory.events), stats, update, top, the freezer
# (pause), the v2 device filter (eBPF, many containers at once), cgroup
# removal at delete, kill --all and adoption (the cgroup of an orphaned
# init), the upgraded shim's cgroup, checkpoint (CRIU), and the containerd
# and podman front ends' cgroup paths (metrics, OOM, update), and a rootless
# user's delegated cgroup v2 subtree (v2 only). Left to the
# full pass (make test-cgroup2): the CLI's parsing and output, logs and
# terminals, exec's error paths, recovery of records and crash points,
# version skew and the hardening of the socket, which take no cgroup path
# (README, "cgroup v1 and v2"). Key: package folder; value: -test.run
# regex ('' for every test of the package).
declare -A CI=(
	[cgroups]=''
	[oci]=''
	[reaper]=''
	[internal/cnproc]=''
	[shim/coretest]=''
	[conmon]=''
	[integration]='^(TestCgroupOwnPerContainer|TestCgroupLimits|TestCgroupOOMKill|TestOOMKillRecorded|TestOOMKillWhileManagerDown|TestMetricsAndUpdate|TestStatsUpdateTopCLI|TestTop|TestOpsStop|TestOpsEventsOOM|TestOpsEventsOOMChild|TestOpsCheckpointRestore|TestExecPauseResume|TestCoreDeleteLeavesNothing|TestHardeningLoad|TestRecoveryShimKilled|TestRecoveryExitWhileNoManager|TestUpgradeUntouched|TestUpgradeAdopted|TestPodman_Isolated|TestRootlessCgroupDelegation)$'
	[integration/ctrd]='^(TestContainerdUpdate|TestContainerdOOM|TestContainerdCheckpoint|TestContainerdDetachedTask|TestContainerdShimKilled|TestCRIPod)$'
)

die() { echo "test-cgroup2: $*" >&2; exit 2; }

cd "$(dirname "$0")/.."
repo=$(pwd -P)
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
bin=$(cd "${TETHER_BIN_DIR:-bin}" 2>/dev/null && pwd -P) || die "no ${TETHER_BIN_DIR:-bin}/ folder: run make build first (make test-cgroup2 does)"
[ -x "$bin/tether" ] && [ -x "$bin/tether-shim" ] || die "$bin lacks tether or tether-shim: run make build first (make test-cgroup2 does)"
case $bin/ in "$repo"/*) ;; *) die "TETHER_BIN_DIR=$bin is outside the repository, which is all the VM shares: use a folder under $repo" ;; esac
cpus=${TETHER_VM_CPUS:-$(nproc)}
mem=${TETHER_VM_MEM:-4096}
jobs=${TETHER_VM_JOBS:-$cpus}
vm_timeout=${TETHER_VM_TIMEOUT:-1800}
test_timeout=${TETHER_VM_TEST_TIMEOUT:-25m}
cache=${TETHER_VM_CACHE:-/var/cache/tether-vm}
accel=${TETHER_VM_ACCEL:-tcg}

run_re= verbose= ci=
pkgs=()
while [ $# -gt 0 ]; do
	case $1 in
	-run) [ $# -ge 2 ] || die "-run needs a regular expression"; run_re=$2; shift 2 ;;
	-v) verbose=1; shift ;;
	-ci) ci=1; shift ;;
	-h | --help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) die "unknown flag $1; usage: hack/test-cgroup2.sh [-run REGEX] [-v] [PACKAGE...]" ;;
	*) pkgs+=("$1"); shift ;;
	esac
done
[ "$(id -u)" = 0 ] || die "run as root: it installs packages, and the suites start containers as root"

# --- 1. qemu, busybox, kmod and the kernel ------------------------------------

install_host_tools() {
	local need=()
	command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
	busybox --list 2>/dev/null | grep -qx cpio || need+=(busybox-static)
	command -v depmod >/dev/null || [ -x /usr/sbin/depmod ] || [ -x /sbin/depmod ] || need+=(kmod)
	[ ${#need[@]} -eq 0 ] && return
	echo "test-cgroup2: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq "${need[@]}" >/dev/null
}

# setup_kernel leaves $cache/current -> a folder with vmlinuz, initrd.gz and
# lib/modules/VERSION (with modules.dep), fetched from Debian's archive.
setup_kernel() {
	[ -f "$cache/current/vmlinuz" ] && [ -f "$cache/current/initrd.gz" ] && return
	local pkg ver tmp dir mods
	echo "test-cgroup2: fetching Debian's kernel and building the initramfs (once, into $cache)" >&2
	apt-get update -qq >/dev/null 2>&1 || true
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
	[ -n "$pkg" ] || die "cannot resolve Debian's linux-image-amd64: check apt sources (apt-get update)"
	ver=${pkg#linux-image-}
	mkdir -p "$cache"
	rm -rf "$cache"/.new.*
	tmp=$(mktemp -d "$cache/.new.XXXXXX")
	chmod 755 "$tmp" # apt-get download runs as _apt
	(cd "$tmp" && apt-get download "$pkg" >/dev/null) || die "apt-get download $pkg failed"
	dpkg-deb -x "$tmp"/*.deb "$tmp/deb"
	dir=$tmp/$ver
	mkdir -p "$dir/lib"
	cp "$tmp/deb/boot/vmlinuz-$ver" "$dir/vmlinuz"
	mv "$tmp/deb/lib/modules" "$dir/lib/modules"
	PATH=$PATH:/usr/sbin:/sbin depmod -b "$dir" "$ver"
	# The initramfs loads what mounting the host's root needs (virtio, 9p,
	# overlay), in the order modprobe resolves from the modules' own
	# dependencies, then hands over to the run script on the shared root.
	mkdir -p "$tmp/i/bin" "$tmp/i/mods" "$tmp/i/proc" "$tmp/i/sys" "$tmp/i/dev" "$tmp/i/lower" "$tmp/i/rw" "$tmp/i/newroot"
	cp "$(command -v busybox)" "$tmp/i/bin/busybox"
	mods=$(PATH=$PATH:/usr/sbin:/sbin modprobe -d "$dir" -S "$ver" --show-depends -a virtio_pci 9pnet_virtio 9p overlay |
		awk '$1 == "insmod" {print $2}' | awk '!seen[$0]++')
	local m n=0 order=
	for m in $mods; do
		n=$((n + 1))
		case $m in
		*.xz) xz -dc "$m" >"$tmp/i/mods/$n.ko" ;;
		*.zst) zstd -qdc "$m" >"$tmp/i/mods/$n.ko" ;;
		*) cp "$m" "$tmp/i/mods/$n.ko" ;;
		esac
		order+=" $n"
	done
	cat >"$tmp/i/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in$order; do insmod /mods/\$m.ko || echo "test-cgroup2: insmod module \$m failed"; done
opts=trans=virtio,version=9p2000.L,msize=524288
mount -t 9p -o ro,cache=loose,\$opts hostroot /lower || { echo "test-cgroup2: mounting the host root over 9p failed"; poweroff -f; }
mount -t tmpfs -o size=75% tmpfs /rw && mkdir -p /rw/up /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/up,workdir=/rw/work overlay /newroot || { echo "test-cgroup2: overlay root failed"; poweroff -f; }
work=\$(cat /proc/cmdline | tr ' ' '\n' | sed -n 's/^tether.work=//p')
mkdir -p "/newroot\$work" && mount -t 9p -o \$opts work "/newroot\$work" || { echo "test-cgroup2: mounting the repository over 9p failed"; poweroff -f; }
exec switch_root /newroot /bin/bash "\$work/\$(cat /proc/cmdline | tr ' ' '\n' | sed -n 's/^tether.stage2=//p')"
EOF
	chmod +x "$tmp/i/init"
	(cd "$tmp/i" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$dir/initrd.gz")
	rm -rf "${cache:?}/$ver"
	mv "$dir" "$cache/$ver"
	ln -sfn "$ver" "$cache/current"
	rm -rf "$tmp"
}

install_host_tools
setup_kernel

# --- 2. the suites' test binaries, built on the host ---------------------------

out=$repo/bin/cgroup2
rm -rf "$out"
mkdir -p "$out/logs"
if [ -n "$ci" ]; then
	[ ${#pkgs[@]} -eq 0 ] && [ -z "$run_re" ] || die "-ci runs its own selection: give no -run or PACKAGE with it"
	for rel in "${!CI[@]}"; do pkgs+=("./$rel"); done
	echo "test-cgroup2: the CI selection (CI in hack/test-cgroup2.sh); make test-cgroup2 runs everything" >&2
fi
if [ ${#pkgs[@]} -eq 0 ]; then
	mapfile -t all < <("$GO" list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./... | sed '/^$/d')
	mod=$("$GO" list -m)
	for p in "${all[@]}"; do
		rel=${p#"$mod"}; rel=${rel#/}
		skip=
		for s in "${SKIP[@]}"; do [ "$rel" = "$s" ] && skip=1; done
		[ -n "$skip" ] || pkgs+=("./$rel")
	done
	for s in "${SKIP[@]}"; do
		printf '%s\n' "${all[@]}" | grep -qx "$mod/$s" || echo "test-cgroup2: SKIP names $s, which has no tests any more: drop it from hack/test-cgroup2.sh" >&2
		echo "test-cgroup2: not run in the VM: package $s (SKIP in hack/test-cgroup2.sh)" >&2
	done
fi
[ ${#pkgs[@]} -gt 0 ] || die "no packages to run"
echo "test-cgroup2: TestExecManyInARow runs 120 execs per runtime in the VM (TETHER_EXEC_MANY), not 500 and 150" >&2
for rel in "${!FLAGS[@]}"; do
	echo "test-cgroup2: $rel runs in the VM with ${FLAGS[$rel]} (FLAGS in hack/test-cgroup2.sh)" >&2
done

: >"$out/suites"
for p in "${pkgs[@]}"; do
	dir=$(cd "$p" 2>/dev/null && pwd -P) || die "no package folder $p"
	imp=$(cd "$dir" && "$GO" list .)
	name=$(echo "${dir#"$repo"}" | sed 's|^/||; s|/|_|g'); name=${name:-root}
	"$GO" test -c -o "$out/$name.test" "$p" || die "building the tests of $p failed"
	# a package whose test files all carry build constraints builds nothing
	rel=${dir#"$repo"}; rel=${rel#/}
	[ -x "$out/$name.test" ] || continue
	# A suite of many sequential tests (the integration tests) is split
	# into one shard per job, round robin over its tests: each shard is a
	# separate run of the binary, so the VM's CPUs share the longest suite.
	mapfile -t tests < <(cd "$dir" && "$out/$name.test" -test.list '.*' 2>/dev/null | grep '^Test')
	if [ -n "$ci" ] && [ -n "${CI[$rel]:-}" ]; then
		mapfile -t tests < <(printf '%s\n' "${tests[@]}" | grep -E "${CI[$rel]}")
		for want in $(echo "${CI[$rel]}" | sed 's/^\^(//; s/)\$$//; s/|/ /g'); do
			printf '%s\n' "${tests[@]}" | grep -qx "$want" || die "the CI selection names $want, which $rel does not have: fix CI in hack/test-cgroup2.sh"
		done
	fi
	if [ -z "$run_re" ] && [ "$jobs" -gt 1 ] && [ ${#tests[@]} -ge 4 ]; then
		for ((i = 0; i < jobs; i++)); do
			re=
			for ((j = i; j < ${#tests[@]}; j += jobs)); do re+="${re:+|}${tests[j]}"; done
			printf '%s %s %s %s %s %s\n' "$name" "$dir" "$imp" "$((i + 1))/$jobs" "^($re)\$" "${FLAGS[$rel]:-}" >>"$out/suites"
		done
	else
		printf '%s %s %s - %s %s\n' "$name" "$dir" "$imp" "${run_re:--}" "${FLAGS[$rel]:-}" >>"$out/suites"
	fi
done

# --- 3. the script that runs inside the VM -------------------------------------

cat >"$out/stage2.sh" <<EOF
# PID 1 of the VM: mount the system folders, run the suites, power off.
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
ln -sfn /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin; ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr
mkdir -p /dev/pts /dev/shm /dev/mqueue; mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts; ln -sf pts/ptmx /dev/ptmx
mount -t tmpfs tmpfs /dev/shm; mount -t tmpfs tmpfs /run; mount -t tmpfs tmpfs /tmp; mount -t mqueue mqueue /dev/mqueue
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "\$(sed 's/[^ ]*/+&/g' /sys/fs/cgroup/cgroup.controllers)" >/sys/fs/cgroup/cgroup.subtree_control
mkdir -p /lib/modules && mount --bind $cache/current/lib/modules /lib/modules
# what CRIU needs for a dump (netfilter, socket diag, veth and tun), as in
# hack/criu-vm.sh: the checkpoint tests run here too
for m in x_tables ip_tables ip6_tables iptable_filter ip6table_filter xt_mark nft_chain_nat af_packet_diag \\
	nfnetlink nf_tables nft_compat inet_diag unix_diag tcp_diag udp_diag netlink_diag raw_diag tun veth bridge br_netfilter; do
	modprobe \$m 2>/dev/null
done
ip link set lo up 2>/dev/null
hostname tether-cgroup2
cd $out
bash $out/run.sh >/dev/console 2>&1 </dev/null
echo \$? >$out/rc
sync; echo o >/proc/sysrq-trigger; sleep 60
EOF

cat >"$out/run.sh" <<'EOF'
# Runs each suite's binary with go test's summary lines; exits 1 if one failed.
out=$(pwd); fails=0
echo "test-cgroup2: kernel $(uname -r), $(nproc) CPUs, cgroup $(stat -f -c %T /sys/fs/cgroup), controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
[ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ] && ! grep -q ' cgroup ' /proc/self/mounts || { echo "test-cgroup2: this VM is not cgroup-v2-only"; exit 1; }
one() {
	local name=$1 dir=$2 imp=$3 shard=$4 re=$5 flags=$6 t0 t1 rc log
	log=$out/logs/$name${shard/\//-of-}.log; log=${log/-.log/.log}
	[ "$re" = - ] && re=
	t0=$(date +%s.%N)
	(cd "$dir" && TETHER_BIN_DIR=$BIN TETHER_REQUIRE_ROOT_TESTS=1 TETHER_EXEC_MANY=120 "$out/$name.test" -test.timeout "$TIMEOUT" \
		${re:+-test.run "$re"} -test.v $flags >"$log" 2>&1)
	rc=$?
	touch "${log%.log}.done"
	t1=$(date +%s.%N)
	local secs; secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3fs", b-a}')
	[ "$shard" = - ] && shard= || shard=" (shard $shard)"
	if [ $rc = 0 ]; then
		[ -n "$VERBOSE" ] && cat "$log"
		printf 'ok  \t%s\t%s%s\n' "$imp" "$secs" "$shard"
	else
		cat "$log"
		printf 'FAIL\t%s\t%s%s\n' "$imp" "$secs" "$shard"
		touch "${log%.log}.failed"
	fi
}
# the longest suites first, so they overlap the short ones
while read -r name dir imp shard re flags; do
	while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
	one "$name" "$dir" "$imp" "$shard" "$re" "$flags" &
done < <(while read -r line; do echo "$(stat -c %s "$out/${line%% *}.test") $line"; done <"$out/suites" | sort -s -k1,1rn | cut -d' ' -f2-)
wait
ls "$out"/logs/*.failed >/dev/null 2>&1 && { echo FAIL; exit 1; }
echo PASS
EOF
{
	printf 'BIN=%q TIMEOUT=%q RUN=%q VERBOSE=%q JOBS=%q\n' "$bin" "$test_timeout" "$run_re" "$verbose" "$jobs"
	cat "$out/run.sh"
} >"$out/run.sh.new" && mv "$out/run.sh.new" "$out/run.sh"

# --- 4. boot ---------------------------------------------------------------------

case $accel in
kvm) acc=(-accel kvm -cpu host) ;;
*) acc=(-accel tcg,thread=multi -cpu max) ;;
esac
echo "test-cgroup2: $(cut -d' ' -f1 "$out/suites" | sort -u | wc -l) suites ($(wc -l <"$out/suites") runs) in a VM with $cpus CPUs and $mem MiB ($accel), kernel $(readlink "$cache/current")" >&2
start=$(date +%s)
set +e
timeout "$vm_timeout" qemu-system-x86_64 "${acc[@]}" -smp "$cpus" -m "$mem" -nographic -no-reboot -nic none \
	-kernel "$cache/current/vmlinuz" -initrd "$cache/current/initrd.gz" \
	-append "console=ttyS0 quiet loglevel=1 panic=-1 cgroup_no_v1=all tether.work=$repo tether.stage2=${out#"$repo"/}/stage2.sh" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-virtfs "local,path=$repo,mount_tag=work,security_model=none,multidevs=remap" \
	</dev/null 2>&1 | sed -u -e 's/\r//g' -e 's/\x1bc//g' -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' \
	-e '/SeaBIOS\|Booting from ROM\|iPXE\|Press Ctrl-B\|sysrq: Power Off\|reboot: Power down\|^c$/d' | tee "$out/console.log"
qrc=${PIPESTATUS[0]}
set -e
echo "test-cgroup2: $(($(date +%s) - start))s in the VM" >&2
# how far the runs that did not end got, from their -test.v logs
for log in "$out"/logs/*.log; do
	[ -e "$log" ] && [ ! -e "${log%.log}.done" ] || continue
	echo "test-cgroup2: unfinished $(basename "$log" .log): $(grep -c '^--- PASS' "$log") tests passed, $(grep -c '^--- FAIL' "$log") failed, running: $(awk '
		/^=== RUN/ && $3 !~ /\// {r[$3] = 1}
		/^--- (PASS|FAIL|SKIP)/ {delete r[$3]}
		END {for (k in r) printf "%s ", k}' "$log")" >&2
done
[ "$qrc" = 124 ] && { echo "test-cgroup2: the VM timed out after ${vm_timeout}s (TETHER_VM_TIMEOUT)" >&2; exit 1; }
[ -f "$out/rc" ] || { echo "test-cgroup2: the VM ended without running the suites (qemu exit $qrc; see $out/console.log)" >&2; exit 1; }
exit "$(cat "$out/rc")"
