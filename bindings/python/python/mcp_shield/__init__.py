"""mcp-shield for Python: the seed's security system as an ASGI middleware, backed by the Rust core.

    import mcp_shield
    app.add_middleware(mcp_shield.SecurityMiddleware, config_overrides={"ENABLE_RATE_LIMITING": True})
    status = await mcp_shield.get_security_status()

Every request goes through the same tower layer as the gateway (``mcp-shield serve``): the
guards, the seed's 403 and 429 answers and headers, the admin API (``/api/security/*``), the
probes (``/health``, ``/ready``, ``/metrics``), the MCP checks, and on the way back the tool
lists and tool results. The decision runs in Rust without the GIL; only custom patterns written
in Python (``@threat_detector.add_pattern``) run in the interpreter.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Awaitable, Callable, Dict, List, Optional

from ._native import Core, _drain_logs, _logs_waiting, _quiesce, _set_log_level

# At exit the interpreter is torn down while the runtime's threads may still finish work: from
# here on they leave it alone.
atexit.register(_quiesce)

__all__ = [
    "SecurityMiddleware",
    "IntegratedSecurityMiddleware",
    "SecuritySystem",
    "init_security_system",
    "get_security_status",
    "get_security_system",
    "threat_detector",
    "ThreatDetector",
    "ThreatIndicator",
    "ThreatType",
    "ThreatSeverity",
]


class ThreatType(str, Enum):
    """Threat types, named as in the Rust core's findings, logs and metrics."""

    SQL_INJECTION = "sql_injection"
    XSS_ATTACK = "xss_attack"
    PATH_TRAVERSAL = "path_traversal"
    COMMAND_INJECTION = "command_injection"
    CODE_INJECTION = "code_injection"
    REMOTE_FILE_INCLUSION = "remote_file_inclusion"
    SSRF = "ssrf"
    TEMPLATE_INJECTION = "template_injection"
    XXE = "xxe"
    LDAP_INJECTION = "ldap_injection"
    NOSQL_INJECTION = "nosql_injection"
    CRLF_INJECTION = "crlf_injection"
    SSI_INJECTION = "ssi_injection"
    OPEN_REDIRECT = "open_redirect"
    SESSION_FIXATION = "session_fixation"
    SCANNER = "scanner"
    BOT = "bot"
    PROTOCOL_VIOLATION = "protocol_violation"
    ANOMALOUS_BEHAVIOR = "anomalous_behavior"
    TOOL_POISONING = "tool_poisoning"
    TOOL_CHANGED = "tool_changed"
    SECRET = "secret"
    PERSONAL_DATA = "personal_data"
    PROMPT_INJECTION = "prompt_injection"
    OUTPUT_TOO_LARGE = "output_too_large"
    # A custom pattern's finding: reported under the pattern's name.
    CUSTOM = "custom"


