// A dual-era MCP server built on the TypeScript SDK v2 (`@modelcontextprotocol/server`), served
// over Streamable HTTP on 127.0.0.1 at /mcp. 2026-07-28 traffic goes to the SDK's stateless
// handler (`createMcpHandler`, legacy: 'reject'); 2025-era traffic goes to a session-based
// `WebStandardStreamableHTTPServerTransport` per session, so it can push `elicitation/create`
// to its client and keep `resources/subscribe`. The tests put mcpgate in front of it and check
// which era each client's requests arrived on.
//
// Tools:
//   ask    elicits `{answer: string}` from the client: pushed `elicitation/create` on the
//          session path, an `inputRequired` result on the 2026-07-28 path. Its text says which:
//          `legacy-push <answer>` or `modern-mrtr <answer>`.
//   touch  sends `notifications/resources/updated` for dual://counter to each legacy session
//          that subscribed to it, and to the 2026-07-28 `subscriptions/listen` streams that
//          asked for it; its text is the number of sessions told.
// Resource dual://counter (subscribable).
//
// Usage: node ts_dual_server.mjs [port] [--modern-only]   (port 0 by default). Prints
// `listening on http://127.0.0.1:<port>/mcp` once listening. With --modern-only every request
// goes to the 2026-07-28 handler, which refuses 2025-era traffic: a server of one era.

import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import {
    McpServer,
    WebStandardStreamableHTTPServerTransport,
    acceptedContent,
    createMcpHandler,
    inputRequired,
    isLegacyRequest,
    isInitializeRequest
} from '@modelcontextprotocol/server';

const COUNTER = 'dual://counter';
const ANSWER_SCHEMA = {
    type: 'object',
    properties: { answer: { type: 'string' } },
    required: ['answer']
};

const MODERN_ONLY = process.argv.includes('--modern-only');

/** Legacy session id -> { transport, server, subscribed } */
const sessions = new Map();

function build(era, session) {
    const server = new McpServer(
        { name: 'ts-dual', version: '1.0.0' },
        { capabilities: { tools: {}, resources: { subscribe: true } } }
    );
    server.registerTool('ask', { description: 'asks the client for an answer' }, async ctx => {
        if (era === 'modern') {
            const got = acceptedContent(ctx.mcpReq.inputResponses, 'answer');
            if (got && typeof got.answer === 'string') {
                return { content: [{ type: 'text', text: `modern-mrtr ${got.answer}` }] };
            }
            return inputRequired({
                inputRequests: {
                    answer: inputRequired.elicit({ message: 'your answer?', requestedSchema: ANSWER_SCHEMA })
                }
            });
        }
        if (process.env.DUAL_DEBUG) process.stderr.write('ask: eliciting on the session path\n');
        // Tied to the call, so it goes out on the call's own response stream (without
        // relatedRequestId the SDK sends it on the standalone GET stream, or drops it
        // when that stream is not open yet).
        const r = await ctx.mcpReq.elicitInput(
            { message: 'your answer?', requestedSchema: ANSWER_SCHEMA },
            { relatedRequestId: ctx.mcpReq.id }
        );
        if (process.env.DUAL_DEBUG) process.stderr.write(`ask: answered ${r.action}\n`);
        const answer = r.action === 'accept' ? r.content?.answer : `(${r.action})`;
        return { content: [{ type: 'text', text: `legacy-push ${answer}` }] };
    });
    server.registerTool('touch', { description: 'reports dual://counter updated' }, async () => {
        let told = 0;
        for (const s of sessions.values()) {
            if (s.subscribed.has(COUNTER)) {
                await s.server.server.sendResourceUpdated({ uri: COUNTER });
                told += 1;
            }
        }
        modern.notify.resourceUpdated(COUNTER);
        return { content: [{ type: 'text', text: `told ${told}` }] };
    });
    server.registerResource('counter', COUNTER, { mimeType: 'text/plain' }, async () => ({
        contents: [{ uri: COUNTER, text: `sessions ${sessions.size}` }]
    }));
    if (session) {
        server.server.setRequestHandler('resources/subscribe', async req => {
            session.subscribed.add(req.params.uri);
            return {};
        });
        server.server.setRequestHandler('resources/unsubscribe', async req => {
            session.subscribed.delete(req.params.uri);
            return {};
        });
    }
    return server;
}

const modern = createMcpHandler(ctx => build(ctx.era, null), { legacy: 'reject' });

async function legacy(request, body) {
    const sid = request.headers.get('mcp-session-id');
    if (sid) {
        const s = sessions.get(sid);
        if (!s) return new Response('unknown session', { status: 404 });
        return s.transport.handleRequest(request, { parsedBody: body });
    }
    if (request.method !== 'POST' || !isInitializeRequest(body)) {
        return new Response('session required', { status: 400 });
    }
    const session = { subscribed: new Set() };
    session.transport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: id => sessions.set(id, session)
    });
    session.transport.onclose = () => {
        for (const [id, s] of sessions) if (s === session) sessions.delete(id);
    };
    session.server = build('legacy', session);
    await session.server.connect(session.transport);
    return session.transport.handleRequest(request, { parsedBody: body });
}

async function handle(req, res) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const text = Buffer.concat(chunks).toString('utf8');
    let body;
    if (text.length > 0) {
        try {
            body = JSON.parse(text);
        } catch {
            res.writeHead(400).end('bad json');
            return;
        }
    }
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
        if (typeof v === 'string') headers.set(k, v);
        else if (Array.isArray(v)) headers.set(k, v.join(', '));
    }
    const url = `http://${req.headers.host ?? '127.0.0.1'}${req.url}`;
    const init = { method: req.method, headers };
    if (text.length > 0 && req.method !== 'GET' && req.method !== 'HEAD') init.body = text;
    const request = new Request(url, init);
    const isLegacy =
        !MODERN_ONLY &&
        (req.method === 'POST' ? await isLegacyRequest(request.clone(), body) : !!headers.get('mcp-session-id'));
    const response = isLegacy ? await legacy(request, body) : await modern.fetch(request);
    if (process.env.DUAL_DEBUG) {
        process.stderr.write(`${req.method} ${isLegacy ? 'legacy' : 'modern'} ${JSON.stringify(body?.method ?? body?.id ?? null)} sid=${headers.get('mcp-session-id')} -> ${response.status} ${response.headers.get('content-type')}\n`);
    }
    const out = {};
    response.headers.forEach((v, k) => (out[k] = v));
    res.writeHead(response.status, out);
    if (!response.body) {
        res.end();
        return;
    }
    const stream = Readable.fromWeb(response.body);
    res.on('close', () => stream.destroy());
    stream.on('error', () => res.end());
    stream.pipe(res);
}

const port = Number(process.argv.slice(2).find(a => /^\d+$/.test(a)) ?? 0);
const httpServer = http.createServer((req, res) => {
    handle(req, res).catch(e => {
        process.stderr.write(`ts_dual_server: ${e?.stack ?? e}\n`);
        if (!res.headersSent) res.writeHead(500);
        res.end();
    });
});
httpServer.listen(port, '127.0.0.1', () => {
    process.stdout.write(`listening on http://127.0.0.1:${httpServer.address().port}/mcp\n`);
});
