"""prodcat: keeps an online shop's product catalogue categorised."""

__version__ = "0.1.0"
