# Tether: build, demo, test, bench.
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN := $(CURDIR)/bin
DEMO_ROOT ?= /tmp/tether-demo
BENCH_JSON ?=
export PATH := $(dir $(GO)):$(PATH)

.PHONY: all deps build demo test unit lint bench fuzz clean test-podman-system

all: build

deps:
	@bash hack/deps.sh

# Static binaries (CGO_ENABLED=0): no libc or dynamic loader mapped into
# every shim, 1.5 MiB less RSS each (README, "Shim memory").
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/ ./cmd/tether ./cmd/tether-shim ./cmd/tether-conmon

# demo: a container's whole life on the embedded busybox bundle.
demo: deps build
	@bash hack/demo.sh $(BIN) $(DEMO_ROOT)

# lint: gofmt, go vet, and the import boundaries of LAYOUT.md
# (hack/lint-imports.sh: go list -deps per package).
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...
	GO=$(GO) bash hack/lint-imports.sh

# test: every test, with the race detector. As root the integration tests
# must run: TETHER_REQUIRE_ROOT_TESTS turns their skip into a failure.
test: deps build lint
	TETHER_BIN_DIR=$(BIN) TETHER_REQUIRE_ROOT_TESTS=$$( [ "$$(id -u)" = 0 ] && echo 1 ) \
	  $(GO) test -race -timeout 14m -p 2 ./...

# bench: one table, each row against a baseline measured in the same run
# (README, "Benchmarks"); BENCH_JSON=FILE also writes the rows as JSON,
# BENCH_FLAGS passes more flags (-runtime crun, -markdown, -only start,exec).
BENCH_FLAGS ?=
bench: deps build
	@bash hack/bench-deps.sh
	$(GO) run ./hack/bench -bin $(BIN) $(if $(BENCH_JSON),-json $(BENCH_JSON)) $(BENCH_FLAGS)

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

FUZZTIME ?= 1m
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseLine -fuzztime $(FUZZTIME) ./crilog/
	$(GO) test -run '^$$' -fuzz FuzzRoundTrip -fuzztime $(FUZZTIME) ./crilog/
	$(GO) test -run '^$$' -fuzz '^FuzzReadMessage$$' -fuzztime $(FUZZTIME) ./shimapi/
	$(GO) test -run '^$$' -fuzz '^FuzzReadFrame$$' -fuzztime $(FUZZTIME) ./shimapi/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRecord$$' -fuzztime $(FUZZTIME) ./store/

clean:
	rm -rf $(BIN)
