"""Drift detection: new listings and live traffic against the champion's own data."""
