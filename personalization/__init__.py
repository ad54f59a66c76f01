"""Personalisation beyond retrieval: one LoRA adapter per user (OPPU), per-user style vectors, profile summaries.

`users` turns a split into users and a user's profile into task examples; `user_adapters` stores per-user adapters
and switches (or, on vLLM, routes) them in per user on one shared base model (training them is
training/user_adapters.py's); `style_vectors` computes and applies steering vectors; `summaries` writes cached
profile summaries into prompts; `prompt_setup` is the model and prompt rules a per-user run shares; `generate`
generates each user's examples as that user's model. The commands are `training/train_per_user.py`,
`training/train_style_vectors.py` and `evaluation/evaluate_per_user.py`; docs/personalization.md describes them.
"""
