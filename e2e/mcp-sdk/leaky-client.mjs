// The official SDK client through mcp-shield in front of leaky-server.mjs (gateway config
// e2e/mcp-sdk/results.toml: secrets redacted, payment cards redacted for lookup_customer,
// injections wrapped, personal data otherwise alerted). Prints a JSON summary of what the
// client received; exits 1 on a failure to talk to the server.
//
//   node leaky-client.mjs http://127.0.0.1:8080
import { runClient, text } from "./support.mjs";

await runClient("mcp-shield-results-e2e", process.argv[2], async (client, summary) => {
  const config = await client.callTool({ name: "read_config", arguments: {} });
  summary.read_config = text(config);
  summary.read_config_meta = config._meta ?? null;
  const customer = await client.callTool({ name: "lookup_customer", arguments: {} });
  summary.lookup_customer = text(customer);
  summary.lookup_customer_structured = customer.structuredContent ?? null;
  const page = await client.callTool({ name: "fetch_page", arguments: {} });
  summary.fetch_page = text(page);
  summary.fetch_page_meta = page._meta ?? null;
  // Progress must arrive while the tool runs, not all at once with the result.
  const started = Date.now();
  const progress = [];
  const report = await client.callTool({ name: "export_report", arguments: {} }, undefined, {
    onprogress: (p) => progress.push({ at: Date.now() - started, progress: p.progress }),
  });
  const finished = Date.now() - started;
  summary.progress = progress.map((p) => p.progress);
  summary.progress_before_result_ms = finished - (progress[0]?.at ?? finished);
  summary.export_report = text(report);
});
