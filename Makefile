# bodyparts: the two commands of the README are `make demo` (main job) and `make test`.
# Both set the environment up first (idempotent, fast when already done).
PY ?= .venv/bin/python
QUICK_CONFIG ?= configs/quick_schedules/bodyparts_rcnn_R18_FPN_synthetic_cpu_shared.yaml
BASELINE_CONFIG ?= configs/quick_schedules/person_rcnn_R18_FPN_synthetic_cpu.yaml
PYTEST_ARGS ?=

.PHONY: setup setup-main demo test test-main lint benchmark clean-output

setup:
	bash scripts/setup_env.sh

# Main job: generate the synthetic data, train from scratch on CPU, evaluate (COCO AP), print where outputs are.
demo: setup
	$(PY) tools/train_net.py --config-file $(QUICK_CONFIG)
	@echo "Outputs (checkpoints, metrics.json, tensorboard events, COCO results):" \
	     "$$($(PY) -c "import yaml,sys; print(yaml.safe_load(open('$(QUICK_CONFIG)'))['OUTPUT_DIR'])")"

test: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)

# The linter (ruff, configured in pyproject.toml): lint errors and formatting.
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# The same suite on upstream Detectron2 main with its compiled ops, built from ../shared/detectron2-main
# into a second environment under ~/.cache/bodyparts (reused; rebuilt only when the tarball changes).
setup-main:
	bash scripts/setup_d2main.sh

test-main:
	PY_MAIN="$$(bash scripts/setup_d2main.sh)" && "$$PY_MAIN" -m pytest tests $(PYTEST_ARGS)

benchmark: setup
	$(PY) tools/benchmark.py --config-file $(BASELINE_CONFIG) --vs $(QUICK_CONFIG)

clean-output:
	rm -rf output
