"""The seed's IntegratedSecurityMiddleware as a pure ASGI middleware over the Rust layer."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Dict, Optional

from .patterns import threat_detector
from .system import SecuritySystem, init_security_system, shutdown_security_system


async def _read_body(receive: Callable, limit: int) -> tuple:
    """The body up to ``limit + 1`` bytes (the layer reads ``limit``; one more byte tells it the
    body is larger): (bytes read, more to come, client gone). Memory per request stays bounded;
    the rest is streamed to the application as it arrives."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), False, True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = message.get("more_body", False)
        if not more or size > limit:
            return b"".join(chunks), more, False


class SecurityMiddleware:
    """The seed's IntegratedSecurityMiddleware as a pure ASGI middleware.

    HTTP requests go through the Rust layer; lifespan starts the system (if
    ``init_security_system`` has not) and, at shutdown, persists and stops it; websockets pass
    through untouched.
    """

    def __init__(self, app: Callable, config_overrides: Optional[Dict[str, Any]] = None) -> None:
        self.app = app
        self.config_overrides = dict(config_overrides or {})
        self._system: Optional[SecuritySystem] = None

    async def _ensure(self) -> SecuritySystem:
        if self._system is None:
            self._system = await init_security_system(self.config_overrides)
        return self._system

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _lifespan(self, scope: dict, receive: Callable, send: Callable) -> None:
        failed = []

        async def lifespan_receive() -> dict:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._ensure()
                except Exception as error:
                    # The server stops with the reason (a bad setting names its key and value)
                    # instead of serving without protection.
                    failed.append(error)
                    await send({"type": "lifespan.startup.failed", "message": f"mcp-shield: {error}"})
                    raise
            elif message["type"] == "lifespan.shutdown":
                self._system = None
                await shutdown_security_system()
            return message

        try:
            await self.app(scope, lifespan_receive, send)
        except Exception:
            if not failed:
                raise

    async def _http(self, scope: dict, receive: Callable, send: Callable) -> None:
        system = await self._ensure()
        core = system._core
        body, more_body, disconnected = await _read_body(receive, core.max_inspect_body_bytes)
        if disconnected:
            return
        method = scope["method"]
        target = scope.get("raw_path") or scope["path"].encode("utf-8")
        target = target.decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        headers = list(scope.get("headers") or [])
        client = scope.get("client")
        client = (str(client[0]), int(client[1])) if client else None

        findings = []
        if threat_detector._patterns:
            ip = core.client_ip(headers, client)
            request = {
                "method": method,
                "path": scope["path"],
                "query_string": (scope.get("query_string") or b"").decode("latin-1"),
                "headers": {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers},
                "body": body,
                "client": ip,
            }
            findings = await threat_detector._run(ip, request)

        exchange = core.handle(method, target, headers, client, body, findings)
        state = exchange.state
        if state == "pending":
            state = await exchange.decided()
        if state == "answered":
            await _send_response(exchange.response_now() or await exchange.response(), send)
            return
        await self._forward(scope, receive, send, exchange, body, more_body)

    async def _forward(self, scope: dict, receive: Callable, send: Callable, exchange, body: bytes,
                       more_body: bool) -> None:
        progress = asyncio.Event()
        state = {"started": False, "complete": False, "replayed": False}

        async def app_receive() -> dict:
            if not state["replayed"]:
                state["replayed"] = True
                return {"type": "http.request", "body": body, "more_body": more_body}
            # The rest of a large body, as it arrives; then the client's disconnect.
            return await receive()

        async def app_send(message: dict) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                exchange.start(message["status"], list(message.get("headers") or []))
                state["started"] = True
            elif kind == "http.response.body":
                chunk = message.get("body", b"")
                if chunk and not exchange.push(chunk):
                    await exchange.push_wait(chunk)
                if not message.get("more_body", False):
                    exchange.finish()
                    state["complete"] = True
            progress.set()

        async def run_app() -> None:
            try:
                await self.app(scope, app_receive, app_send)
            except BaseException:
                exchange.fail()
                raise
            finally:
                if not state["complete"]:
                    if state["started"]:
                        exchange.finish()
                    else:
                        exchange.fail()
                progress.set()

        app_task = asyncio.ensure_future(run_app())
        try:
            head = None
            while head is None:
                await progress.wait()
                progress.clear()
                if not state["started"] and not app_task.done():
                    continue
                head = exchange.response_now()
                if head is None and (state["complete"] or app_task.done()):
                    head = await exchange.response()
            await _send_response(head, send)
        except BaseException:
            app_task.cancel()
            raise
        # The application's errors are the server's to log, as without the middleware.
        await app_task


async def _send_response(head, send: Callable) -> None:
    await send({"type": "http.response.start", "status": head.status, "headers": head.headers()})
    data, done = head.ready()
    if done:
        await send({"type": "http.response.body", "body": data, "more_body": False})
        return
    if data:
        await send({"type": "http.response.body", "body": data, "more_body": True})
    while True:
        chunk = await head.next()
        if chunk is None:
            break
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


# The seed's name for the middleware.
IntegratedSecurityMiddleware = SecurityMiddleware
