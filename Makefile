# Consentry — build, test, run and benchmark.
# `make run` and `make test` install the system libraries they need (libsodium, SQLite, pkg-config).

SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
DEMO_VAULT ?= demo-vault
DEMO_PROFILES ?= 5000
# `make run SERVE=0` prepares everything and prints how to call it without starting the server.
SERVE ?= 1
HOST ?= 127.0.0.1
PORT ?= 8080
# Extra flags for every build of the tests; `.ci/run` passes `-Xswiftc -warnings-as-errors` (zero warnings, kept at zero).
SWIFTFLAGS ?=

.PHONY: deps test-peers build release test run bench fuzz fuzz-build embed-policies public-surface format clean

deps:
	@if ! pkg-config --exists libsodium sqlite3 2>/dev/null; then \
		echo "installing libsodium-dev libsqlite3-dev pkg-config"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y libsodium-dev libsqlite3-dev pkg-config; \
	fi

# Peer implementations the conformance tests compare against (from PyPI), installed only when missing.
# schemathesis fuzzes the API from its OpenAPI document; jsonschema (with openapi-spec-validator) checks responses.
PEERS = "python-liquid==2.3.6" markupsafe pyyaml "openapi-spec-validator==0.9.0" jsonschema "schemathesis==4.32.5"
test-peers:
	@python3 -c "import liquid, markupsafe, yaml, openapi_spec_validator, jsonschema, schemathesis" 2>/dev/null \
		|| python3 -m pip install --quiet $(PEERS) \
		|| python3 -m pip install --quiet --break-system-packages $(PEERS)

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product consentry

# The tests, then a short fuzz run of every parser (the corpus and found crashes are also replayed by the tests).
FUZZ_SECONDS ?= 300
FUZZ_SHORT_SECONDS ?= 10
test: deps test-peers
	$(SWIFT) build --build-tests $(SWIFTFLAGS)
	$(SWIFT) test --skip-build $(SWIFTFLAGS)
	$(MAKE) fuzz-build
	FUZZ_SEED=1 ./Tests/Fuzz/run.sh $(FUZZ_SHORT_SECONDS)

# Rewrites the allow-list of ConsentryGate's public symbols (Tests/ConsentryGateTests/public-surface.txt) from the
# compiler's symbol graph; the tests fail while the module's public surface differs from it.
public-surface: deps
	$(SWIFT) build --build-tests
	CONSENTRY_UPDATE_SURFACE=1 $(SWIFT) test --skip-build --filter publicSurfaceIsAllowed

# libFuzzer builds of the parsers (Tests/Fuzz), in their own build folder.
fuzz-build: deps
	$(SWIFT) build --scratch-path .build-fuzz --product consentry-fuzz -Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING

# A long fuzz run: FUZZ_SECONDS per target.
fuzz: fuzz-build
	./Tests/Fuzz/run.sh $(FUZZ_SECONDS)

