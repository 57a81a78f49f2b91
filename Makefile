# Tether: build, demo, test, bench.
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN := $(CURDIR)/bin
DEMO_ROOT ?= /tmp/tether-demo
BENCH_JSON ?=
export PATH := $(dir $(GO)):$(PATH)

# What 'tether version' reports: the tag (or "dev") and the commit.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)

.PHONY: all deps build demo test test-cgroup2 test-cgroup2-ci test-containerd2 test-podman-system test-podman-system-rootless test-criu-vm unit lint docs bench fuzz clean

all: build

deps:
	@bash hack/deps.sh

# Static binaries (CGO_ENABLED=0): no libc or dynamic loader mapped into
# every shim, 1.5 MiB less RSS each (README, "Shim memory").
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X github.com/tether-run/tether/shim/control.buildVersion=$(VERSION)' -o $(BIN)/ ./cmd/tether ./cmd/tether-shim ./cmd/containerd-shim-tether-v1 ./cmd/tether-conmon

# demo: a container's whole life on the embedded busybox bundle.
demo: deps build
	@bash hack/demo.sh $(BIN) $(DEMO_ROOT)

# lint: gofmt, go vet, the import boundaries of LAYOUT.md
# (hack/lint-imports.sh: go list -deps per package), and the CLI reference
# in docs/cli current with the commands (TestDocsCurrent, also in make test).
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...
	GO=$(GO) bash hack/lint-imports.sh
	$(GO) test -count=1 -run '^TestDocsCurrent$$' ./cmd/tether

# docs: regenerate the CLI reference (docs/cli/*.md) from the commands.
docs:
	$(GO) run -tags gendocs ./cmd/tether gendocs docs/cli

# test: every test, with the race detector. As root the integration tests
# must run: TETHER_REQUIRE_ROOT_TESTS turns their skip into a failure.
test: deps build lint
	TETHER_BIN_DIR=$(BIN) TETHER_REQUIRE_ROOT_TESTS=$$( [ "$$(id -u)" = 0 ] && echo 1 ) \
	  $(GO) test -race -timeout 14m -p 2 ./...

# test-cgroup2: every suite that touches cgroups or the kernel, built here
# without -race and run on a cgroup-v2-only kernel in a throwaway VM
# (README, "cgroup v1 and v2"). It installs qemu and fetches the kernel
# itself. CGROUP2_FLAGS passes flags and packages (-run REGEX, -v, ./integration).
CGROUP2_FLAGS ?=
test-cgroup2: deps build
	TETHER_BIN_DIR=$(BIN) GO=$(GO) bash hack/test-cgroup2.sh $(CGROUP2_FLAGS)

# test-cgroup2-ci: the suites and tests whose code differs between cgroup
# v1 and v2 (the CI selection in hack/test-cgroup2.sh), in the same VM;
# .ci/run runs it after make test.
test-cgroup2-ci: deps build
	TETHER_BIN_DIR=$(BIN) GO=$(GO) bash hack/test-cgroup2.sh -ci

# bench: one table, each row against a baseline measured in the same run
# (README, "Benchmarks"); BENCH_JSON=FILE also writes the rows as JSON,
# BENCH_FLAGS passes more flags (-runtime crun, -markdown, -only start,exec).
BENCH_FLAGS ?=
bench: deps build
	@bash hack/bench-deps.sh
	$(GO) run ./hack/bench -bin $(BIN) $(if $(BENCH_JSON),-json $(BENCH_JSON)) $(BENCH_FLAGS)
	bash hack/bench-containerd.sh $(BIN)

