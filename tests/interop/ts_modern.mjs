// Interop check: the official TypeScript SDK v2 client (@modelcontextprotocol/client) as a
// 2026-07-28 client of mcpgate, with `versionNegotiation: { mode }` where mode is 'auto'
// (probe with server/discover, fall back to initialize) or a pin on 2026-07-28.
//
// The gateway fronts server-everything over stdio, which speaks only 2025-11-25, so:
//   * the client must negotiate 2026-07-28;
//   * tools/list shows everything__echo; tools/call echo returns the echo;
//   * tools/call everything__trigger-elicitation-request makes the legacy upstream send
//     elicitation/create mid-call; the gateway answers with an InputRequiredResult, the SDK
//     fulfils it through the elicitation/create handler and retries, and the upstream's
//     result carries the answer (a per-run nonce proves it is this answer).
//
// Usage: node ts_modern.mjs URL [--mode auto|pin]
// Prints one line per passed check and PASS; exits 1 with "FAIL: ..." on the first failure.
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

const MODERN = '2026-07-28';
const [url, ...rest] = process.argv.slice(2);
const modeArg = rest[rest.indexOf('--mode') + 1] ?? 'auto';
const mode = modeArg === 'pin' ? { pin: MODERN } : 'auto';

function check(cond, msg) {
  if (!cond) {
    console.log(`FAIL: ${msg}`);
    process.exit(1);
  }
}
const passed = (msg) => console.log(`ok   ${msg}`);
const textOf = (r) => (r.content ?? []).filter((b) => b.type === 'text').map((b) => b.text).join('\n');

const nonce = `modern-ts-${Math.random().toString(16).slice(2, 10)}`;
let asked = 0;
const client = new Client(
  { name: 'mcpgate-interop-ts-modern', version: '1.0.0' },
  { capabilities: { elicitation: {} }, versionNegotiation: { mode } },
);
client.setRequestHandler('elicitation/create', async () => {
  asked += 1;
  return { action: 'accept', content: { name: nonce, check: true } };
});

try {
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  const v = client.getNegotiatedProtocolVersion();
  check(v === MODERN, `mode=${modeArg}: negotiated ${v}, expected ${MODERN}`);
  passed(`mode=${modeArg}: negotiated ${v}`);

  const names = [];
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : undefined);
    names.push(...page.tools.map((t) => t.name));
    cursor = page.nextCursor;
  } while (cursor);
  check(names.includes('everything__echo'), `tools/list lacks everything__echo: ${names}`);
  passed(`tools/list: ${names.length} tools, everything__echo among them`);

  const echo = await client.callTool({ name: 'everything__echo', arguments: { message: nonce } });
  check(!echo.isError && textOf(echo).includes(nonce), `echo: ${JSON.stringify(echo)}`);
  passed('tools/call everything__echo');

  const r = await client.callTool({ name: 'everything__trigger-elicitation-request', arguments: {} });
  check(asked > 0, 'the elicitation/create handler was never called');
  const all = textOf(r) + JSON.stringify(r.structuredContent ?? {});
  check(!r.isError && all.includes(nonce), `the upstream's result lacks the answer ${nonce}: ${JSON.stringify(r)}`);
  passed("a legacy upstream's elicitation was fulfilled as an input round trip, and its answer went back");
  await client.close();
  console.log('PASS');
} catch (e) {
  console.log(`FAIL: ${e?.stack ?? e}`);
  process.exit(1);
}
