"""Training: one-shot fine-tuning of factorized models (``finetune``, ``stage``) and the benchmark models (``baselines``)."""
