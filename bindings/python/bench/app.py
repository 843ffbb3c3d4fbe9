"""The benchmark's FastAPI app, in the variant VARIANT names:

- bare: no middleware;
- slowapi: slowapi's rate limiting (its pure-ASGI middleware, a default limit on every route,
  keyed by the client address);
- shield-rate: mcp-shield, rate limiting only;
- shield-all: mcp-shield with all four guards (DDoS protection, IP management, threat
  detection, rate limiting).

Limits are far above the load (overload protection's included), so every request is decided
and none refused.
"""

import os

from fastapi import FastAPI

VARIANT = os.environ.get("VARIANT", "bare")

app = FastAPI()


@app.get("/items")
async def items(q: str = ""):
    return {"items": [q], "count": 1}


if VARIANT == "slowapi":
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.middleware import SlowAPIASGIMiddleware
    from slowapi.util import get_remote_address

    app.state.limiter = Limiter(key_func=get_remote_address, default_limits=["1000000/minute"])
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)
    app.add_middleware(SlowAPIASGIMiddleware)
elif VARIANT.startswith("shield"):
    import mcp_shield

    every = VARIANT == "shield-all"
    app.add_middleware(
        mcp_shield.SecurityMiddleware,
        config_overrides={
            "ENABLE_RATE_LIMITING": True,
            "ENABLE_DDOS_PROTECTION": every,
            "ENABLE_IP_MANAGEMENT": every,
            "ENABLE_THREAT_DETECTION": every,
            "RATE_LIMIT_PER_IP_CAPACITY": 1000000,
            "RATE_LIMIT_PER_IP_REFILL_RATE": 1000000.0,
            "RATE_LIMIT_GLOBAL_CAPACITY": 1000000000,
            "RATE_LIMIT_GLOBAL_REFILL_RATE": 1000000000.0,
            "DDOS_REQUESTS_PER_SECOND_THRESHOLD": 1000000,
            "DDOS_REQUESTS_PER_MINUTE_THRESHOLD": 100000000,
            # Overload protection stays in the path with a fixed limit above wrk's connections:
            # its learned limit sheds load once the event loop saturates, which is its job
            # but not this benchmark's.
            "SECURITY_UPSTREAM_MAX_CONCURRENCY": 1000,
        },
    )
elif VARIANT != "bare":
    raise SystemExit(f"unknown VARIANT {VARIANT!r}")
