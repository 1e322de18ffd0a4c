"""The prediction API (FastAPI)."""
