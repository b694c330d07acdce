#!/usr/bin/env python3
"""Interop check: the official Python SDK (PyPI `mcp` 2.x) as a client of mcpgate.

Proves, over Streamable HTTP in the legacy (initialize handshake, 2025-11-25) mode, that
a stock client can use a gateway fronting server-everything over stdio, server-everything
over streamableHttp and mcp-server-time over stdio:
  * tools/list (following cursors) shows every upstream's tools under `PREFIX__NAME`;
  * tools/call reaches each upstream (echo, get_current_time);
  * notifications/progress from an upstream reach this client during its call;
  * a sampling/createMessage request from an upstream reaches this client's callback,
    and the callback's answer goes back into the upstream tool's result;
  * resources/read (URIs unchanged) and prompts/get (prefixed name) work.

An empty prefix (`--prefix-everything ""`) means unprefixed names, so the script can be
pointed at one server-everything directly: `--only everything --prefix-everything ""`.

Usage: py_client.py URL [--prefix-everything N] [--prefix-everything-http N]
                        [--prefix-time N] [--only everything,everything_http,time]
Prints one line per passed check; exits 1 with "FAIL: ..." on the first failure.
"""

import argparse
import json
import sys
import uuid
from datetime import datetime

import anyio
import mcp.types as types
from mcp import Client

from checks import CheckFailed, check, passed, text_of

SAMPLING_TEXT = "mcpgate-interop: fixed sampling answer"
STATIC_DOC_PREFIX = "demo://resource/static/document/"
UPSTREAMS = ("everything", "everything_http", "time")



def qualify(prefix: str, name: str) -> str:
    return f"{prefix}__{name}" if prefix else name


async def sampling_callback(ctx, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    # Echo the request's text back so the caller can tell its own request from another.
    asked = " ".join(m.content.text for m in params.messages if isinstance(m.content, types.TextContent))
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=f"{SAMPLING_TEXT} [{asked}]"),
        model="mcpgate-interop-fixed",
        stop_reason="endTurn",
    )


async def list_all(fetch, attr: str) -> list:
    items, cursor, pages = [], None, 0
    while True:
        page = await fetch(cursor=cursor)
        items += getattr(page, attr)
        pages += 1
        cursor = page.next_cursor
        if not cursor:
            return items
        check(pages < 100, f"{attr}/list: more than 100 pages, cursor never ends")


async def check_everything(client: Client, up: str, prefix: str, tools: set[str]) -> None:
    label = f"{up} [{prefix or 'unprefixed'}]"
    for name in ("echo", "trigger-long-running-operation", "trigger-sampling-request"):
        check(qualify(prefix, name) in tools, f"tools/list lacks {qualify(prefix, name)!r}")

    nonce = uuid.uuid4().hex
    res = await client.call_tool(qualify(prefix, "echo"), {"message": nonce})
    check(not res.is_error, f"{label} echo returned isError: {text_of(res)!r}")
    check(text_of(res) == f"Echo: {nonce}", f"{label} echo: expected 'Echo: {nonce}', got {text_of(res)!r}")
    passed(f"{label}: tools/call echo returned the text")

    progress: list[tuple[float, float | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total))

    res = await client.call_tool(
        qualify(prefix, "trigger-long-running-operation"), {"duration": 2, "steps": 4}, progress_callback=on_progress
    )
    seen = len(progress)  # counted when the result arrived
    check(not res.is_error, f"{label} long-running op returned isError: {text_of(res)!r}")
    check("Long running operation completed" in text_of(res), f"{label} long-running op: {text_of(res)!r}")
    check(seen >= 2, f"{label} long-running op: expected >=2 progress notifications before the result, got {seen}")
    values = [v for v, _ in progress]
    check(values == sorted(values), f"{label} progress values not increasing: {values}")
    passed(f"{label}: {seen} progress notifications arrived before the result ({values})")

    nonce = uuid.uuid4().hex
    res = await client.call_tool(qualify(prefix, "trigger-sampling-request"), {"prompt": nonce, "maxTokens": 20})
    out = text_of(res)
    check(not res.is_error, f"{label} sampling tool returned isError: {out!r}")
    check(SAMPLING_TEXT in out, f"{label} sampling tool result lacks our callback's answer: {out!r}")
    check(nonce in out, f"{label} sampling answer was not for this call's request (nonce {nonce}): {out!r}")
    passed(f"{label}: sampling request reached this client and the answer went back")

    prompts = {p.name for p in await list_all(client.list_prompts, "prompts")}
    name = qualify(prefix, "simple-prompt")
    check(name in prompts, f"prompts/list lacks {name!r}; has {sorted(prompts)}")
    got = await client.get_prompt(name)
    check(len(got.messages) >= 1 and got.messages[0].role == "user", f"{label} prompt: bad messages {got.messages}")
    check("simple prompt" in text_of(got), f"{label} prompt text: {text_of(got)!r}")
    passed(f"{label}: prompts/get {name} returned its message")


