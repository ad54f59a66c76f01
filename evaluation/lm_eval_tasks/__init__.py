"""LongLaMP tasks for lm-evaluation-harness: pass this folder to `lm_eval run --include_path` (see README.md)."""
