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

from .middleware import IntegratedSecurityMiddleware, SecurityMiddleware
from .patterns import ThreatDetector, ThreatIndicator, ThreatSeverity, ThreatType, threat_detector
from .system import (
    EventStream,
    SecuritySystem,
    get_security_status,
    get_security_system,
    init_security_system,
    shutdown_security_system,
)

__all__ = [
    "SecurityMiddleware",
    "IntegratedSecurityMiddleware",
    "SecuritySystem",
    "EventStream",
    "init_security_system",
    "get_security_status",
    "get_security_system",
    "shutdown_security_system",
    "threat_detector",
    "ThreatDetector",
    "ThreatIndicator",
    "ThreatType",
    "ThreatSeverity",
]
