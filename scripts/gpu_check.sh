#!/usr/bin/env bash
# The GPU paths the CPU test suite cannot run, checked in a few minutes on one CUDA GPU without network access:
# tiny models are built on the spot. One line per check: PASS|FAIL|SKIP <name>: <figures or reason>.
# Exit code 1 when a check fails; without a GPU every check is skipped and the exit code is 0.
#
#   bash scripts/gpu_check.sh                      # every check
#   bash scripts/gpu_check.sh --only vllm_vs_hf    # some of them (--list names them)
#   PYTHON=.venv/bin/python bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" scripts/gpu_check.py "$@"
