#!/usr/bin/env python3
"""Interop check: the official Python SDK (PyPI `mcp` 2.x) as a 2026-07-28 (stateless)
client of mcpgate, with `Client(url, mode=MODE)` where MODE is "2026-07-28" (adopt the
modern era directly) or "auto" (discover first).

The gateway fronts server-everything over stdio, which speaks only 2025-11-25, so:
  * the client must end up on protocol 2026-07-28 (no session, no initialize);
  * tools/list shows the upstream's tools under `everything__NAME`;
  * tools/call `everything__echo` returns the echo;
  * tools/call `everything__trigger-elicitation-request` makes the legacy upstream send
    elicitation/create mid-call; the gateway turns it into an InputRequiredResult, the SDK
    answers it through elicitation_callback and retries, and the upstream's result carries
    the answer (a per-run nonce proves it is this answer).

Usage: py_modern.py URL [--mode 2026-07-28|auto]
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



async def run(url: str, mode: str) -> None:
    nonce = f"modern-{uuid.uuid4().hex[:8]}"
    asked: list[str] = []

    async def elicit(ctx, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(getattr(params, "message", ""))
        return types.ElicitResult(action="accept", content={"name": nonce, "check": True})

    async with Client(url, mode=mode, elicitation_callback=elicit) as c:
        check(c.protocol_version == MODERN, f"mode={mode}: negotiated {c.protocol_version!r}, expected {MODERN}")
        passed(f"mode={mode}: the client runs on {c.protocol_version}")

        names, cursor = [], None
        while True:
            page = await c.list_tools(cursor=cursor)
            names += [t.name for t in page.tools]
            cursor = page.next_cursor
            if not cursor:
                break
        check("everything__echo" in names, f"tools/list lacks everything__echo: {names}")
        check("everything__trigger-elicitation-request" in names, f"no elicitation tool: {names}")
        passed(f"tools/list: {len(names)} tools, everything__echo among them")

        r = await c.call_tool("everything__echo", {"message": nonce})
        check(not r.is_error and nonce in text_of(r), f"echo: {r}")
        passed("tools/call everything__echo")

        r = await c.call_tool("everything__trigger-elicitation-request", {})
        check(asked, "the elicitation callback was never called")
        check(not r.is_error and nonce in text_of(r) + str(r.structured_content),
              f"the upstream's result does not carry the answer {nonce}: {r}")
        passed("a legacy upstream's elicitation reached the callback as an input round trip, and its answer went back")
    print("PASS")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--mode", default=MODERN)
    a = ap.parse_args()
    try:
        anyio.run(run, a.url, a.mode)
    except CheckFailed as e:
        print(f"FAIL: {e}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
