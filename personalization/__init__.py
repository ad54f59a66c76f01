"""Personalisation beyond retrieval: one LoRA adapter per user (OPPU), per-user style vectors, profile summaries.

`users` turns a split into users and a user's profile into task examples; `user_adapters` trains, stores and
serves per-user adapters on one shared base model; `style_vectors` computes and applies steering vectors;
`summaries` writes cached profile summaries into prompts. The commands are `training/train_per_user.py` and
`evaluation/evaluate_per_user.py`; docs/personalization.md describes them.
"""
