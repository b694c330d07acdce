// Interop check: the official TypeScript SDK's OAuth client (@modelcontextprotocol/sdk 1.x,
// OAuthClientProvider + StreamableHTTPClientTransport's authProvider, client/auth.js) against a
// gateway with auth = "keys", headless. This script plays both the client and the user:
//   * a connect without credentials gets 401; the SDK follows `resource_metadata` from the
//     challenge (RFC 9728), finds the authorization server's metadata (RFC 8414), registers
//     itself (RFC 7591) and asks to open the authorization URL (PKCE S256, `resource`);
//   * the "user" opens that URL (the consent page), pastes the tenant key into its form and
//     submits it; a wrong key first is refused on the page, with no redirect;
//   * the redirect reaches this script's loopback callback listener with the code and state;
//   * the SDK exchanges the code (transport.finishAuth), connects with the access token,
//     lists and calls a tool through the gateway;
//   * auth() again refreshes the token (refresh_token grant), and the new token works too.
//
// Usage: node ts_oauth.mjs URL KEY TOOL
//   URL   the gateway's MCP endpoint (http://127.0.0.1:PORT/mcp)
//   KEY   a tenant's API key (what the user pastes)
//   TOOL  a tool the tenant sees that echoes its `message` argument
// Prints one line per passed check and PASS; exits 1 with "FAIL: ..." on the first failure.

import http from "node:http";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError, auth } from "@modelcontextprotocol/sdk/client/auth.js";

class CheckFailed extends Error {}
const check = (cond, msg) => { if (!cond) throw new CheckFailed(msg); };
const passed = (msg) => console.log(`ok   ${msg}`);
const textOf = (blocks) => blocks.filter((b) => b.type === "text").map((b) => b.text).join("\n");

