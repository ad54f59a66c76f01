"""Fine-tuning on LongLaMP with accelerate (one CPU to DeepSpeed clusters), full or LoRA/QLoRA.

Entry point: `training/train.py` (`accelerate launch training/train.py ...` or `python -m training.train`);
the pieces it wires together are importable: `training.config.TrainConfig`, `training.loop.train`. Per-user
adapter training is `user_adapters` (the trainer) and `per_user_run` (the run of `training/train_per_user.py`).
"""
