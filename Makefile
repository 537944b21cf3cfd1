# xsknet: build, test and demo. `make` alone lists the targets.
#
# Variables: CARGO (cargo), TEST_THREADS (2: privileged tests make uniquely named namespaces and
# may run side by side, but the machines have two cores and timing tests need one to themselves),
# TEST_ARGS (extra arguments for cargo test, e.g. TEST_ARGS='-p xsknet wire::'),
# FUZZ_SECS (60: seconds per fuzz target), FUZZ_TARGETS (every target; e.g. 'ipv4 rx_path'),
# DURATION and SOAK_ARGS (`make soak`: how long, and more options of xsknet-soak, e.g.
# SOAK_ARGS='--max-pps 300000').

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# rustup puts cargo in ~/.cargo/bin, which sudo's and CI's PATH may lack; ip and ethtool live in sbin.
ifeq ($(shell command -v cargo 2>/dev/null),)
export PATH := $(HOME)/.cargo/bin:/root/.cargo/bin:$(PATH)
endif
export PATH := $(PATH):/usr/sbin:/sbin

CARGO        ?= cargo
TEST_THREADS ?= 2
TEST_ARGS    ?=
BENCH_ARGS   ?=
FUZZ_SECS    ?= 60
FUZZ_TARGETS ?=
DURATION     ?= 10m
SOAK_ARGS    ?=
TEST_LOG     = $(TARGET_DIR)/test.log

# The privileged tests and the demo find the peers here (CARGO_BIN_EXE_* only covers a crate's
# own binaries, and udp-check belongs to xsknet-bench).
# Cargo's target directory: CARGO_TARGET_DIR when set, as cargo itself does.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
export XSKNET_BIN       := $(TARGET_DIR)/release/xsknet
export XSKNET_UDP_CHECK := $(TARGET_DIR)/release/udp-check

.PHONY: help deps build test demo bench fuzz soak lint clean

help: ## list the targets (this text)
	@echo "xsknet: a kernel-bypass TCP/UDP/IP stack on AF_XDP"
	@echo
	@awk 'BEGIN { FS = ":.*## " } /^[a-z]+:.*## / { printf "  make %-6s %s\n", $$1, $$2 }' $(firstword $(MAKEFILE_LIST))
	@echo
	@echo "test and demo need root (namespaces, XDP, AF_XDP): sudo -E env PATH=\"\$$PATH\" make test"

deps: ## install the missing Debian packages (clang, libbpf-dev, iproute2, ethtool, socat, trafgen, ...)
	@scripts/deps.sh

build: ## cargo build --release --workspace (runs deps first when clang or the BPF headers are missing)
	@scripts/deps.sh --check build 2>/dev/null || scripts/deps.sh
	$(CARGO) build --release --workspace

test: ## build, then run every test, privileged ones included (as root); ends with a summary line
	@scripts/deps.sh --check run 2>/dev/null || scripts/deps.sh run
	@if [ "$$(id -u)" -ne 0 ]; then \
	    echo "make test: not root: privileged tests (namespaces, XDP) will skip, or fail with CI set;"; \
	    echo "           run 'sudo -E env PATH=\"\$$PATH\" make test' to run them"; \
	fi
	$(CARGO) build --release --workspace
	$(CARGO) test --release --workspace --no-run
	@start=$$(date +%s); status=0; \
	$(CARGO) test --release --workspace --no-fail-fast $(TEST_ARGS) -- --test-threads=$(TEST_THREADS) 2>&1 \
	    | tee $(TEST_LOG) || status=$$?; \
	awk -v status=$$status -v secs=$$(( $$(date +%s) - start )) -v logfile=$(TEST_LOG) ' \
	    /^test result:/ { bins++; for (i = 2; i <= NF; i++) { \
	        if ($$i ~ /^passed;?$$/) p += $$(i-1); \
	        if ($$i ~ /^failed;?$$/) f += $$(i-1); \
	        if ($$i ~ /^ignored;?$$/) s += $$(i-1) } } \
	    /^test .* \.\.\. FAILED$$/ { failed[++nf] = $$2 } \
	    END { \
	        print ""; \
	        for (i = 1; i <= nf; i++) print "make test: FAILED " failed[i]; \
	        if (status != 0 && f == 0) { f = 1; print "make test: cargo test exited with status " status " without a failing test: a build error, or a test binary that crashed (see " logfile ")" } \
	        printf "make test: %d test binaries in %d s, log in %s\n", bins, secs, logfile; \
	        printf "summary: %d passed, %d failed, %d skipped\n", p, f, s }' $(TEST_LOG); \
	exit $$status

demo: ## build, then the story on a veth pair: ping, UDP echo, TCP echo, refused ports, counters (root)
	@scripts/deps.sh --check run 2>/dev/null || scripts/deps.sh run
	$(CARGO) build --release --workspace
	scripts/demo.sh

bench: ## xsknet beside the kernel's UDP path and the XDP ceilings, in one run (root; BENCH_ARGS=--quick: < 1 min)
	@scripts/deps.sh --check run 2>/dev/null || scripts/deps.sh run
	$(CARGO) build --release --workspace
	$(TARGET_DIR)/release/side-by-side --update-readme --bin-dir $(TARGET_DIR)/release $(BENCH_ARGS)

fuzz: ## the fuzz targets under libFuzzer, FUZZ_SECS (60) each; FUZZ_TARGETS picks (docs/fuzzing.md)
	@scripts/deps.sh --check fuzz 2>/dev/null || scripts/deps.sh fuzz
	FUZZ_SECS=$(FUZZ_SECS) FUZZ_TARGETS="$(FUZZ_TARGETS)" scripts/fuzz.sh

soak: ## xsknet for DURATION (10m; 30s, 1h) under good and malformed traffic at 80 % of its maximum, checked (root)
	@scripts/deps.sh --check run 2>/dev/null || scripts/deps.sh run
	$(CARGO) build --release --workspace
	$(TARGET_DIR)/release/xsknet-soak --duration $(DURATION) --bin-dir $(TARGET_DIR)/release $(SOAK_ARGS)

lint: ## rustfmt --check and clippy, warnings as errors
	$(CARGO) fmt --all --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml --all --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

clean: ## cargo clean
	$(CARGO) clean