/// A loopback listener for the authorization response, as a native app has (RFC 8252).
async function callbackListener() {
  let deliver;
  const received = new Promise((resolve) => { deliver = resolve; });
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, "http://127.0.0.1");
    res.writeHead(200, { "content-type": "text/plain" }).end("You may close this window.");
    deliver(u.searchParams);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}/callback`;
  return { url, received, close: () => server.close() };
}

/// An in-memory OAuthClientProvider: what a CLI client keeps between runs.
class MemoryProvider {
  constructor(redirectUrl) {
    this._redirectUrl = redirectUrl;
    this._state = `st-${Math.random().toString(36).slice(2)}`;
    this.authorizationUrl = undefined;
  }
  get redirectUrl() { return this._redirectUrl; }
  get clientMetadata() {
    return {
      client_name: "mcpgate interop (TypeScript SDK)",
      redirect_uris: [this._redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  state() { return this._state; }
  clientInformation() { return this._client; }
  saveClientInformation(info) { this._client = info; }
  tokens() { return this._tokens; }
  saveTokens(tokens) { this._tokens = tokens; }
  redirectToAuthorization(url) { this.authorizationUrl = url; }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() { return this._verifier; }
}

/// The consent page's signed request field.
function requestField(html) {
  const m = html.match(/name="request" value="([^"]+)"/);
  check(m, `the consent page has a request field:\n${html.slice(0, 500)}`);
  return m[1].replaceAll("&amp;", "&").replaceAll("&quot;", '"');
}

async function submitConsent(action, request, key) {
  return fetch(action, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ request, key, decision: "approve" }).toString(),
  });
}

async function connectAndCall(url, provider, tool, message) {
  const client = new Client({ name: "mcpgate-oauth-interop", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  await client.connect(transport);
  const tools = (await client.listTools()).tools.map((t) => t.name);
  check(tools.includes(tool), `${tool} is listed: ${tools.join(", ")}`);
  const result = await client.callTool({ name: tool, arguments: { message } });
  check(!result.isError, `${tool} succeeded: ${JSON.stringify(result)}`);
  check(textOf(result.content).includes(message), `${tool} echoed: ${JSON.stringify(result)}`);
  await transport.terminateSession().catch(() => {});
  await client.close();
}

async function main() {
  const [url, key, tool] = process.argv.slice(2);
  check(url && key && tool, "usage: node ts_oauth.mjs URL KEY TOOL");
  const gateway = new URL(url).origin;
  const callback = await callbackListener();
  try {
    const provider = new MemoryProvider(callback.url);

    // 1. Connect: 401, then discovery, registration, and a URL for the user.
    const client = new Client({ name: "mcpgate-oauth-interop", version: "1.0.0" });
    const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
    let unauthorized = false;
    try {
      await client.connect(transport);
    } catch (e) {
      unauthorized = e instanceof UnauthorizedError;
      if (!unauthorized) throw e;
    }
    check(unauthorized, "connect without a token ends in UnauthorizedError");
    const info = provider.clientInformation();
    check(info?.client_id?.startsWith("mcpgc_"), `registered: ${JSON.stringify(info)}`);
    passed("401 → resource metadata → authorization server metadata → registered a public client");
    const authUrl = provider.authorizationUrl;
    check(authUrl, "the SDK asked to open an authorization URL");
    check(authUrl.origin === gateway && authUrl.pathname === "/oauth/authorize", `authorization URL ${authUrl}`);
    const p = authUrl.searchParams;
    check(p.get("code_challenge_method") === "S256" && p.get("code_challenge"), `PKCE S256: ${authUrl}`);
    check(p.get("resource") === url, `resource ${p.get("resource")} is the MCP URL ${url}`);
    passed(`authorization URL with PKCE S256 and resource=${p.get("resource")}`);

    // 2. The user: opens the page, tries a wrong key, then pastes the right one.
    const page = await fetch(authUrl, { redirect: "manual" });
    check(page.status === 200, `consent page status ${page.status}`);
    const html = await page.text();
    check(html.includes("mcpgate interop (TypeScript SDK)"), "the consent page names the client");
    const action = new URL("/oauth/authorize", gateway);
    const request = requestField(html);
    const wrong = await submitConsent(action, request, "mcpg_000000000000_" + "0".repeat(40));
    check(wrong.status === 401 && !wrong.headers.get("location"), `a wrong key is refused on the page (${wrong.status})`);
    passed("a wrong key is refused on the consent page, no redirect");
    const ok = await submitConsent(action, request, key);
    check(ok.status === 303, `consent answered ${ok.status}: ${await ok.text()}`);
    const location = ok.headers.get("location");
    check(location?.startsWith(callback.url), `redirected to the callback: ${location}`);
    await fetch(location); // the browser following the redirect to the loopback listener
    const answer = await callback.received;
    check(answer.get("state") === provider.state(), `state round trip: ${answer}`);
    const code = answer.get("code");
    check(code, `a code at the callback: ${answer}`);
    passed("the key pasted on the consent page; the code reached the loopback callback with its state");

    // 3. The SDK exchanges the code, then uses the token.
    await transport.finishAuth(code);
    const first = provider.tokens();
    check(first?.access_token?.startsWith("mcpgo_") && first.refresh_token, `tokens: ${JSON.stringify(first)}`);
    check(!first.access_token.includes(key), "the key is not inside the token");
    passed(`code exchanged (PKCE verifier) for an access token (expires_in ${first.expires_in}) and a refresh token`);
    await connectAndCall(url, provider, tool, "hello through OAuth");
    passed(`connected with the access token; tools/list and tools/call ${tool} through the gateway`);

    // 4. Refresh: auth() with a refresh token uses it, and the new token works.
    const outcome = await auth(provider, { serverUrl: url });
    check(outcome === "AUTHORIZED", `auth() with a refresh token: ${outcome}`);
    const second = provider.tokens();
    check(second.access_token && second.access_token !== first.access_token, "a new access token");
    await connectAndCall(url, provider, tool, "hello after refresh");
    passed("refreshed (refresh_token grant); the new access token works");
    console.log("PASS");
  } finally {
    callback.close();
  }
}

main().catch((e) => {
  console.log(`FAIL: ${e instanceof CheckFailed ? e.message : e?.stack ?? e}`);
  process.exit(1);
});
