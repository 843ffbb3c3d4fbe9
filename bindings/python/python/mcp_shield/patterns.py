"""Custom threat patterns written in Python (the seed's ``@threat_detector.add_pattern``), and
the seed's names for what they return."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Awaitable, Callable, Dict, List, Optional


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
