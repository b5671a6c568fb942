# Consentry — build, test, run and benchmark.
# `make run` and `make test` install the system libraries they need (libsodium, SQLite, pkg-config).

SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
DEMO_VAULT ?= demo-vault
DEMO_PROFILES ?= 5000

.PHONY: deps test-peers build release test run bench format clean

deps:
	@if ! pkg-config --exists libsodium sqlite3 2>/dev/null; then \
		echo "installing libsodium-dev libsqlite3-dev pkg-config"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y libsodium-dev libsqlite3-dev pkg-config; \
	fi

# Peer implementations the conformance tests compare against (from PyPI), installed only when missing.
test-peers:
	@python3 -c "import liquid, markupsafe" 2>/dev/null || python3 -m pip install --quiet "python-liquid==2.3.6" markupsafe \
		|| python3 -m pip install --quiet --break-system-packages "python-liquid==2.3.6" markupsafe

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product consentry

test: deps test-peers
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

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
	echo; \
	echo "The demo vault is in ./$$V (5,000 synthetic customers on .example/.test domains). Try:"; \
	echo "  $$BIN consent show --vault $$V --customer-id C00000001"; \
	echo "  $$BIN profile show --vault $$V --as compliance_officer --purpose service --customer-id C00000001 --fields email,first_name --reason 'ticket 1'"; \
	echo "  $$BIN consent withdraw --vault $$V --customer-id C00000001 --purpose email_marketing --source unsubscribe"; \
	echo "  $$BIN audit report access-summary --vault $$V"; \
	echo "  $$BIN audit report art30 --vault $$V"; \
	echo "  $$BIN score engagement --vault $$V   (and: score rfm, segment overlap, template list)"; \
	echo "  $$BIN audit query --vault $$V --decision deny"; \
	echo "  echo C00000001 | $$BIN dsr open --vault $$V --type access --regime gdpr --customer-id -"

bench: release
	./Benchmarks/run.sh

format:
	$(SWIFT) format --in-place --recursive Sources Tests Benchmarks/Sources

clean:
	rm -rf .build
