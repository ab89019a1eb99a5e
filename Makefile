# The one place Cadenza's commands live. CI, the README and people call these.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= always
# Where cargo puts binaries (CI keeps its target directory outside the clone).
TARGET := $(or $(CARGO_TARGET_DIR),target)/debug

.PHONY: help services build web test test-web lint fmt run demo migrate gallery clean up down k8s chaos bench-orchestration
# The deployment checks' Python tools and prebuilt helm/compose (tools/deploy/install.sh).
TOOLS_VENV := $(or $(CADENZA_TOOLS_VENV),tools/.venv)

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

services: ## make sure Postgres and RabbitMQ run locally (start or install them)
	@scripts/services.sh

build: ## build every binary
	$(CARGO) build --workspace --bins

test: services web ## run every test against the real Postgres and RabbitMQ, and the studio in Chromium
	@# The observability test runs the services' own binaries as separate processes.
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast
	@# `cargo test` built cadenza-dev for the mesh's tests: the browser test uses it.
	scripts/web-e2e.sh $(TARGET)/cadenza-dev
	@# Last, alone: it kills and restarts services (on its own Postgres and RabbitMQ).
	scripts/chaos.sh

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

lint: $(BUF) ## formatting, clippy, docs, protobuf lint, Helm chart, k8s/, compose, alerts and dashboard
	$(BUF) lint proto
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --quiet
	scripts/deploy-check.sh
	$(TOOLS_VENV)/bin/python scripts/check-monitoring.py

k8s: ## render k8s/ from the Helm chart's defaults, then check the deployment files
	scripts/deploy-check.sh --write

DOCKER_BUILD_ENV = CADENZA_VERSION="$$(awk -F'"' '/^version = /{print $$2; exit}' Cargo.toml)" \
	CADENZA_GIT_COMMIT="$$(git rev-parse HEAD 2>/dev/null)" \
	CADENZA_BUILD_TIME="$$(TZ=UTC git show -s --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd HEAD 2>/dev/null)"

up: ## build the images and run the whole system in Docker (studio: http://localhost:8080)
	@scripts/compose-secrets.sh .env
	$(DOCKER_BUILD_ENV) docker compose up -d --build --wait --wait-timeout 300
	@echo "Studio: http://localhost:8080  RabbitMQ: http://localhost:15672  MinIO: http://localhost:9001"

down: ## stop the Docker system (data kept; `docker compose down -v` deletes it)
	docker compose down

run: services build web ## run the whole mesh in the foreground (dev mode) until Ctrl-C
	CADENZA_DEV_MODE=true $(TARGET)/cadenza-dev

migrate: services build ## apply database migrations to CADENZA_DATABASE_URL
	$(TARGET)/cadenza-project migrate

demo: services build web ## start the mesh, make a song with the CLI, print where it is
	@scripts/demo.sh $(TARGET)

chaos: services ## the chaos test: 20 songs through kill -9 of a worker and of project, RabbitMQ and Postgres restarts (on a private Postgres and RabbitMQ)
	scripts/chaos.sh

# The Celery side of the orchestration benchmark (needs Redis on 127.0.0.1:6379 too).
CELERY_VENV := $(or $(CARGO_TARGET_DIR),target)/celery-venv
CELERY_REQS := services/project/benches/requirements-celery.txt

$(CELERY_VENV)/.installed: $(CELERY_REQS)
	python3 -m venv $(CELERY_VENV)
	$(CELERY_VENV)/bin/pip install --quiet --no-deps -r $(CELERY_REQS)
	touch $@

bench-orchestration: services $(CELERY_VENV)/.installed ## orchestration overhead, and a Celery chain on the same RabbitMQ for comparison
	CADENZA_CELERY_PYTHON=$(abspath $(CELERY_VENV))/bin/python $(CARGO) bench -p cadenza-project --bench orchestration

gallery: ## render example songs across genres into ./gallery/ (WAV, FLAC, MP3 preview)
	$(CARGO) run --release -p cadenza-synth --example gallery -- gallery

fmt: ## format the code
	$(CARGO) fmt --all

clean: ## remove build output and local data
	$(CARGO) clean
	rm -rf data web/dist web/node_modules web/src/gen test-output
