"""A FastAPI app with the middleware, under a real uvicorn server."""

import json
import time
import urllib.error
import urllib.request

from conftest import ADMIN_TOKEN


def call(base, path, method="GET", body=None, headers=None, client="198.51.100.1"):
    """(status, headers, body) of one request; `client` is the address the trusted proxy
    (127.0.0.1) forwards for."""
    request = urllib.request.Request(base + path, method=method, data=body)
    request.add_header("X-Forwarded-For", client)
    request.add_header("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_a_clean_request_reaches_the_app_with_the_rate_limit_headers(web):
    status, headers, body = call(web, "/items?q=hello", client="198.51.100.10")
    assert status == 200
    assert json.loads(body) == {"items": ["hello"], "count": 1}
    assert headers["x-ratelimit-limit"] == "5"
    assert headers["x-ratelimit-remaining"] == "4"


def test_a_json_body_is_inspected_and_replayed_to_the_app(web):
    payload = json.dumps({"name": "widget", "tags": ["a", "b"]}).encode()
    status, _, body = call(web, "/echo", "POST", payload, {"Content-Type": "application/json"}, client="198.51.100.11")
    assert status == 200
    assert json.loads(body) == {"name": "widget", "tags": ["a", "b"]}


def test_sql_injection_gets_the_seeds_403(web):
    status, headers, body = call(web, "/items?q=1%27%20OR%20%271%27%3D%271", client="198.51.100.12")
    assert status == 403
    answer = json.loads(body)
    assert answer["type"] == "threat_detected"
    assert answer["error"] == "Request blocked by threat detection"
    assert "sql_injection" in answer["threats"]
    assert headers["content-type"].startswith("application/json")
    # In a JSON body too.
    payload = json.dumps({"name": "x'; DROP TABLE users; --"}).encode()
    status, _, body = call(web, "/echo", "POST", payload, {"Content-Type": "application/json"}, client="198.51.100.12")
    assert status == 403 and "sql_injection" in json.loads(body)["threats"]


def test_an_address_is_rate_limited_with_retry_after(web):
    statuses = [call(web, "/items?q=a", client="198.51.100.13")[0] for _ in range(5)]
    assert statuses == [200] * 5
    status, headers, body = call(web, "/items?q=a", client="198.51.100.13")
    assert status == 429
    answer = json.loads(body)
    assert answer["type"] == "rate_limited"
    assert answer["error"] == "Too many requests"
    assert int(headers["retry-after"]) >= 1
    assert headers["x-ratelimit-remaining"] == "0"
    # Another address is not affected.
    assert call(web, "/items?q=a", client="198.51.100.14")[0] == 200


def test_the_admin_api_answers_with_the_token_and_refuses_without(web):
    status, _, body = call(web, "/api/security/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, client="198.51.100.15")
    assert status == 200
    document = json.loads(body)
    assert document["components"]["threat_detection"]["enabled"] is True
    assert document["components"]["rate_limiting"]["enabled"] is True
    assert document["statistics"]["total_requests"] >= 1
    status, _, body = call(web, "/api/security/status", client="198.51.100.15")
    assert status == 401
    status, _, body = call(web, "/api/security/threat/198.51.100.12", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, client="198.51.100.15")
    assert status == 200
    assert json.loads(body)["ip"] == "198.51.100.12"
    status, _, body = call(web, "/metrics", client="198.51.100.15")
    assert status == 200 and b"mcp_shield_requests_total" in body
    status, headers, body = call(web, "/dashboard", client="198.51.100.15")
    assert status == 200 and headers["content-type"].startswith("text/html"), headers


def test_a_custom_pattern_refuses_like_a_built_in_finding(web):
    status, _, body = call(web, "/items?q=forbidden-word", client="198.51.100.16")
    assert status == 403
    answer = json.loads(body)
    assert answer["type"] == "threat_detected"
    assert answer["threats"] == ["custom_attack"]
    # Nothing for the pattern to find: served.
    assert call(web, "/items?q=allowed", client="198.51.100.17")[0] == 200


def test_an_event_stream_is_passed_event_by_event(web):
    request = urllib.request.Request(web + "/stream")
    request.add_header("X-Forwarded-For", "198.51.100.18")
    started = time.monotonic()
    arrivals = []
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer:
            if line.startswith(b"data:"):
                arrivals.append((line.strip(), time.monotonic() - started))
    assert [a[0] for a in arrivals] == [b"data: 0", b"data: 1", b"data: 2"]
    # The app sleeps 0.3 s between events: the first arrives long before the last is written.
    assert arrivals[0][1] < 0.25, arrivals
    assert arrivals[2][1] - arrivals[0][1] > 0.45, arrivals


def test_unknown_paths_still_get_the_apps_own_404(web):
    status, _, body = call(web, "/nowhere", client="198.51.100.19")
    assert status == 404
    assert json.loads(body) == {"detail": "Not Found"}


def test_a_body_over_the_inspection_limit_is_refused_with_413(web):
    payload = json.dumps({"blob": "x" * (2 * 1024 * 1024)}).encode()
    status, _, body = call(web, "/echo", "POST", payload, {"Content-Type": "application/json"}, client="198.51.100.20")
    assert status == 413, body[:200]


def test_under_oversize_pass_the_rest_of_a_large_body_streams_to_the_app():
    from conftest import uvicorn_server

    env = {"SECURITY_MAX_INSPECT_BODY_BYTES": "1000", "SECURITY_OVERSIZE_BODY_ACTION": "pass"}
    with uvicorn_server("apps.web:app", env=env) as base:
        payload = json.dumps({"blob": "y" * 50_000, "tail": "end"}).encode()
        status, _, body = call(base, "/echo", "POST", payload, {"Content-Type": "application/json"}, client="198.51.100.21")
        assert status == 200
        assert json.loads(body) == {"blob": "y" * 50_000, "tail": "end"}


def test_websockets_pass_through_untouched(web):
    from websockets.sync.client import connect

    with connect(web.replace("http://", "ws://") + "/ws") as socket:
        socket.send("hello")
        assert socket.recv(timeout=5) == "echo: hello"
