# Tether: build, demo, test, bench.
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN := $(CURDIR)/bin
DEMO_ROOT ?= /tmp/tether-demo
BENCH_JSON ?=
export PATH := $(dir $(GO)):$(PATH)

.PHONY: all deps build demo test unit lint bench fuzz clean test-criu-vm

all: build

deps:
	@bash hack/deps.sh

# Static binaries (CGO_ENABLED=0): no libc or dynamic loader mapped into
# every shim, 1.5 MiB less RSS each (README, "Shim memory").
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/ ./cmd/tether ./cmd/tether-shim

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
