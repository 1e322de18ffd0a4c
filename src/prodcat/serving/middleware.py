"""Request metrics and admission as plain ASGI middlewares.

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


class AdmissionMiddleware:
    """Refusals made before a body is read or parsed, in one layer of the middleware stack.

    - 413 for a body over max_bytes: a declared Content-Length over the limit without
      reading a byte (the server never reads past a declared length); a chunked body is
      counted as it arrives and refused as soon as it passes the limit.
    - 503 for a batch while the batch queue is full: parsing and validating a worst-case
      batch costs the event loop milliseconds, and under a flood of them, refusing after
      that work starved the single predictions.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, batch_path: str = "/predict/batch"):
        self.app, self.max_bytes, self.batch_path = app, max_bytes, batch_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == self.batch_path and (lane := self._full_batch_lane(scope)):
            headers = [(b"retry-after", b"1")]
            await self._refuse(send, 503, lane.busy_detail(), headers)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > self.max_bytes:
                await self._refuse(send, 413, self._detail(f"{int(declared)} bytes"),
                                   [(b"connection", b"close")])  # fmt: skip
                return
            await self.app(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    @staticmethod
    def _full_batch_lane(scope: Scope):
        batcher = getattr(getattr(scope.get("app"), "state", None), "batcher", None)
        return batcher.batches if batcher is not None and batcher.batches.full else None

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # FastAPI turns an HTTPException raised while reading the body into its answer.
                raise HTTPException(413, detail=self._detail(f"more than {self.max_bytes} bytes"))
            return message

        return receive_within_limit

    def _detail(self, size: str) -> str:
        return (f"the body has {size}; the limit is {self.max_bytes} bytes "
                "(PRODCAT_API__MAX_BODY_BYTES)")  # fmt: skip

    @staticmethod
    async def _refuse(send: Send, status: int, detail: str, headers: list) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            *headers]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})
