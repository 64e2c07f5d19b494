# `make test` and `make demo` set everything up from nothing: virtualenv, install, run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo bench clean gpu-wheels gpu-check gpu-check-cpu

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/drive-sweep demo

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# ---- the GPU check (benchmarks/gpu_check/, docs: its __init__ docstring) -------------------------
# gpu-wheels (here, where pip reaches PyPI): the wheels a bare GPU machine (Python 3.12, x86-64,
#   torch preinstalled) lacks, into .whl/: the project's pins from constraints.txt and the
#   versions of their dependencies that .venv holds. Carried to the machine with the working tree
#   (64 MiB for both together).
# gpu-check (there): install them into /tmp/site, run every GPU step within 8 minutes; results in
#   $$OUT (or /tmp/gpu_check-DATE). Needs no .venv. ARGS passes options: ARGS="--only packing".
# gpu-check-cpu (here): the same steps at tiny sizes on the CPU, through .venv.
GPU_WHEELS_DIR := .whl
GPU_WHEELS_EXTRA := annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0
GPU_WHEELS_TARGET := --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
	--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
GPU_CARRY_LIMIT := 67108864

gpu-wheels:
	rm -rf $(GPU_WHEELS_DIR) && mkdir -p $(GPU_WHEELS_DIR)
	$(PYTHON) -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
		$(GPU_WHEELS_TARGET) -d $(GPU_WHEELS_DIR) \
		$$(grep -iE '^(pydantic|pydantic_core|mnist1d)==' constraints.txt) $(GPU_WHEELS_EXTRA)
	@ls -l $(GPU_WHEELS_DIR)/*.whl | awk '{printf "%10d  %s\n", $$5, $$NF}'
	@wheels=$$(cat $(GPU_WHEELS_DIR)/*.whl | wc -c); \
	tree=$$(git ls-files -z --cached --others --exclude-standard | xargs -0 cat 2>/dev/null | wc -c); \
	echo "wheels: $$(ls $(GPU_WHEELS_DIR)/*.whl | wc -l) files, $$wheels bytes ($$((wheels / 1048576)) MiB); working tree $$tree bytes; together $$((wheels + tree)) of $(GPU_CARRY_LIMIT) bytes (64 MiB) that travel"; \
	test $$((wheels + tree)) -le $(GPU_CARRY_LIMIT) || { echo "gpu-wheels: over 64 MiB: they cannot travel" >&2; exit 1; }

gpu-check:
	sh benchmarks/gpu_check.sh $(ARGS)

gpu-check-cpu: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m benchmarks.gpu_check --cpu $(ARGS)
