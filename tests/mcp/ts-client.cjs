// One session of the official MCP TypeScript SDK (@modelcontextprotocol/sdk) with hookhub,
// for tests/it/mcp.rs: it lists the tools, reads and acks the agent's events, creates a
// webhook and asks for one that is not the agent's, then prints what the SDK returned as
// one JSON object. It asserts nothing itself; the Rust test decides.
//
//   node ts-client.cjs http  HUB_URL AGENT_TOKEN
//   node ts-client.cjs stdio HUB_URL AGENT_TOKEN HOOKHUB_BINARY
//
// The SDK is installed by scripts/test under MCP_NODE_DIR (target/mcp-node).
const { createRequire } = require("node:module");
const path = require("node:path");

const sdk = createRequire(path.join(process.env.MCP_NODE_DIR, "package.json"));
const { Client } = sdk("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = sdk("@modelcontextprotocol/sdk/client/streamableHttp.js");
const { StdioClientTransport } = sdk("@modelcontextprotocol/sdk/client/stdio.js");

async function main() {
  const [kind, hub, token, binary] = process.argv.slice(2);
  const transport =
    kind === "http"
      ? new StreamableHTTPClientTransport(new URL(`${hub}/v1/mcp`), {
          requestInit: { headers: { Authorization: `Bearer ${token}` } },
        })
      : new StdioClientTransport({
          command: binary,
          args: ["mcp"],
          env: { HOOKHUB_URL: hub, HOOKHUB_AGENT_TOKEN: token, RUST_LOG: "warn" },
        });
  const client = new Client({ name: "hookhub-tests", version: "1.0.0" });
  await client.connect(transport);
  const out = { server: client.getServerVersion() };
  out.tools = (await client.listTools()).tools.map((t) => t.name);
  out.events = await client.callTool({ name: "next_events", arguments: { waitSeconds: 0 } });
  const ids = out.events.structuredContent.events.map((e) => e.deliveryId);
  out.acked = await client.callTool({ name: "ack_events", arguments: { deliveryIds: ids } });
  out.created = await client.callTool({ name: "create_webhook", arguments: { name: `by ${kind}` } });
  out.notFound = await client.callTool({
    name: "get_webhook",
    arguments: { webhookId: "whk_01J9Z8Q0000000000000000000" },
  });
  await client.close();
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ exception: String(e && e.stack ? e.stack : e) }) + "\n");
  process.exit(1);
});
