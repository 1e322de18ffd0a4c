"""Request metrics as a plain ASGI middleware.

Starlette's BaseHTTPMiddleware (what @app.middleware("http") builds) runs every request
through extra tasks and memory streams; at hundreds of requests a second that cost a fifth
of the server's time.
"""

from __future__ import annotations

import json
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prodcat.serving import metrics


class RequestMetricsMiddleware:
    """Counts requests by route, method and status, and times them."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            # The router writes the matched route into this same scope.
            path = getattr(scope.get("route"), "path", "unmatched")
            metrics.LATENCY.labels(path).observe(time.perf_counter() - started)
            metrics.REQUESTS.labels(path, scope["method"], str(status)).inc()


class BodySizeLimitMiddleware:
    """413 for a body over max_bytes, before anything parses it.

    A declared Content-Length over the limit is refused without reading a byte; a chunked
    body is counted as it arrives and refused as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, f"{int(declared)} bytes")
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # FastAPI turns an HTTPException raised while reading the body into its answer.
                raise HTTPException(413, detail=self._detail(f"more than {self.max_bytes} bytes"))
            return message

        await self.app(scope, receive_within_limit, send)

    def _detail(self, size: str) -> str:
        return (f"the body has {size}; the limit is {self.max_bytes} bytes "
                "(PRODCAT_API__MAX_BODY_BYTES)")  # fmt: skip

    async def _refuse(self, send: Send, size: str) -> None:
        body = json.dumps({"detail": self._detail(size)}).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


class BatchAdmissionMiddleware:
    """503 for a batch while the batch queue is full, before its body is read or parsed.

    Parsing and validating a worst-case batch costs the event loop milliseconds; under a
    flood of them, refusing after that work starved the single predictions.
    """

    def __init__(self, app: ASGIApp, path: str = "/predict/batch"):
        self.app, self.path = app, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        batcher = getattr(getattr(scope.get("app"), "state", None), "batcher", None)
        if scope["type"] == "http" and scope["path"] == self.path and batcher is not None:
            lane = batcher.batches
            if lane.full:
                body = json.dumps({"detail": lane.busy_detail()}).encode()
                await send({"type": "http.response.start", "status": 503, "headers": [
                    (b"content-type", b"application/json"), (b"retry-after", b"1"),
                    (b"content-length", str(len(body)).encode())]})  # fmt: skip
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
