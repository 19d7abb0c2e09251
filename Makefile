# The two set-up commands from the README: `make demo` and `make test` (both install first).
.PHONY: install demo test bench

install: .venv/.installed

.venv/.installed: pyproject.toml .ci/install
	bash .ci/install
	touch $@

demo: install
	.venv/bin/vampbridge demo

test: install
	QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -q

bench: install
	.venv/bin/python benchmarks/engine.py --quick
