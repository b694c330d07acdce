#!/usr/bin/env python3
"""Interop check: a 2026-07-28 upstream (py_modern_server.py, built on the Python SDK)
behind mcpgate, used by the Python SDK as a client of either era.

The gateway fronts the upstream as `modern`, so its tools are `modern__echo`,
`modern__ask_name` (asks for input with an InputRequiredResult) and
`modern__slow_progress`.
  * mode="legacy" (initialize, a session): the upstream's InputRequiredResult reaches this
    client as an elicitation/create request on its call's stream; the answer goes back to the
    upstream as inputResponses on a retry, and the result carries this run's nonce. Progress
    from the upstream arrives as notifications/progress.
  * mode="2026-07-28": the input request reaches the client as an InputRequiredResult; the SDK
    retries with the gateway's requestState, and the result carries the nonce.

Usage: py_bridge.py URL
Prints one line per passed check and PASS; exits 1 with "FAIL: ..." on the first failure.
"""

import sys
import uuid

import anyio
import mcp.types as types
from mcp import Client

from checks import CheckFailed, check, passed, text_of



async def run(url: str) -> None:
    for mode in ("legacy", "2026-07-28"):
        nonce = f"n{uuid.uuid4().hex[:8]}"
        asked: list[str] = []

        async def elicit(ctx, params):
            asked.append(getattr(params, "message", ""))
            return types.ElicitResult(action="accept", content={"name": nonce})

        async with Client(url, mode=mode, elicitation_callback=elicit) as c:
            want = "2026-07-28" if mode != "legacy" else "2025-11-25"
            check(c.protocol_version == want, f"mode={mode}: negotiated {c.protocol_version!r}")
            r = await c.call_tool("modern__echo", {"message": nonce})
            check(text_of(r) == nonce, f"mode={mode}: echo: {r}")
            passed(f"mode={mode}: tools/call reaches the 2026-07-28 upstream")

            r = await c.call_tool("modern__ask_name", {})
            check(asked, f"mode={mode}: the elicitation callback was never called")
            check(text_of(r) == f"Hello, {nonce}!", f"mode={mode}: ask_name: {r}")
            passed(f"mode={mode}: the upstream's input request was answered by this client ({len(asked)} ask)")

            if mode == "legacy":
                seen: list[float] = []

                async def progress(p: float, total: float | None, message: str | None) -> None:
                    seen.append(p)

                r = await c.call_tool("modern__slow_progress", {"steps": 3}, progress_callback=progress)
                check(text_of(r) == "done 3", f"slow_progress: {r}")
                check(len(seen) == 3 and seen == sorted(seen), f"progress from the upstream: {seen}")
                passed("progress from the 2026-07-28 upstream reaches a session-based client")
    print("PASS")


def main() -> None:
    try:
        anyio.run(run, sys.argv[1])
    except CheckFailed as e:
        print(f"FAIL: {e}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
