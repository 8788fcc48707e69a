# The two commands of the README: `make demo` and `make test`. Each sets itself up on a fresh machine.
PYTHON ?= python3
# pip and Python may write bytecode caches here (a 10x faster start than recompiling every module)
unexport PYTHONDONTWRITEBYTECODE
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest browser postgres rsync clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tbot demo --home demo_home

# Debian's chromium + chromedriver for the dashboard's browser tests; best effort (root only).
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	      || echo "browser: could not install chromium; browser tests will skip"; \
	  else echo "browser: chromium missing and not root; browser tests will skip"; fi; \
	fi

# Debian's PostgreSQL server binaries for the optimizer's many-worker test (the suite starts its own server as
# an unprivileged user); best effort (root only).
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
	      || echo "postgres: could not install postgresql; the PostgreSQL worker test will skip"; \
	  else echo "postgres: PostgreSQL missing and not root; the PostgreSQL worker test will skip"; fi; \
	fi

# Debian's rsync for the off-site backup tests (a local rsync daemon is the "plain server"); best effort (root only).
rsync:
	@if ! command -v rsync >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsync >/dev/null) \
	      || echo "rsync: could not install rsync; the rsync backup tests will skip"; \
	  else echo "rsync: rsync missing and not root; the rsync backup tests will skip"; fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy tbot_bot

# two workers (pytest-xdist), whole files per worker so each file's shared fixtures are built once
pytest: $(STAMP) browser postgres rsync
	$(BIN)/pytest -q -n 2 --dist loadfile

test: lint typecheck pytest

clean:
	rm -rf $(VENV) demo_home
