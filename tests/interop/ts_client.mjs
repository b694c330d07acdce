// Interop check: the official TypeScript SDK (@modelcontextprotocol/sdk 1.x, Client +
// StreamableHTTPClientTransport) as a client of mcpgate.
//
// Proves, over Streamable HTTP (initialize handshake, protocol 2025-11-25), that a stock
// client can use a gateway fronting server-everything over stdio, server-everything over
// streamableHttp and mcp-server-time over stdio:
//   * tools/list (following cursors) shows every upstream's tools under `PREFIX__NAME`;
//   * tools/call reaches each upstream (echo, get_current_time);
//   * notifications/progress from an upstream reach this client during its call;
//   * a sampling/createMessage request from an upstream reaches this client's handler,
//     and the handler's answer goes back into the upstream tool's result;
//   * resources/read (URIs unchanged) and prompts/get (prefixed name) work;
//   * DELETE ends the session.
//
// An empty prefix (`--prefix-everything ""`) means unprefixed names, so the script can be
// pointed at one server-everything directly: `--only everything --prefix-everything ""`.
//
// Usage: node ts_client.mjs URL [--prefix-everything N] [--prefix-everything-http N]
//                               [--prefix-time N] [--only everything,everything_http,time]
// Prints one line per passed check; exits 1 with "FAIL: ..." on the first failure.

import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const SAMPLING_TEXT = "mcpgate-interop: fixed sampling answer";
const STATIC_DOC_PREFIX = "demo://resource/static/document/";
const UPSTREAMS = ["everything", "everything_http", "time"];

class CheckFailed extends Error {}
const check = (cond, msg) => { if (!cond) throw new CheckFailed(msg); };
const passed = (msg) => console.log(`ok   ${msg}`);
const qualify = (prefix, name) => (prefix ? `${prefix}__${name}` : name);
const textOf = (blocks) => blocks.filter((b) => b.type === "text").map((b) => b.text).join("\n");

async function listAll(fetch, key) {
  const items = [];
  let cursor;
  for (let pages = 1; ; pages++) {
    const page = await fetch(cursor === undefined ? {} : { cursor });
    items.push(...page[key]);
    cursor = page.nextCursor;
    if (!cursor) return items;
    check(pages < 100, `${key}/list: more than 100 pages, cursor never ends`);
  }
}

async function checkEverything(client, up, prefix, tools) {
  const label = `${up} [${prefix || "unprefixed"}]`;
  for (const name of ["echo", "trigger-long-running-operation", "trigger-sampling-request"]) {
    check(tools.has(qualify(prefix, name)), `tools/list lacks '${qualify(prefix, name)}'`);
  }

  let nonce = randomUUID();
  let res = await client.callTool({ name: qualify(prefix, "echo"), arguments: { message: nonce } });
  check(!res.isError, `${label} echo returned isError: ${textOf(res.content)}`);
  check(textOf(res.content) === `Echo: ${nonce}`, `${label} echo: expected 'Echo: ${nonce}', got '${textOf(res.content)}'`);
  passed(`${label}: tools/call echo returned the text`);

  const progress = [];
  res = await client.callTool(
    { name: qualify(prefix, "trigger-long-running-operation"), arguments: { duration: 2, steps: 4 } },
    undefined,
    { onprogress: (p) => progress.push(p.progress) },
  );
  const seen = progress.length; // counted when the result arrived
  check(!res.isError, `${label} long-running op returned isError: ${textOf(res.content)}`);
  check(textOf(res.content).includes("Long running operation completed"), `${label} long-running op: ${textOf(res.content)}`);
  check(seen >= 2, `${label} long-running op: expected >=2 progress notifications before the result, got ${seen}`);
  check(progress.every((v, i) => i === 0 || v > progress[i - 1]), `${label} progress values not increasing: ${progress}`);
  passed(`${label}: ${seen} progress notifications arrived before the result ([${progress}])`);

  nonce = randomUUID();
  res = await client.callTool({ name: qualify(prefix, "trigger-sampling-request"), arguments: { prompt: nonce, maxTokens: 20 } });
  const out = textOf(res.content);
  check(!res.isError, `${label} sampling tool returned isError: ${out}`);
  check(out.includes(SAMPLING_TEXT), `${label} sampling tool result lacks our handler's answer: ${out}`);
  check(out.includes(nonce), `${label} sampling answer was not for this call's request (nonce ${nonce}): ${out}`);
  passed(`${label}: sampling request reached this client and the answer went back`);

  const prompts = new Set((await listAll((p) => client.listPrompts(p), "prompts")).map((p) => p.name));
  const name = qualify(prefix, "simple-prompt");
  check(prompts.has(name), `prompts/list lacks '${name}'; has ${[...prompts].sort()}`);
  const got = await client.getPrompt({ name });
  check(got.messages.length >= 1 && got.messages[0].role === "user", `${label} prompt: bad messages ${JSON.stringify(got.messages)}`);
  const promptText = textOf(got.messages.map((m) => m.content));
  check(promptText.includes("simple prompt"), `${label} prompt text: '${promptText}'`);
  passed(`${label}: prompts/get ${name} returned its message`);
}

