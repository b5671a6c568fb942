# Consentry — build, test, run and benchmark.
# `make run` and `make test` install the system libraries they need (libsodium, SQLite, pkg-config).

SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
DEMO_VAULT ?= demo-vault
DEMO_PROFILES ?= 5000

.PHONY: deps build release test run bench format clean

deps:
	@if ! pkg-config --exists libsodium sqlite3 2>/dev/null; then \
		echo "installing libsodium-dev libsqlite3-dev pkg-config"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y libsodium-dev libsqlite3-dev pkg-config; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product consentry

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

run: release
	@BIN=.build/release/consentry; \
	if [ ! -f "$(DEMO_VAULT)/vault.sqlite" ]; then \
		$$BIN demo --vault "$(DEMO_VAULT)" --profiles $(DEMO_PROFILES) --policies policies || exit 1; \
	fi; \
	$$BIN status --vault "$(DEMO_VAULT)"; \
	$$BIN check --vault "$(DEMO_VAULT)"; \
	echo; \
	echo "The demo vault is in ./$(DEMO_VAULT). Try:"; \
	echo "  $$BIN status --vault $(DEMO_VAULT) --json"; \
	echo "  $$BIN demo --write-files /tmp/consentry-demo --profiles 10 && $$BIN import profiles /tmp/consentry-demo/profiles.csv --source crm --vault $(DEMO_VAULT)"; \
	echo "  $$BIN keys rotate --vault $(DEMO_VAULT)"

bench: release
	./Benchmarks/run.sh

format:
	$(SWIFT) format --in-place --recursive Sources Tests Benchmarks/Sources

clean:
	rm -rf .build
