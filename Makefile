# The streaming fork of PyMC. `make test` is the one command to run; it builds what it needs.
# The fork tool (tools/forktool) runs on the machine's python3 and uses only the standard
# library; it creates .venv on Python >= 3.12 (override the interpreter with FORK_PYTHON=...).

HOST_PYTHON ?= python3
FORK = PYTHONPATH=$(CURDIR)/tools $(HOST_PYTHON) -m forktool --root $(CURDIR)
# Extra pytest arguments for `make test`, e.g. `make test ARGS="-k minibatch -x"`.
ARGS ?=
# Restrict `make test` to suites: ours, pymc, pymc-extras (space separated).
SUITES ?=

.PHONY: build test demo demo-compare check gates series series-quick refresh wheels lint clean

# Create .venv, download and verify the sdists, assemble .fork/src/ (patches, our files and
# tests linked in), install editable. Under a second when nothing changed.
build:
	$(FORK) build

# Build if needed, then the suites ours, pymc and pymc-extras; one summary table at the end.
test:
	$(FORK) test $(foreach s,$(SUITES),--suite $(s)) -- $(ARGS)

# Streaming ADVI on a 20M-row Parquet file (written on first run, 1.6 GB) in a few hundred MB.
demo: build
	.venv/bin/python demo/larger_than_memory.py $(ARGS)

# Streaming vs in-memory vs full-data ADVI on 50,000 rows; prints the differences, saves a plot.
demo-compare: build
	.venv/bin/python demo/streaming_demo.py $(ARGS)

# Patches apply; no unrecorded edits; no copies of upstream files; series.toml covers the fork
# and each PR applies in order; the patches stay within 200 changed lines. Fast: no build.
check:
	$(FORK) check

# Upstream's ruff (each project's config) and mypy (PyMC's config) on the pristine sdists and on
# the assembled fork; fails on any finding the fork adds. mypy's cache lives in .fork/cache/.
gates:
	$(FORK) gates

# The fork as upstream PRs (series.toml): per distribution a git repository on the pristine
# release, one commit per PR, `git format-patch` files and an index, in dist/series/<dist>/.
# Then every PR alone at its own commit, as upstream's CI would see it: no fork marker; ruff,
# ruff format and mypy add nothing to the release's findings; its code imports from the series;
# its tests and upstream's tests of the files it changes pass. Names each failing PR and why.
# A test run per PR: slow. `make series-quick` collects the tests instead of running them.
series:
	$(FORK) series --check full

series-quick:
	$(FORK) series --check quick

# Rewrite patches/ from your edits to upstream files in .fork/src/ (explanations kept).
refresh:
	$(FORK) refresh

# Wheels of both distributions into dist/, proven to install with plain pip in a fresh venv.
wheels:
	$(FORK) wheels

# ruff with PyMC's configuration over this repository; mypy over the fork tool (Python 3.11+).
lint: build
	.venv/bin/python -m pip install --quiet --group lint
	.venv/bin/python -m ruff check .
	.venv/bin/python -m ruff format --check .
	.venv/bin/python -m mypy --python-version 3.11 --cache-dir .fork/cache/mypy/tools tools/forktool

# Remove work trees, reports, the series checkouts, .venv and dist/; downloads, pristine trees
# and caches stay.
clean:
	rm -rf .fork/src .fork/reports .fork/series .venv dist
