// The official SDK client through mcp-shield in front of rug-pull-server.mjs: the first
// listing pins both tools; after the server changes `weather`, the client must no longer see
// it and its calls must be refused, while `add` keeps working; once an operator approves the
// change (admin API), `weather` is back. Prints a JSON summary; exits 1 on any failure.
//
//   node rug-pull-client.mjs http://127.0.0.1:8080 ADMIN_TOKEN
import { runClient, text } from "./support.mjs";

const base = process.argv[2];
const token = process.argv[3];

const names = async (client) => (await client.listTools()).tools.map((t) => t.name).sort();

async function refusal(client, name, args) {
  try {
    const result = await client.callTool({ name, arguments: args });
    return { refused: false, text: text(result) };
  } catch (e) {
    return { refused: true, code: e.code, message: String(e.message) };
  }
}

await runClient("mcp-shield-rug-pull-e2e", base, async (client, summary) => {
  summary.first_listing = await names(client);
  summary.weather_before = text(await client.callTool({ name: "weather", arguments: { city: "Oslo" } }));

  summary.after_change = await names(client);
  summary.weather_call_after_change = await refusal(client, "weather", { city: "Oslo" });
  summary.add_after_change = text(await client.callTool({ name: "add", arguments: { a: 2, b: 3 } }));

  const tools = await (await fetch(`${base}/api/security/tools`, {
    headers: { authorization: `Bearer ${token}` },
  })).json();
  summary.pending = tools.pending.map((p) => ({ name: p.name, change: p.change, fields: p.diff.map((d) => d.field) }));

  const approved = await fetch(`${base}/api/security/tools/approve`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "weather" }),
  });
  summary.approve_status = approved.status;
  summary.after_approval = await names(client);
  summary.weather_after_approval = text(
    await client.callTool({ name: "weather", arguments: { city: "Oslo", notes: "" } }),
  );
});
