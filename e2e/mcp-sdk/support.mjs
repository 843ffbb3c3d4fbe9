// What the end-to-end servers and clients share: a stateless Streamable HTTP server around an
// SDK `Server` made per request, and a client run that prints a JSON summary (also on failure,
// then exiting 1).
import http from "node:http";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

/// Serves POST /mcp on 127.0.0.1:$PORT, a new server and transport per request (stateless).
export function serveStateless(makeServer) {
  http
    .createServer(async (req, res) => {
      if (req.url !== "/mcp" || req.method !== "POST") {
        res.writeHead(405).end();
        return;
      }
      const server = makeServer();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      res.on("close", () => {
        transport.close();
        server.close();
      });
      await server.connect(transport);
      await transport.handleRequest(req, res);
    })
    .listen(Number(process.env.PORT), "127.0.0.1");
}

/// The text items of a tool result, joined.
export const text = (result) => (result.content ?? []).map((c) => c.text).join("\n");

/// Connects a client named `name` to `${base}/mcp`, runs `work(client, summary)`, closes, and
/// prints the summary; on an error prints it and the summary so far, and exits 1.
export async function runClient(name, base, work) {
  const summary = {};
  try {
    const client = new Client({ name, version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`)));
    await work(client, summary);
    await client.close();
    console.log(JSON.stringify(summary, null, 2));
  } catch (e) {
    console.error(e);
    console.log(JSON.stringify(summary, null, 2));
    process.exit(1);
  }
}
