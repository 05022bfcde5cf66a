# imagefleet: `make run` runs the main job against the local cloud; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
WORK   ?= work
PYTEST_ARGS ?=

.PHONY: setup system venv lint test test-fast run scheduler nightly build check-config bench clean upstream upstream-stop upstream-venv

setup: system $(STAMP)

system:
	@bash scripts/setup-system.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check pipeline tasks localcloud qemuhost upstream tests bench

# two pytest-xdist workers, a module per worker at a time (tests/xdist_groups.py)
XDIST ?= -n 2 --dist loadscope
test: setup upstream-venv
	$(BIN)/python -m pytest $(XDIST) -ra --durations=25 $(PYTEST_ARGS)

test-fast: setup upstream-venv
	$(BIN)/python -m pytest $(XDIST) -ra -m 'not slow' $(PYTEST_ARGS)

check-config: setup
	$(BIN)/imagefleet check-config

run: setup
	WORK=$(WORK) BIN=$(BIN) bash scripts/run-local.sh $(RUN_ARGS)

LUIGID_PORT ?= 8082
scheduler: setup
	mkdir -p $(WORK)/luigid
	LUIGI_CONFIG_PATH=$(CURDIR)/config/luigi.cfg $(BIN)/luigid --background --address 127.0.0.1 --port $(LUIGID_PORT) \
	  --pidfile $(WORK)/luigid/luigid.pid --logdir $(WORK)/luigid \
	  --state-path $(WORK)/luigid/state.pickle
	@echo "luigid: http://127.0.0.1:$(LUIGID_PORT)"

nightly: setup
	$(BIN)/imagefleet run --work-dir $(WORK) --workers 3 \
	  --scheduler-url http://127.0.0.1:$(LUIGID_PORT) $(RUN_ARGS)

build: setup
	$(BIN)/imagefleet build --work-dir $(WORK) -v

bench: setup
	$(BIN)/python bench/convert.py

# The upstream services' own venv (work/upstream/venv, a no-op when its stamp
# matches upstream/requirements.txt), built here so the suite does not pay for it.
upstream-venv: $(STAMP)
	$(BIN)/python -m upstream.run venv

upstream: $(STAMP)
	$(BIN)/python -m upstream.run start $(UPSTREAM_ARGS)

upstream-stop: $(STAMP)
	$(BIN)/python -m upstream.run stop

clean:
	-$(BIN)/python -m upstream.run stop
	rm -rf $(WORK) .pytest_cache
