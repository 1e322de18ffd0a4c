"""The old home of the model search, now prodcat.training.search.

Registered models are cloudpickled with their classes' module paths: versions trained before
the move name this module, so it must keep importing what they hold.
"""

from prodcat.training.search import EncodedXGBClassifier  # noqa: F401
