// The official MCP TypeScript SDK client, run against one MCP endpoint; prints a JSON summary
// of what it saw, without session ids or times, so two runs (directly and through
// mcp-shield) can be compared line for line. Exits 1 on any failure.
//
//   node client.mjs http://127.0.0.1:8080/mcp [--demo]
//
// --demo: the built-in demo server's tools (echo, add, a streaming one) instead of the
// reference server's.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const url = process.argv[2];
const demo = process.argv.includes("--demo");
const summary = {};

function text(result) {
  return (result.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("\n");
}

async function main() {
  const client = new Client({ name: "mcp-shield-e2e", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);
  summary.server = client.getServerVersion()?.name;
  summary.session = transport.sessionId ? "yes" : "no";
  const tools = await client.listTools();
  summary.tools = tools.tools.map((t) => t.name).sort();

  if (demo) {
    summary.echo = text(await client.callTool({ name: "echo", arguments: { message: "hello" } }));
    summary.add = text(await client.callTool({ name: "add", arguments: { a: 2, b: 3 } }));
  } else {
    summary.echo = text(await client.callTool({ name: "echo", arguments: { message: "hello" } }));
    summary.sum = text(await client.callTool({ name: "get-sum", arguments: { a: 2, b: 3 } }));
  }

  // A long-running tool: its progress must arrive while it runs, not all at the end.
  const progress = [];
  const started = Date.now();
  const longTool = demo
    ? "long_running"
    : "trigger-long-running-operation";
  const longArgs = demo ? { steps: 4, delay_ms: 500 } : { duration: 2, steps: 4 };
  const result = await client.callTool({ name: longTool, arguments: longArgs }, undefined, {
    onprogress: (p) => progress.push({ progress: p.progress, at: Date.now() - started }),
    timeout: 30000,
  });
  const finished = Date.now() - started;
  summary.long_running = {
    progress_notifications: progress.length,
    // The first notification came well before the result: streamed, not buffered.
    incremental: progress.length > 1 && progress[0].at < finished - 300,
    result: text(result).length > 0,
  };

  if (!demo) {
    // Server-initiated messages outside any request arrive on the GET stream the client opened
    // after initialize: simulated logging sends one at once and then every 5 s.
    const logged = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logged.push(n.params.level));
    await client.callTool({ name: "toggle-simulated-logging", arguments: {} });
    const waitUntil = Date.now() + 8000;
    while (logged.length === 0 && Date.now() < waitUntil) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await client.callTool({ name: "toggle-simulated-logging", arguments: {} });
    summary.get_stream_notifications = logged.length > 0;

    const resources = await client.listResources();
    summary.resources = resources.resources.length > 0;
    const first = resources.resources[0];
    const read = await client.readResource({ uri: first.uri });
    summary.resource_read = read.contents.length > 0;
    const prompts = await client.listPrompts();
    summary.prompts = prompts.prompts.map((p) => p.name).sort();
    const simple = prompts.prompts.find((p) => !(p.arguments ?? []).some((a) => a.required));
    const prompt = await client.getPrompt({ name: simple.name, arguments: {} });
    summary.prompt_messages = prompt.messages.length;
  }

  // Session end: DELETE.
  if (transport.sessionId) {
    await transport.terminateSession();
    summary.deleted = transport.sessionId === undefined ? "yes" : "no";
  }
  await client.close();
}

main()
  .then(() => {
    console.log(JSON.stringify(summary, null, 1));
  })
  .catch((error) => {
    console.error(`client failed against ${url}: ${error?.stack ?? error}`);
    console.log(JSON.stringify({ ...summary, error: String(error?.message ?? error) }, null, 1));
    process.exit(1);
  });