class ThreatSeverity(str, Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass
class ThreatIndicator:
    """What a custom pattern returns when it finds something (the seed's fields)."""

    threat_type: ThreatType
    severity: ThreatSeverity
    confidence: float
    ip: str = ""
    timestamp: datetime = field(default_factory=datetime.now)
    details: Dict[str, Any] = field(default_factory=dict)
    indicators: List[str] = field(default_factory=list)


Pattern = Callable[[str, Dict[str, Any]], Awaitable[Optional[ThreatIndicator]]]


class ThreatDetector:
    """Custom patterns: ``@threat_detector.add_pattern("name")`` on ``async def (ip, request)``.

    A pattern runs on every request before the Rust pipeline decides, with the client's address
    (as the pipeline sees it: the forwarding header's when the peer is a trusted proxy) and the
    request as a dict (method, path, query_string, headers, body, client). What it returns counts
    like a built-in finding: at or above the blocking severity the request is refused with the
    seed's 403 ``threat_detected``, and it appears in events, metrics and the threat assessment.
    """

    def __init__(self) -> None:
        self._patterns: Dict[str, Pattern] = {}

    def add_pattern(self, name: str) -> Callable[[Pattern], Pattern]:
        if not isinstance(name, str) or not name:
            raise ValueError("add_pattern: the pattern needs a name")

        def register(pattern: Pattern) -> Pattern:
            if not asyncio.iscoroutinefunction(pattern):
                raise TypeError(f"add_pattern({name!r}): the pattern must be an async function")
            self._patterns[name] = pattern
            return pattern

        return register

    def remove_pattern(self, name: str) -> None:
        self._patterns.pop(name, None)

    @property
    def patterns(self) -> Dict[str, Pattern]:
        return dict(self._patterns)

    async def _run(self, ip: str, request: Dict[str, Any]) -> list:
        found = []
        for name, pattern in list(self._patterns.items()):
            indicator = await pattern(ip, request)
            if indicator is None:
                continue
            if not isinstance(indicator, ThreatIndicator):
                raise TypeError(f"pattern {name!r} returned {type(indicator).__name__}, not a ThreatIndicator or None")
            kind = ThreatType(indicator.threat_type).value
            threat = name if kind == ThreatType.CUSTOM.value else kind
            severity = ThreatSeverity(indicator.severity).value
            evidence = "; ".join(indicator.indicators) or json.dumps(indicator.details, default=str)
            found.append((threat, severity, float(indicator.confidence), f"custom:{name}", evidence[:120]))
        return found


threat_detector = ThreatDetector()


class SecuritySystem:
    """The running system (one per process): status, statistics, events, the admin token."""

    def __init__(self, core: Core) -> None:
        self._core = core

    async def status(self) -> Dict[str, Any]:
        """What ``GET /api/security/status`` returns."""
        return json.loads(await self._core.status())

    def statistics(self) -> Dict[str, Any]:
        """The seed's counters (total_requests, blocked_requests, rate_limited, ...)."""
        return json.loads(self._core.statistics())

    @property
    def admin_token(self) -> str:
        return self._core.admin_token

    def subscribe(self) -> "EventStream":
        """Events from now on, as an async iterator of dicts: incidents (refusals and findings,
        ``{"event": "incident", "ip", "kind", ...}``), emergency mode switched, list entries
        added or removed, and ``{"event": "lagged", "missed": n}`` when the reader fell behind
        (the queue is bounded). Subscribed at the call, so nothing after it is missed."""
        return EventStream(self._core.subscribe())

    def client_ip(self, headers: list, client: Optional[tuple]) -> str:
        return self._core.client_ip(headers, client)

    async def shutdown(self) -> None:
        await self._core.shutdown()


class EventStream:
    """``async for event in system.subscribe(): ...``"""

    def __init__(self, events) -> None:
        self._events = events

    def __aiter__(self) -> "EventStream":
        return self

    async def __anext__(self) -> Dict[str, Any]:
        text = await self._events.next()
        if text is None:
            raise StopAsyncIteration
        return json.loads(text)


_system: Optional[SecuritySystem] = None
_starting: Optional[asyncio.Lock] = None
_log_pump: Optional[asyncio.Task] = None


def _log_threshold() -> int:
    return min(logging.getLogger("security").getEffectiveLevel(), logging.getLogger("mcp_shield").getEffectiveLevel())


def _pass_logs() -> None:
    lines, dropped = _drain_logs()
    for level, name, message in lines:
        logging.getLogger(name).log(level, message)
    if dropped:
        logging.getLogger("security").warning("%d log lines of mcp-shield were dropped (nobody read them in time)", dropped)


async def _pump_logs() -> None:
    """The core's log lines to ``logging``, under the seed's names (``security.rate_limiter``,
    ``security.threat_detector``, ...): ``logging.getLogger("security").setLevel(logging.DEBUG)``
    works as in the seed. The level is read at start and after each batch."""
    while True:
        _set_log_level(_log_threshold())
        await _logs_waiting()
        _pass_logs()


async def init_security_system(config_overrides: Optional[Dict[str, Any]] = None) -> SecuritySystem:
    """Builds the process's system: the environment read as in Rust (``SECURITY_*``,
    ``REDIS_URL``), ``config_overrides`` over it (the seed's keys such as
    ``ENABLE_RATE_LIMITING``, full environment names, or TOML paths). A bad value raises
    ``ValueError`` naming the key and the value. Called again, it returns the running system.
    """
    global _system, _starting
    if _system is not None:
        return _system
    if _starting is None:
        _starting = asyncio.Lock()
    async with _starting:
        if _system is None:
            _set_log_level(_log_threshold())
            _system = SecuritySystem(await Core.start(dict(config_overrides or {})))
            global _log_pump
            _log_pump = asyncio.ensure_future(_pump_logs())
    return _system


def get_security_system() -> Optional[SecuritySystem]:
    return _system


async def get_security_status() -> Dict[str, Any]:
    """The status document of the admin API, as a dict."""
    if _system is None:
        raise RuntimeError("the security system is not started: await init_security_system() first")
    return await _system.status()


async def shutdown_security_system() -> None:
    """Saves what persistence keeps, lets queued Redis updates go out, and stops the log pump
    (the lines still queued are passed first)."""
    global _system, _log_pump
    if _system is not None:
        system, _system = _system, None
        await system.shutdown()
    if _log_pump is not None:
        _log_pump.cancel()
        _log_pump = None
        _pass_logs()


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
