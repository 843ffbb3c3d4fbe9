"""The seed's calls in-process: init_security_system, get_security_status, subscribe, bad
configuration; lifespan shutdown; several uvicorn workers sharing state through Redis."""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from conftest import ADMIN_TOKEN, HERE, free_port, uvicorn_server


def run_python(code: str, env: dict = None) -> subprocess.CompletedProcess:
    """A fresh interpreter: the system is one per process."""
    return subprocess.run([sys.executable, "-c", code], cwd=HERE, env=dict(os.environ, **(env or {})),
                          capture_output=True, text=True, timeout=60)


def test_init_status_and_events_in_process():
    code = r'''
import asyncio, json
import mcp_shield

import logging

records = []

class Keep(logging.Handler):
    def emit(self, record):
        records.append(record)

logging.getLogger("security").addHandler(Keep())
logging.getLogger("security").setLevel(logging.INFO)

async def main():
    system = await mcp_shield.init_security_system({"ENABLE_THREAT_DETECTION": True, "RATE_LIMIT_PER_IP_CAPACITY": 50})
    assert await mcp_shield.init_security_system() is system
    status = await mcp_shield.get_security_status()
    assert status["components"]["threat_detection"]["enabled"] is True
    assert status["config"]["rate_limit"]["per_ip_capacity"] == 50
    events = system.subscribe()

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = mcp_shield.SecurityMiddleware(app)
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/search", "raw_path": b"/search",
             "query_string": b"q=%3Cscript%3Ealert(1)%3C/script%3E", "headers": [(b"host", b"x")],
             "client": ("203.0.113.5", 4000)}
    await middleware(scope, receive, send)
    assert sent[0]["status"] == 403, sent
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body["type"] == "threat_detected" and "xss_attack" in body["threats"]
    # The core's log line, under the seed's logger name.
    for _ in range(100):
        if any(r.name == "security.threat_detector" and "xss_attack" in r.getMessage() for r in records):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError([(r.name, r.getMessage()) for r in records])
    event = await asyncio.wait_for(events.__anext__(), 5)
    assert event["event"] == "incident" and event["ip"] == "203.0.113.5", event
    assert system.statistics()["threat_detected"] == 1
    sent.clear()
    scope = dict(scope, query_string=b"q=shoes")
    await middleware(scope, receive, send)
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"ok", sent
    print("ok")

asyncio.run(main())
'''
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_bad_value_names_the_key_and_the_value():
    code = r'''
import asyncio, mcp_shield
for overrides in ({"RATE_LIMIT_PER_IP_CAPACITY": "lots"}, {"NO_SUCH_SETTING": 1}, {"ENABLE_RATE_LIMITING": {"a": 1}}):
    try:
        asyncio.run(mcp_shield.init_security_system(overrides))
        print("accepted", overrides)
    except (ValueError, TypeError) as e:
        print(type(e).__name__, repr(str(e)))
'''
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3, done.stdout
    assert lines[0].startswith("ValueError") and "RATE_LIMIT_PER_IP_CAPACITY=lots" in lines[0], lines[0]
    assert lines[1].startswith("ValueError") and "NO_SUCH_SETTING" in lines[1], lines[1]
    assert lines[2].startswith("TypeError") and "ENABLE_RATE_LIMITING" in lines[2], lines[2]


def test_a_server_with_a_bad_setting_does_not_start():
    with pytest.raises(RuntimeError) as failed:
        with uvicorn_server("apps.web:app", env={"PER_IP_CAPACITY": "-3"}):
            pass
    assert "RATE_LIMIT_PER_IP_CAPACITY" in str(failed.value), failed.value


