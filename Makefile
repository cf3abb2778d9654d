# The two commands a new machine needs:
#   make run    set up, then run mailbot on the embedded default (Ctrl-C stops)
#   make test   set up, then run the whole test suite
# and `make demo` to watch the bundled sample mail go through.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEBIAN_PACKAGES := dovecot-core dovecot-imapd faketime

.PHONY: run once demo test bench check setup system-packages clean

run: setup config.toml
	$(BIN)/mailbot run

once: setup config.toml
	$(BIN)/mailbot run --once

demo: setup config.toml
	$(BIN)/mailbot demo

test: setup system-packages
	$(BIN)/pytest -q
	$(BIN)/mypy
	$(BIN)/ruff check mailbot tests

# Figures, no assertions: a real Dovecot on 127.0.0.1 and temporary folders.
# Options go in BENCH_ARGS, e.g. make bench BENCH_ARGS="--messages 500 --profile"
bench: setup system-packages
	$(BIN)/python bench/run.py $(BENCH_ARGS)

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

config.toml:
	cp config.example.toml config.toml && chmod 600 config.toml

# Dovecot serves the IMAP tests and faketime fixes the clock of the
# command-line tests; both come from Debian's packages when missing.
system-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
