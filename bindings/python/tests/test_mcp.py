"""The official MCP Python SDK (2.x): an MCPServer's Streamable HTTP app behind the middleware,
the SDK's client through it."""

import asyncio
import json
import urllib.request

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import ADMIN_TOKEN


async def with_session(base, work):
    async with streamable_http_client(base + "/mcp") as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await work(session)


def statistics(base):
    request = urllib.request.Request(base + "/api/security/status")
    request.add_header("Authorization", f"Bearer {ADMIN_TOKEN}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())["statistics"]


def test_the_sdk_client_lists_and_calls_tools_through_the_middleware(mcp_server):
    async def work(session):
        tools = await session.list_tools()
        result = await session.call_tool("search", {"query": "blue widgets"})
        return [t.name for t in tools.tools], result

    names, result = asyncio.run(with_session(mcp_server, work))
    assert names == ["search", "count", "read_env"]
    assert not result.is_error
    assert result.content[0].text == "3 results for blue widgets"


def test_a_tool_call_carrying_an_injection_is_refused(mcp_server):
    before = statistics(mcp_server)["threat_detected"]

    async def work(session):
        return await session.call_tool("search", {"query": "1' UNION SELECT password FROM users--"})

    with pytest.raises(Exception) as refused:
        asyncio.run(with_session(mcp_server, work))
    assert "error" in str(refused.value).lower()
    assert statistics(mcp_server)["threat_detected"] == before + 1


def test_progress_notifications_stream_while_the_tool_runs(mcp_server):
    async def work(session):
        loop = asyncio.get_running_loop()
        started = loop.time()
        seen = []

        async def progress(value, total, message):
            seen.append((value, loop.time() - started))

        result = await session.call_tool("count", {"n": 3}, progress_callback=progress)
        return result, seen, loop.time() - started

    result, seen, took = asyncio.run(with_session(mcp_server, work))
    assert result.content[0].text == "counted to 3"
    assert [v for v, _ in seen] == [1, 2, 3]
    # The tool sleeps 0.4 s after each report: the first arrives while it still runs.
    assert seen[0][1] < took - 0.6, (seen, took)


def test_a_secret_in_a_tool_result_is_redacted_on_the_way_back(mcp_server):
    async def work(session):
        return await session.call_tool("read_env", {})

    result = asyncio.run(with_session(mcp_server, work))
    text = result.content[0].text
    assert "ghp_" not in text
    assert "GITHUB_TOKEN=[REDACTED:github]" in text
    assert text.startswith("DEBUG=false\n") and text.endswith("REGION=eu-west-1")
    findings = result.meta["mcp-shield/findings"]
    assert {"type": "secret", "family": "github", "action": "redacted", "location": "content[0].text"} in findings
