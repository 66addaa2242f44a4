# Everything a fresh machine with Python 3.11 needs: `make demo`, `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Keep pip's cache and Prefect's state inside the project, never in $HOME.
export PIP_CACHE_DIR := $(CURDIR)/.cache/pip
export PREFECT_HOME := $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120
export DO_NOT_TRACK := 1

.PHONY: demo test lock clean

$(BIN)/sentinel: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

demo: $(BIN)/sentinel
	$(BIN)/sentinel demo

test: $(BIN)/sentinel
	$(BIN)/python -m pytest -q

# Re-pin after changing dependencies in pyproject.toml.
lock:
	rm -rf .lockenv && $(PY) -m venv .lockenv
	.lockenv/bin/pip install --quiet -e '.[dev]'
	{ echo "# Exact versions installed and tested together (pip freeze of a fresh venv, Python 3.11)."; \
	  echo "# Regenerate with: make lock"; \
	  .lockenv/bin/pip freeze --exclude-editable; } > requirements.lock
	rm -rf .lockenv

clean:
	rm -rf $(VENV) .prefect .cache demo
