# The one place Cadenza's commands live. CI, the README and people call these.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= always
# Where cargo puts binaries (CI keeps its target directory outside the clone).
TARGET := $(or $(CARGO_TARGET_DIR),target)/debug

.PHONY: help services build web test test-web lint fmt run demo migrate gallery clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

services: ## make sure Postgres and RabbitMQ run locally (start or install them)
	@scripts/services.sh

build: ## build every binary
	$(CARGO) build --workspace --bins

test: services web ## run every test against the real Postgres and RabbitMQ, and the studio in Chromium
	$(CARGO) test --workspace --no-fail-fast
	@# `cargo test` built cadenza-dev for the mesh's tests: the browser test uses it.
	scripts/web-e2e.sh $(TARGET)/cadenza-dev

test-web: services web ## the studio's end-to-end test in headless Chromium against a real mesh
	$(CARGO) build -p cadenza-mesh --bin cadenza-dev
	scripts/web-e2e.sh $(TARGET)/cadenza-dev

# The studio: dependencies from the npm lockfile, a client generated from proto/.
web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --silent

web: web/node_modules/.package-lock.json ## build the web studio into web/dist (the gateway serves it)
	cd web && npm run --silent build

BUF := tools/node_modules/.bin/buf

$(BUF): tools/package.json tools/package-lock.json
	cd tools && npm install --no-audit --no-fund --no-save --silent
	@touch $@

lint: $(BUF) ## formatting, clippy with warnings as errors, docs, protobuf lint
	$(BUF) lint proto
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --quiet

run: services build web ## run the whole mesh in the foreground (dev mode) until Ctrl-C
	CADENZA_DEV_MODE=true $(TARGET)/cadenza-dev

migrate: services build ## apply database migrations to CADENZA_DATABASE_URL
	$(TARGET)/cadenza-project migrate

demo: services build web ## start the mesh, make a song with the CLI, print where it is
	@scripts/demo.sh $(TARGET)

gallery: ## render example songs across genres into ./gallery/ (WAV, FLAC, MP3 preview)
	$(CARGO) run --release -p cadenza-synth --example gallery -- gallery

fmt: ## format the code
	$(CARGO) fmt --all

clean: ## remove build output and local data
	$(CARGO) clean
	rm -rf data web/dist web/node_modules web/src/gen test-output
