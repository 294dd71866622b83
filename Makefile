# Shortcuts for the two README commands and friends.
.PHONY: run test install bench lint clean

run:            ## install and start the demo hub on http://127.0.0.1:8000
	scripts/demo.sh

test:           ## install test dependencies and run the whole suite
	scripts/test.sh

install:
	scripts/install.sh test

bench: install  ## benchmarks (each prints ratios against its baseline)
	.venv/bin/python benchmarks/spawn_overhead.py

lint:
	.venv/bin/ruff check .

clean:          ## remove the demo's data (database, secrets, users' homes)
	rm -rf data
