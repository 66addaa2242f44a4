# Everything a fresh machine with Python 3.11 needs: `make demo`, `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Keep pip's cache inside the project, never in $HOME. Prefect's state is where `sentinel` puts it
# (beside the warehouse; demo/.prefect for `make demo`; the tests' own temporary one), never in $HOME.
export PIP_CACHE_DIR := $(CURDIR)/.cache/pip
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120
export DO_NOT_TRACK := 1

.PHONY: demo test deps-test lock clean

$(BIN)/sentinel: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

demo: $(BIN)/sentinel
	$(BIN)/sentinel demo

# The [spark] extra (pyspark, about 490 MB): the parity tests run the rules on a real Spark cluster.
$(VENV)/.spark: requirements-spark.lock $(BIN)/sentinel
	$(BIN)/pip install --quiet -r requirements-spark.lock
	touch $@

test: $(BIN)/sentinel $(VENV)/.spark deps-test
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

# What the tests drive besides the venv: real LibreOffice (the verifiers' spreadsheet, driven
# through Python-UNO by the system python3) and a CJK font (the notebooks' Chinese chart labels).
# Java (17, for the Spark parity tests' cluster) likewise.
# Debian packages, installed only when missing (as root, or through sudo); if that fails the
# LibreOffice tests skip with the reason and the chart-font test fails saying what to install.
TEST_DEBS := libreoffice-calc-nogui python3-uno fonts-noto-cjk openjdk-17-jre-headless
deps-test:
	@if ! command -v soffice >/dev/null || ! command -v java >/dev/null || ! test -d /usr/share/fonts/opentype/noto \
	    || ! /usr/bin/python3 -c 'import uno' 2>/dev/null; then \
	  sudo=$$(test "$$(id -u)" = 0 || echo sudo); \
	  echo "installing $(TEST_DEBS)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$sudo apt-get install -y $(TEST_DEBS) \
	  || { $$sudo apt-get update && $$sudo apt-get install -y $(TEST_DEBS); } \
	  || echo "could not install $(TEST_DEBS)"; \
	fi

# Re-pin after changing dependencies in pyproject.toml.
lock:
	rm -rf .lockenv && $(PY) -m venv .lockenv
	.lockenv/bin/pip install --quiet -e '.[dev]'
	{ echo "# Exact versions installed and tested together (pip freeze of a fresh venv, Python 3.11)."; \
	  echo "# Regenerate with: make lock"; \
	  .lockenv/bin/pip freeze --exclude-editable; } > requirements.lock
	@echo "requirements-spark.lock: re-pin by hand (pip install '.[spark]' in a fresh venv, the new packages of pip freeze)"
	rm -rf .lockenv

clean:
	rm -rf $(VENV) .prefect .cache demo
