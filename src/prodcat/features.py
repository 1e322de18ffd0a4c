"""The old home of the text preprocessing, now prodcat.training.features.

Registered models are cloudpickled with their classes' module paths: versions trained before
the move name this module, so it must keep importing what they hold.
"""

from prodcat.training.features import (  # noqa: F401
    CharTfidfVectorizer,
    ProductTextCleaner,
    TextViews,
    WordTfidfVectorizer,
    WordTokenizer,
)
