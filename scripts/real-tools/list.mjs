// Lists the tools of published MCP servers (stdio, the official SDK client) and writes one
// `mcp-shield scan` row per tool and one per whole list to rows.jsonl. Run by
// scripts/real-tools-check.sh.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import fs from "node:fs";
const servers = {
  filesystem: ["node_modules/.bin/mcp-server-filesystem", ["/tmp"]],
  memory: ["node_modules/.bin/mcp-server-memory", []],
  thinking: ["node_modules/.bin/mcp-server-sequential-thinking", []],
  notion: ["node_modules/.bin/notion-mcp-server", []],
  context7: ["node_modules/.bin/context7-mcp", []],
  firecrawl: ["node_modules/.bin/firecrawl-mcp", []],
  kubernetes: ["node_modules/.bin/mcp-server-kubernetes", []],
  tavily: ["node_modules/.bin/tavily-mcp", []],
  exa: ["node_modules/.bin/exa-mcp-server", []],
  github: ["node_modules/.bin/mcp-server-github", []],
};
const out = fs.createWriteStream("rows.jsonl");
for (const [name, [cmd, args]] of Object.entries(servers)) {
  const client = new Client({ name: "fp-check", version: "1" });
  try {
    const transport = new StdioClientTransport({ command: cmd, args, env: { ...process.env, FIRECRAWL_API_KEY: "fc-x", TAVILY_API_KEY: "tvly-x", EXA_API_KEY: "x", GITHUB_PERSONAL_ACCESS_TOKEN: "x", NOTION_TOKEN: "x" }, stderr: "ignore" });
    await Promise.race([client.connect(transport), new Promise((_, r) => setTimeout(() => r(new Error("timeout")), 15000))]);
    const tools = (await client.listTools()).tools;
    // One row with the whole list (look-alikes within a list), as mcp-shield scan reads it.
    for (const tool of tools) {
      out.write(JSON.stringify({ id: `${name}:${tool.name}`, method: "POST", uri: "/mcp", headers: { "Content-Type": "application/json" }, body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", response: { jsonrpc: "2.0", id: 1, result: { tools: [tool] } } }) + "\n");
    }
    out.write(JSON.stringify({ id: `${name}:*`, method: "POST", uri: "/mcp", headers: { "Content-Type": "application/json" }, body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", response: { jsonrpc: "2.0", id: 1, result: { tools } } }) + "\n");
    console.error(`${name}: ${tools.length} tools`);
    await client.close();
  } catch (e) {
    console.error(`${name}: ${e.message}`);
  }
}
out.end();
setTimeout(() => process.exit(0), 500);