async function checkResource(client) {
  const uris = (await listAll((p) => client.listResources(p), "resources")).map((r) => r.uri).sort();
  const statics = uris.filter((u) => u.startsWith(STATIC_DOC_PREFIX));
  check(statics.length > 0, `resources/list has no ${STATIC_DOC_PREFIX}* resource; has ${uris.slice(0, 10)}`);
  const uri = statics.includes(`${STATIC_DOC_PREFIX}features.md`) ? `${STATIC_DOC_PREFIX}features.md` : statics[0];
  const got = await client.readResource({ uri });
  check(got.contents.length > 0, `resources/read ${uri}: no contents`);
  const first = got.contents[0];
  check(first.uri === uri, `resources/read ${uri}: contents[0].uri is '${first.uri}' (URIs must pass unchanged)`);
  const text = first.text ?? "";
  check(text.length > 20 && !text.startsWith("Error reading file"), `resources/read ${uri}: text '${text.slice(0, 80)}'`);
  passed(`resources/read ${uri} returned ${text.length} chars`);
}

async function checkTime(client, up, prefix, tools) {
  const name = qualify(prefix, "get_current_time");
  check(tools.has(name), `tools/list lacks '${name}'`);
  const res = await client.callTool({ name, arguments: { timezone: "UTC" } });
  check(!res.isError, `${name} returned isError: ${textOf(res.content)}`);
  let data = res.structuredContent;
  if (!data) {
    try { data = JSON.parse(textOf(res.content)); } catch (e) { throw new CheckFailed(`${name}: result is not JSON: ${textOf(res.content)}`); }
  }
  check(data.timezone === "UTC", `${name}: timezone is '${data.timezone}', want 'UTC'`);
  check(/(Z|[+-]00:00)$/.test(data.datetime ?? "") && !Number.isNaN(Date.parse(data.datetime)), `${name}: unparseable or non-UTC datetime in ${JSON.stringify(data)}`);
  passed(`${up} [${prefix || "unprefixed"}]: tools/call get_current_time(UTC) = ${data.datetime}`);
}

async function run(opts, url) {
  const prefixes = { everything: opts["prefix-everything"], everything_http: opts["prefix-everything-http"], time: opts["prefix-time"] };
  const only = opts.only ? opts.only.split(",") : UPSTREAMS;
  check(only.every((u) => UPSTREAMS.includes(u)), `--only takes a comma list of ${UPSTREAMS}; got '${opts.only}'`);

  const client = new Client({ name: "mcpgate-interop-ts", version: "1.0.0" }, { capabilities: { sampling: {} } });
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    // Echo the request's text back so the caller can tell its own request from another.
    const asked = req.params.messages.map((m) => (m.content.type === "text" ? m.content.text : "")).join(" ");
    return { role: "assistant", content: { type: "text", text: `${SAMPLING_TEXT} [${asked}]` }, model: "mcpgate-interop-fixed", stopReason: "endTurn" };
  });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);
  passed(`initialize: protocol ${transport.protocolVersion}, server ${client.getServerVersion()?.name}, session ${transport.sessionId ? "yes" : "none"}`);

  const tools = new Set((await listAll((p) => client.listTools(p), "tools")).map((t) => t.name));
  for (const up of only) {
    const marker = qualify(prefixes[up], up === "time" ? "get_current_time" : "echo");
    check(tools.has(marker), `tools/list lacks '${marker}' (upstream ${up}); got ${[...tools].sort().slice(0, 20)}...`);
  }
  passed(`tools/list: ${tools.size} tools, all of ${only} present`);
  for (const up of only) await (up === "time" ? checkTime : checkEverything)(client, up, prefixes[up], tools);
  if (only.some((u) => u !== "time")) await checkResource(client);

  if (transport.sessionId) {
    await transport.terminateSession();
    passed("DELETE ended the session");
  }
  await client.close();
}

function main() {
  const { values: opts, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      "prefix-everything": { type: "string", default: "everything" },
      "prefix-everything-http": { type: "string", default: "everything_http" },
      "prefix-time": { type: "string", default: "time" },
      only: { type: "string", default: "" },
      timeout: { type: "string", default: "90" },
    },
  });
  const fail = (e) => {
    const kind = e instanceof CheckFailed ? "" : `${positionals[0]}: ${e?.name ?? "Error"}: `;
    const cause = e?.cause ? ` (${e.cause.code ?? e.cause.message})` : "";
    console.error(`FAIL: ${kind}${e?.message ?? e}${cause}`);
    process.exit(1);
  };
  if (positionals.length !== 1) fail(new CheckFailed("usage: ts_client.mjs URL [--prefix-everything N] [--prefix-everything-http N] [--prefix-time N] [--only LIST]"));
  setTimeout(() => fail(new CheckFailed(`run did not finish within ${opts.timeout}s`)), Number(opts.timeout) * 1000).unref();
  run(opts, positionals[0]).then(() => { console.log("PASS: ts_client.mjs"); process.exit(0); }, fail);
}

export { checkEverything, checkResource, checkTime }; // for ad-hoc runs over other transports
if (import.meta.url === pathToFileURL(process.argv[1]).href) main();
