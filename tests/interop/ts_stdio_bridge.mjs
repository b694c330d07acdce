// Interop check: the official TypeScript SDK's StdioClientTransport (what a desktop
// client does: start a command and speak MCP on its stdin/stdout) runs
// `mcpgate stdio --url URL` and reaches a keyed gateway through it.
//
// Usage: node ts_stdio_bridge.mjs MCPGATE_BIN URL   (the key comes from MCPGATE_KEY)
// Prints one line per passed check; exits 1 with "FAIL: ..." on the first failure.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [bin, url] = process.argv.slice(2);
const check = (cond, msg) => { if (!cond) { console.log(`FAIL: ${msg}`); process.exit(1); } };

const transport = new StdioClientTransport({
  command: bin,
  args: ["stdio", "--url", url],
  env: { PATH: process.env.PATH ?? "", MCPGATE_KEY: process.env.MCPGATE_KEY ?? "" },
  stderr: "inherit",
});
const client = new Client({ name: "mcpgate-stdio-interop", version: "1.0.0" });
await client.connect(transport);
check(client.getServerVersion()?.name === "mcpgate", `server info: ${JSON.stringify(client.getServerVersion())}`);
console.log("ok   initialize through mcpgate stdio");

const { tools } = await client.listTools();
const names = tools.map((t) => t.name);
check(names.includes("fx__echo"), `tools: ${names.join(", ")}`);
console.log(`ok   tools/list (${names.length} tools)`);

const r = await client.callTool({ name: "fx__echo", arguments: { message: "via the bridge" } });
const text = r.content.filter((b) => b.type === "text").map((b) => b.text).join("");
check(text === "via the bridge", `echo answered ${JSON.stringify(r)}`);
console.log("ok   tools/call");

await client.close();
console.log("ok   closed");