# test-podman-system: podman v4.3.1's own system tests (the bats files in
# ../shared/peer-tests, not part of this repository) run twice, with
# /usr/bin/conmon and with bin/tether-conmon, and compared: the last line
# is `regressions: N`. About 15 minutes per run on 2 cores. tether-conmon
# runs installed under the name conmon (a hard link), as it would replace
# it: one test of the suite checks that the monitor's executable is named
# conmon.
PEER_TESTS ?= $(CURDIR)/../shared/peer-tests
PODMAN_SYSTEM_OUT ?= /tmp/tether-podman-system
test-podman-system: deps build
	@[ -f $(PEER_TESTS)/podman-system.sh ] || { echo "test-podman-system: no $(PEER_TESTS)/podman-system.sh: set PEER_TESTS to the folder holding it"; exit 2; }
	bash $(PEER_TESTS)/podman-system.sh -m /usr/bin/conmon -o $(PODMAN_SYSTEM_OUT)/conmon
	mkdir -p $(BIN)/as-conmon && ln -f $(BIN)/tether-conmon $(BIN)/as-conmon/conmon
	bash $(PEER_TESTS)/podman-system.sh -m $(BIN)/as-conmon/conmon -o $(PODMAN_SYSTEM_OUT)/tether-conmon \
	  -c $(PODMAN_SYSTEM_OUT)/conmon

# test-podman-system-rootless: the same two runs with podman rootless, as
# PODMAN_SYSTEM_USER (made with its subuid/subgid ranges if missing, and
# kept), in a network and mount namespace of the run's own, slirp4netns
# networking (README, "Rootless podman"). It still starts as root.
PODMAN_SYSTEM_USER ?= tether-podman
test-podman-system-rootless: deps build
	@[ -f $(PEER_TESTS)/podman-system.sh ] || { echo "test-podman-system-rootless: no $(PEER_TESTS)/podman-system.sh: set PEER_TESTS to the folder holding it"; exit 2; }
	bash $(PEER_TESTS)/podman-system.sh -u $(PODMAN_SYSTEM_USER) -m /usr/bin/conmon -o $(PODMAN_SYSTEM_OUT)/rootless-conmon
	mkdir -p $(BIN)/as-conmon && ln -f $(BIN)/tether-conmon $(BIN)/as-conmon/conmon
	bash $(PEER_TESTS)/podman-system.sh -u $(PODMAN_SYSTEM_USER) -m $(BIN)/as-conmon/conmon -o $(PODMAN_SYSTEM_OUT)/rootless-tether-conmon \
	  -c $(PODMAN_SYSTEM_OUT)/rootless-conmon

# test-criu-vm: checkpoint/restore in the cgroup v2 VM on Debian's own
# kernel, where Debian's CRIU works (it cannot on kernels from 6.13 on).
test-criu-vm: deps
	GO=$(GO) bash hack/criu-vm.sh

FUZZTIME ?= 1m
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseLine -fuzztime $(FUZZTIME) ./crilog/
	$(GO) test -run '^$$' -fuzz FuzzRoundTrip -fuzztime $(FUZZTIME) ./crilog/
	$(GO) test -run '^$$' -fuzz '^FuzzReadMessage$$' -fuzztime $(FUZZTIME) ./shimapi/
	$(GO) test -run '^$$' -fuzz '^FuzzReadFrame$$' -fuzztime $(FUZZTIME) ./shimapi/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRecord$$' -fuzztime $(FUZZTIME) ./store/

clean:
	rm -rf $(BIN)

# test-containerd2: the ctr and restart tests against containerd v2.x built
# from the Go module proxy (a few minutes; not in CI).
CONTAINERD2_VERSION ?= v2.4.2
test-containerd2: deps build
	GOBIN=$(CURDIR)/.cache/containerd2 CGO_ENABLED=0 $(GO) install \
	  github.com/containerd/containerd/v2/cmd/containerd@$(CONTAINERD2_VERSION) \
	  github.com/containerd/containerd/v2/cmd/ctr@$(CONTAINERD2_VERSION)
	TETHER_BIN_DIR=$(BIN) TETHER_REQUIRE_ROOT_TESTS=1 \
	  TETHER_CONTAINERD_BIN=$(CURDIR)/.cache/containerd2/containerd TETHER_CTR_BIN=$(CURDIR)/.cache/containerd2/ctr \
	  $(GO) test -count=1 -timeout 10m -run 'TestContainerd(RunRm|DetachedTask|Restart|ShimKilled|Outage)$$' ./integration/ctrd/
