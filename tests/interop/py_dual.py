#!/usr/bin/env python3
"""Interop check: the Python SDK (PyPI `mcp` 2.x) through mcpgate to ts_dual_server.mjs, a
TypeScript SDK v2 server that offers both eras (2025-11-25 with sessions, 2026-07-28 stateless).

With --mode legacy the client runs on 2025-11-25; the gateway must reach the upstream over a
session-based connection, so:
  * tools/call PREFIX ask is answered by the upstream's pushed elicitation/create, which the
    gateway relays to this client: the result reads `legacy-push <nonce>`;
  * resources/subscribe dual://counter succeeds, and after tools/call PREFIX touch the
    upstream's notifications/resources/updated reaches this client.
With --mode 2026-07-28 the client is stateless; the gateway must use the stateless upstream
connection: the upstream asks through an input-required result, the client answers and
retries, and the result reads `modern-mrtr <nonce>`.

With --modern-only (the server then speaks only 2026-07-28), the legacy client is bridged:
`ask` reads `modern-mrtr <nonce>`, and its resources/subscribe is carried upstream by a
subscriptions/listen stream, whose notifications/resources/updated still reach it.

Usage: py_dual.py URL --mode legacy|2026-07-28 [--prefix dual__] [--modern-only]
Prints one line per passed check and PASS; exits 1 with "FAIL: ..." on the first failure.
"""

import argparse
import sys
import uuid

import anyio
import mcp.types as types
from mcp import Client

from checks import CheckFailed, check, passed, text_of

MODERN = "2026-07-28"
COUNTER = "dual://counter"


async def run(url: str, mode: str, prefix: str, modern_only: bool) -> None:
    nonce = f"dual-{uuid.uuid4().hex[:8]}"
    asked: list[str] = []
    updated = anyio.Event()

    async def elicit(ctx, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(getattr(params, "message", ""))
        print(f"elicitation asked: {asked[-1]!r}", file=sys.stderr, flush=True)
        return types.ElicitResult(action="accept", content={"answer": nonce})

    async def on_message(msg) -> None:
        root = getattr(msg, "root", msg)
        if isinstance(root, types.ResourceUpdatedNotification) and str(root.params.uri) == COUNTER:
            updated.set()

    with anyio.fail_after(60):
        async with Client(url, mode=mode, elicitation_callback=elicit, message_handler=on_message,
                          read_timeout_seconds=30) as c:
            modern = mode == MODERN
            check((c.protocol_version == MODERN) == modern, f"mode={mode}: negotiated {c.protocol_version!r}")
            passed(f"mode={mode}: the client runs on {c.protocol_version}")

            r = await c.call_tool(f"{prefix}ask", {})
            want = f"{'modern-mrtr' if modern or modern_only else 'legacy-push'} {nonce}"
            check(asked, "the elicitation callback was never called")
            check(not r.is_error and text_of(r) == want, f"{prefix}ask: want {want!r}, got {r}")
            passed(f"{prefix}ask: the upstream's elicitation came back as {text_of(r)!r}")

            if not modern:
                await c.subscribe_resource(COUNTER)
                passed(f"resources/subscribe {COUNTER}")
                r = await c.call_tool(f"{prefix}touch", {})
                check(not r.is_error, f"{prefix}touch: {r}")
                with anyio.fail_after(10):
                    await updated.wait()
                passed(f"notifications/resources/updated {COUNTER} reached the client ({text_of(r)})")
    print("PASS", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--mode", required=True, choices=["legacy", MODERN])
    ap.add_argument("--prefix", default="dual__")
    ap.add_argument("--modern-only", action="store_true")
    a = ap.parse_args()
    try:
        anyio.run(run, a.url, a.mode, a.prefix, a.modern_only)
    except CheckFailed as e:
        print(f"FAIL: {e}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
