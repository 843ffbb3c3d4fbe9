"""The process's security system: started once (``init_security_system``), its status,
statistics and events, its logs passed to ``logging``, and its shutdown."""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
from typing import Any, Dict, Optional

from ._native import Core, _drain_logs, _logs_waiting, _quiesce, _set_log_level

# At exit the interpreter is torn down while the runtime's threads may still finish work: from
# here on they leave it alone.
atexit.register(_quiesce)


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
