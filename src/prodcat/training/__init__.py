"""The ML code: features, the search, compacting for inference, explanations, evaluation, the
gate, the registry's aliases, and the retraining steps that tie them together."""
