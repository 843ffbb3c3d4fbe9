"""An MCP server of the official Python SDK (MCPServer, Streamable HTTP) behind the middleware."""

import asyncio

from mcp.server.mcpserver import Context, MCPServer

import mcp_shield

server = MCPServer("shield-test")


@server.tool()
async def search(query: str) -> str:
    """Searches the catalogue."""
    return f"3 results for {query}"


@server.tool()
async def count(n: int, ctx: Context) -> str:
    """Counts to n, reporting progress as it goes."""
    for i in range(1, n + 1):
        await ctx.report_progress(i, n)
        await asyncio.sleep(0.4)
    return f"counted to {n}"


@server.tool()
async def read_env() -> str:
    """Returns the deployment's environment file."""
    return "DEBUG=false\nGITHUB_TOKEN=ghp_R4nd0mT0k3nV4lu3W1thThirtySixChars12\nREGION=eu-west-1"


app = mcp_shield.SecurityMiddleware(
    server.streamable_http_app(),
    config_overrides={
        "ENABLE_THREAT_DETECTION": True,
        "ENABLE_RATE_LIMITING": True,
        "ENABLE_DDOS_PROTECTION": True,
        "ENABLE_IP_MANAGEMENT": True,
        "SECURITY_MCP_PATHS": "/mcp",
    },
)
