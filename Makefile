# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
# Each creates .venv in the repository when it is missing and re-installs when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint browser clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e ".[cpu,train,dev]"
	touch $(STAMP)

# The HTML results page is checked in a real browser: Debian's headless Chromium.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser test"; \
	    (apt-get install -y -qq chromium >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null)) || \
	    echo "could not install chromium (see apt's message above); the browser test will be skipped"; \
	  else echo "chromium not found and cannot be installed here; the browser test will be skipped"; fi; }

demo: $(STAMP)
	$(BIN)/gcl-vdb demo

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check gcl_vectordb trainer exporters tests benchmarks

clean-venv:
	rm -rf $(VENV)