async def check_resource(client: Client) -> None:
    uris = sorted(r.uri for r in await list_all(client.list_resources, "resources"))
    static = [u for u in uris if u.startswith(STATIC_DOC_PREFIX)]
    check(static, f"resources/list has no {STATIC_DOC_PREFIX}* resource; has {uris[:10]}")
    uri = STATIC_DOC_PREFIX + "features.md" if STATIC_DOC_PREFIX + "features.md" in static else static[0]
    got = await client.read_resource(uri)
    check(got.contents, f"resources/read {uri}: no contents")
    first = got.contents[0]
    check(first.uri == uri, f"resources/read {uri}: contents[0].uri is {first.uri!r} (URIs must pass unchanged)")
    text = getattr(first, "text", "")
    check(len(text) > 20 and not text.startswith("Error reading file"), f"resources/read {uri}: text {text[:80]!r}")
    passed(f"resources/read {uri} returned {len(text)} chars")


async def check_time(client: Client, up: str, prefix: str, tools: set[str]) -> None:
    name = qualify(prefix, "get_current_time")
    check(name in tools, f"tools/list lacks {name!r}")
    res = await client.call_tool(name, {"timezone": "UTC"})
    check(not res.is_error, f"{name} returned isError: {text_of(res)!r}")
    data = res.structured_content or json.loads(text_of(res))
    check(data.get("timezone") == "UTC", f"{name}: timezone is {data.get('timezone')!r}, want 'UTC'")
    try:
        when = datetime.fromisoformat(data["datetime"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckFailed(f"{name}: unparseable datetime in {data!r}: {e}") from None
    check(when.utcoffset() is not None and when.utcoffset().total_seconds() == 0, f"{name}: not UTC: {when}")
    passed(f"{up} [{prefix or 'unprefixed'}]: tools/call get_current_time(UTC) = {when.isoformat()}")


async def run(args: argparse.Namespace) -> None:
    bad = set(args.only.split(",")) - set(UPSTREAMS) if args.only else set()
    check(not bad, f"--only takes a comma list of {UPSTREAMS}; got {args.only!r}")
    me = types.Implementation(name="mcpgate-interop-py", version="1.0.0")
    with anyio.fail_after(args.timeout):
        async with Client(args.url, mode="legacy", client_info=me, sampling_callback=sampling_callback,
                          cache=None, read_timeout_seconds=30) as client:
            await run_checks(client, args)


async def run_checks(client: Client, args: argparse.Namespace) -> None:
    prefixes = {"everything": args.prefix_everything, "everything_http": args.prefix_everything_http,
                "time": args.prefix_time}
    only = args.only.split(",") if args.only else list(UPSTREAMS)
    info = client.server_info
    passed(f"initialize: protocol {client.protocol_version}, server {info.name if info else '?'}")
    tools = {t.name for t in await list_all(client.list_tools, "tools")}
    for up in only:
        marker = qualify(prefixes[up], "get_current_time" if up == "time" else "echo")
        check(marker in tools, f"tools/list lacks {marker!r} (upstream {up}); got {sorted(tools)[:20]}...")
    passed(f"tools/list: {len(tools)} tools, all of {only} present")
    for up in only:
        await (check_time if up == "time" else check_everything)(client, up, prefixes[up], tools)
    if {"everything", "everything_http"} & set(only):
        await check_resource(client)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--prefix-everything", default="everything")
    p.add_argument("--prefix-everything-http", default="everything_http")
    p.add_argument("--prefix-time", default="time")
    p.add_argument("--only", default="", help="comma list of upstreams to check (default: all three)")
    p.add_argument("--timeout", type=float, default=90.0, help="whole-run limit in seconds")
    args = p.parse_args()
    try:
        anyio.run(run, args)
    except BaseException as e:  # noqa: BLE001 - report anything as one clear line
        while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
            e = e.exceptions[0]
        if isinstance(e, KeyboardInterrupt):
            raise
        if isinstance(e, TimeoutError):
            e = CheckFailed(f"run did not finish within {args.timeout}s")
        kind = "" if isinstance(e, CheckFailed) else f"{args.url}: {type(e).__name__}: "
        print(f"FAIL: {kind}{e}", file=sys.stderr)
        return 1
    print("PASS: py_client.py", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
