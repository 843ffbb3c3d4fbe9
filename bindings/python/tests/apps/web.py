"""A small FastAPI app behind the middleware (the tests' and the benchmark's)."""

import os

from fastapi import FastAPI, WebSocket
from fastapi.responses import StreamingResponse

import mcp_shield
from mcp_shield import ThreatIndicator, ThreatSeverity, ThreatType

app = FastAPI()


@app.get("/items")
async def items(q: str = ""):
    return {"items": [q], "count": 1}


@app.websocket("/ws")
async def ws(socket: WebSocket):
    await socket.accept()
    message = await socket.receive_text()
    await socket.send_text(f"echo: {message}")
    await socket.close()


@app.get("/pid")
async def pid():
    return {"pid": os.getpid()}


@app.post("/echo")
async def echo(payload: dict):
    return payload


@app.get("/stream")
async def stream():
    async def events():
        import asyncio

        for i in range(3):
            yield f"data: {i}\n\n".encode()
            await asyncio.sleep(0.3)

    return StreamingResponse(events(), media_type="text/event-stream")


@mcp_shield.threat_detector.add_pattern("custom_attack")
async def detect_custom_attack(ip: str, request: dict):
    if "forbidden-word" in request["path"] or "forbidden-word" in request["query_string"]:
        return ThreatIndicator(
            ip=ip,
            threat_type=ThreatType.CUSTOM,
            severity=ThreatSeverity.HIGH,
            confidence=0.9,
            details={"pattern": "custom"},
            indicators=["Custom attack pattern detected"],
        )
    return None


if os.environ.get("SHIELD", "1") == "1":
    app.add_middleware(
        mcp_shield.SecurityMiddleware,
        config_overrides={
            "ENABLE_RATE_LIMITING": True,
            "ENABLE_THREAT_DETECTION": os.environ.get("GUARDS", "all") == "all",
            "ENABLE_DDOS_PROTECTION": os.environ.get("GUARDS", "all") == "all",
            "ENABLE_IP_MANAGEMENT": os.environ.get("GUARDS", "all") == "all",
            "RATE_LIMIT_PER_IP_CAPACITY": int(os.environ.get("PER_IP_CAPACITY", "5")),
            "RATE_LIMIT_PER_IP_REFILL_RATE": float(os.environ.get("PER_IP_REFILL", "0.1")),
            "SECURITY_TRUSTED_PROXIES": "127.0.0.1/32",
        },
    )
