# Two commands matter: `make run` and `make test` (see README.md).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
# The papers' CJK font, from npm (see its rule below).
FONT_DIR := static/vendor/fonts
FONT_PKG := node_modules/@expo-google-fonts/noto-sans-hk

.PHONY: run test setup db demo worker lint clean browser-deps deploy-deps translations messages

run: setup db demo
	$(BIN)/python -m jobs.devserver

test: setup
	@$(MAKE) --no-print-directory browser-deps deploy-deps
	$(BIN)/python -m pytest

setup: $(VENV)/.installed static/vendor/htmx.min.js static/vendor/htmx-ext-sse.js static/sounds/alert.wav translations \
	$(FONT_DIR)/NotoSansHK-Regular.ttf node_modules/axe-core/axe.min.js

# The .po catalogs are committed; their compiled .mo files are built here, never committed.
translations: $(VENV)/.installed
	$(BIN)/pybabel compile --statistics -d translations

# Re-extract every message from the code and templates into the .po files (then translate them).
messages: setup
	$(FLASK) i18n update

$(VENV)/.installed: pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PY) not found)"; exit 1; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

static/vendor/htmx.min.js: package.json
	npm install --no-audit --no-fund --silent
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js

# The htmx SSE extension (the desk's live alerts), from the same npm install.
static/vendor/htmx-ext-sse.js: static/vendor/htmx.min.js
	@test -f node_modules/htmx-ext-sse/dist/sse.min.js || npm install --no-audit --no-fund --silent
	cp node_modules/htmx-ext-sse/dist/sse.min.js static/vendor/htmx-ext-sse.js

# The papers' CJK font (domain/documents/fonts.py): Noto Sans HK with TrueType outlines,
# which reportlab can subset and embed (Debian's Noto CJK files are CFF and cannot be),
# from the npm package pinned in package.json. Copied out of node_modules, never committed.
$(FONT_DIR)/NotoSansHK-Regular.ttf: package.json
	@test -f $(FONT_PKG)/400Regular/NotoSansHK_400Regular.ttf || npm install --no-audit --no-fund --silent
	mkdir -p $(FONT_DIR)
	cp $(FONT_PKG)/700Bold/NotoSansHK_700Bold.ttf $(FONT_DIR)/NotoSansHK-Bold.ttf
	cp $(FONT_PKG)/LICENSE_FONT $(FONT_DIR)/NotoSansHK-LICENSE.txt
	cp $(FONT_PKG)/400Regular/NotoSansHK_400Regular.ttf $@

# axe-core, which the browser tests run inside each page they check (tests/test_accessibility.py).
node_modules/axe-core/axe.min.js: package.json
	@test -f $@ || npm install --no-audit --no-fund --silent
	@touch $@

# The desk's alert chime, synthesised by our own code (no third-party sound file).
static/sounds/alert.wav: blueprints/alerts/chime.py $(VENV)/.installed
	$(BIN)/python -m blueprints.alerts.chime $@

# Browser tests need Debian's chromium and a CJK font; install them when apt can.
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi 'noto.*cjk'; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "Installing chromium and fonts-noto-cjk for browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	  else echo "chromium missing and apt unavailable: browser tests will skip"; fi; \
	fi

# The deploy rehearsal (deploy/rehearse.sh, tests/test_rehearse.py) needs Debian's nginx
# and openssl. policy-rc.d keeps the package from starting the system nginx on port 80.
deploy-deps:
	@if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ] || ! command -v openssl >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "Installing nginx and openssl for the deploy rehearsal"; \
	    made=""; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made=1; fi; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx openssl >/dev/null; rc=$$?; \
	    [ -n "$$made" ] && rm -f /usr/sbin/policy-rc.d; exit $$rc; \
	  else echo "nginx missing and apt unavailable: the deploy rehearsal will skip"; fi; \
	fi

db: setup
	$(FLASK) db upgrade

# `make run DEMO=0`: an empty store (an owner account, no products or orders) to set up
# in the browser, as a new merchant would. Use it on a fresh clone or a fresh instance/.
DEMO ?= 1
demo: db
ifeq ($(DEMO),0)
	$(FLASK) init-store --owner-email owner@example.com --owner-password shopdesk-demo
else
	$(FLASK) seed-demo --orders 2000 --if-empty
endif

worker: setup
	$(FLASK) worker

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) node_modules static/vendor
