"""Apply a plan to a model: each chosen layer becomes its factorized chain (``rewrite``); ``stage`` is the
pipeline's ``factorize`` stage and ``manual`` is ``lrfc decompose`` (hand-set ranks)."""
