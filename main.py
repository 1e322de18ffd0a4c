"""Entry point of the prediction API: `uvicorn main:app`."""

from prodcat.serving.app import create_app

app = create_app()