def test_lifespan_shutdown_saves_the_state_and_stops():
    data = tempfile.mkdtemp()
    try:
        with uvicorn_server("apps.web:app", env={"SECURITY_DATA_DIR": data}) as base:
            request = urllib.request.Request(base + "/api/security/ip/blacklist", method="POST",
                                             data=json.dumps({"ip": "203.0.113.66", "reason": "test"}).encode())
            request.add_header("Authorization", f"Bearer {ADMIN_TOKEN}")
            request.add_header("Content-Type", "application/json")
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status in (200, 201)
        # uvicorn ran the lifespan shutdown on SIGTERM: the state was saved.
        saved = "".join(open(os.path.join(data, f), errors="replace").read() for f in os.listdir(data))
        assert "203.0.113.66" in saved
    finally:
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_two_workers_share_the_rate_limit_through_redis():
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        env = {"REDIS_URL": f"redis://127.0.0.1:{port}", "SECURITY_IP_HASH_KEY": "0123456789abcdef0123456789abcdef", "GUARDS": "rate", "PER_IP_CAPACITY": "6", "PER_IP_REFILL": "0.01"}
        with uvicorn_server("apps.web:app", env=env, workers=2) as base:
            # Both workers serve (a new connection each time; the kernel spreads them).
            pids = set()
            for i in range(40):
                request = urllib.request.Request(base + "/pid")
                request.add_header("X-Forwarded-For", f"198.51.100.{100 + i}")
                with urllib.request.urlopen(request, timeout=10) as answer:
                    pids.add(json.loads(answer.read())["pid"])
            assert len(pids) == 2, pids
            statuses = []
            for _ in range(16):
                request = urllib.request.Request(base + "/items?q=a")
                request.add_header("X-Forwarded-For", "198.51.100.77")
                try:
                    with urllib.request.urlopen(request, timeout=10) as answer:
                        statuses.append(answer.status)
                except urllib.error.HTTPError as error:
                    statuses.append(error.code)
            # One bucket for the address in Redis: 6 served in all, not 6 per worker.
            assert statuses.count(200) == 6, statuses
            assert statuses.count(429) == 10, statuses
    finally:
        redis.send_signal(signal.SIGTERM)
        redis.wait(timeout=10)


def test_the_client_is_the_forwarded_address_only_behind_a_trusted_proxy():
    code = r'''
import asyncio, mcp_shield

seen = []

@mcp_shield.threat_detector.add_pattern("records")
async def records(ip, request):
    seen.append(ip)
    return None

async def main():
    await mcp_shield.init_security_system({"SECURITY_TRUSTED_PROXIES": "10.0.0.0/8", "ENABLE_RATE_LIMITING": True,
                                           "RATE_LIMIT_PER_IP_CAPACITY": 2, "RATE_LIMIT_PER_IP_REFILL_RATE": 0.01})

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = mcp_shield.SecurityMiddleware(app)

    async def request(peer, forwarded):
        sent = []
        async def send(message):
            sent.append(message)
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}
        headers = [(b"host", b"x"), (b"x-forwarded-for", forwarded.encode())]
        await middleware({"type": "http", "method": "GET", "path": "/", "raw_path": b"/", "query_string": b"",
                          "headers": headers, "client": (peer, 5555)}, receive, send)
        return sent[0]["status"]

    # A trusted proxy: the address it forwards for is the client (its own limit of 2).
    assert [await request("10.1.2.3", "203.0.113.50") for _ in range(3)] == [200, 200, 429]
    assert await request("10.9.9.9", "203.0.113.51") == 200
    # Anyone else: the header is not believed; the peer is the client.
    assert await request("192.0.2.7", "203.0.113.52") == 200
    assert seen == ["203.0.113.50"] * 3 + ["203.0.113.51", "192.0.2.7"], seen
    print("ok")

asyncio.run(main())
'''
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def shared_geoip(name: str):
    """MaxMind's test databases beside the checkout (../shared/geoip), as the Rust tests find them."""
    directory = HERE
    while directory != os.path.dirname(directory):
        candidate = os.path.join(directory, "shared", "geoip", name)
        if os.path.exists(candidate):
            return candidate
        directory = os.path.dirname(directory)
    return None


@pytest.mark.skipif(shared_geoip("GeoIP2-City-Test.mmdb") is None, reason="no shared/geoip beside the checkout")
def test_geoip_country_rules_refuse_as_in_rust():
    code = r'''
import asyncio, json, sys, mcp_shield

async def main():
    await mcp_shield.init_security_system({"ENABLE_IP_MANAGEMENT": True, "GEOIP_DATABASE_PATH": sys.argv[1],
                                           "GEO_BLOCKED_COUNTRIES": "GB"})

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = mcp_shield.SecurityMiddleware(app)

    async def request(peer):
        sent = []
        async def send(message):
            sent.append(message)
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}
        await middleware({"type": "http", "method": "GET", "path": "/", "raw_path": b"/", "query_string": b"",
                          "headers": [(b"host", b"x")], "client": (peer, 5555)}, receive, send)
        body = b"".join(m.get("body", b"") for m in sent[1:])
        return sent[0]["status"], body

    status, body = await request("81.2.69.142")  # GB in MaxMind's test data
    assert status == 403 and json.loads(body)["detail"] == "Country GB is blocked", body
    assert (await request("216.160.83.56"))[0] == 200  # US
    print("ok")

asyncio.run(main())
'''
    done = subprocess.run([sys.executable, "-c", code, shared_geoip("GeoIP2-City-Test.mmdb")], cwd=HERE,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
