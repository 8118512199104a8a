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

.PHONY: help setup build test test-system demo bench bench-quick soak clean typecheck

help:
	@echo "make demo    - run hcsync end to end: embedded Postgres, Salesforce emulator, sidecar, traffic"
	@echo "make test    - install, build and run the test suite (embedded Postgres; plus the system server in CI)"
	@echo "make bench   - run the benchmarks (bench/), tables in the terminal, JSON in bench/results/"
	@echo "make soak    - the convergence test for SOAK_MINUTES (30) under faults, >= 100 kills (HCSYNC_SEED=n replays a seed)"
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

setup: dist/.built

build: dist/.built

typecheck: setup
	npx tsc -p tsconfig.json --noEmit

test: setup
	npx vitest run
	@if [ -n "$$CI" ] && pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
	  echo "== second leg: the system PostgreSQL server at 127.0.0.1:5432"; \
	  DATABASE_URL=$(SYSTEM_PG_URL) npx vitest run; \
	fi

test-system: setup
	DATABASE_URL=$(SYSTEM_PG_URL) npx vitest run

demo: setup
	node dist/sidecar/cli.js demo

bench: setup
	node dist/bench/run.js

bench-quick: setup
	node dist/bench/run.js --quick

# The convergence test (test/convergence/) for 30 minutes: the same workload, nemesis and checker as CI's
# bounded run, with at least 100 kill -9s. Figures in the terminal and bench/results/soak-*.json.
SOAK_MINUTES ?= 30
soak: setup
	HCSYNC_CONVERGENCE_SECONDS=$$(( $(SOAK_MINUTES) * 60 )) HCSYNC_SOAK_MIN_KILLS=$$(( $(SOAK_MINUTES) * 10 / 3 )) \
	  npx vitest run test/convergence/convergence.test.ts

clean:
	rm -rf dist .data bench/results