run: release
	@BIN=.build/release/consentry; V="$(DEMO_VAULT)"; \
	if [ ! -f "$$V/vault.sqlite" ]; then \
		$$BIN demo --vault "$$V" --profiles $(DEMO_PROFILES) --policies policies || exit 1; \
	fi; \
	$$BIN status --vault "$$V" && $$BIN check --vault "$$V" || exit 1; \
	echo; echo "== a gated segment scan (marketer, email_marketing):"; \
	$$BIN scan --vault "$$V" --as marketer --purpose email_marketing --fields email,first_name; \
	echo; echo "== the same scan asking for a field the purpose does not allow (denied, exit 2):"; \
	$$BIN scan --vault "$$V" --as marketer --purpose email_marketing --fields email,birth_date; \
	echo; echo "== why a campaign render for customer C00000001 is permitted or denied:"; \
	$$BIN policy explain --vault "$$V" --as campaign_service --action render --purpose email_marketing --customer-id C00000001 --fields email,first_name; \
	echo; echo "== a segment of running-gear browsers who did not buy (marketer, email_marketing):"; \
	$$BIN segment define running_browsers --vault "$$V" --purpose email_marketing \
		--rule 'event(view, category = "running").within(30d) and not event(purchase).within(7d)' >/dev/null || exit 1; \
	$$BIN segment run running_browsers --vault "$$V" || exit 1; \
	echo; echo "== templates/welcome.html registered for email_marketing, rendered for customer C00000002 through the gate:"; \
	$$BIN template register welcome templates/welcome.html --purpose email_marketing --vault "$$V" || exit 1; \
	echo C00000002 | $$BIN render welcome --vault "$$V" --customer-id - --as campaign_service || true; \
	echo; echo "== recommendations (personalization) and templates/picks.html rendered with them for customer C00000003:"; \
	$$BIN recommend --vault "$$V" --evaluate || exit 1; \
	$$BIN template register picks templates/picks.html --purpose personalization --vault "$$V" >/dev/null || exit 1; \
	echo C00000003 | $$BIN render picks --vault "$$V" --customer-id - || true; \
	echo; $$BIN audit verify --vault "$$V" | tail -1; \
	ADMIN=$$($$BIN token create --vault "$$V" --role admin --name demo-admin 2>/dev/null); \
	COMPLIANCE=$$($$BIN token create --vault "$$V" --role compliance_officer --name demo-compliance 2>/dev/null); \
	MARKETER=$$($$BIN token create --vault "$$V" --role marketer --name demo-marketer 2>/dev/null); \
	ANALYST=$$($$BIN token create --vault "$$V" --role analyst --name demo-analyst 2>/dev/null); \
	ENGINEER=$$($$BIN token create --vault "$$V" --role data_engineer --name demo-engineer 2>/dev/null); \
	CAMPAIGN=$$($$BIN token create --vault "$$V" --role campaign_service --name demo-campaign 2>/dev/null); \
	echo; echo "The demo vault is in ./$$V (5,000 synthetic customers on .example/.test domains)."; \
	echo "API tokens, one per role (shown once; only their hashes are stored):"; \
	echo "  admin               $$ADMIN"; \
	echo "  compliance_officer  $$COMPLIANCE"; \
	echo "  marketer            $$MARKETER"; \
	echo "  analyst             $$ANALYST"; \
	echo "  data_engineer       $$ENGINEER"; \
	echo "  campaign_service    $$CAMPAIGN"; \
	echo; echo "Try, in another terminal:"; \
	echo "  # a gated render at send time (campaign platform):"; \
	echo "  curl -s -X POST http://$(HOST):$(PORT)/v1/render -H 'Authorization: Bearer $$CAMPAIGN' -H 'Content-Type: application/json' -d '{\"template\": \"welcome\", \"subject\": {\"customer_id\": \"C00000002\"}}'"; \
	echo "  # a segment run (marketer): members as pseudonyms, exclusions with reasons:"; \
	echo "  curl -s -X POST http://$(HOST):$(PORT)/v1/segments/running_browsers/run -H 'Authorization: Bearer $$MARKETER'"; \
	echo "  # an audit report (compliance officer):"; \
	echo "  curl -s http://$(HOST):$(PORT)/v1/audit/reports/access-summary -H 'Authorization: Bearer $$COMPLIANCE'"; \
	echo "  (the API contract: curl -s http://$(HOST):$(PORT)/openapi.yaml; the CLI works too: $$BIN --help)"; \
	echo; \
	if [ "$(SERVE)" = "1" ]; then echo "Serving on http://$(HOST):$(PORT); Ctrl-C stops it (a final audit checkpoint is written)."; \
		exec $$BIN serve --vault "$$V" --host $(HOST) --port $(PORT); \
	else echo "SERVE=0: not starting the server; start it with: $$BIN serve --vault $$V"; fi

bench: release
	./Benchmarks/run.sh

# The default policy set is built into the binary; regenerate it after editing policies/ (a test checks they agree).
embed-policies:
	python3 scripts/embed-policies.py

format:
	$(SWIFT) format --in-place --recursive Sources Tests Benchmarks/Sources

clean:
	rm -rf .build .build-fuzz
