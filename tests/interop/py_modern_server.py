#!/usr/bin/env python3
"""A real MCP server on the official Python SDK (PyPI `mcp` 2.x), for use as a "modern"
upstream behind mcpgate: Streamable HTTP on /mcp, serving the stateless 2026-07-28 revision
(one self-contained POST per request, no initialize, no Mcp-Session-Id) and, on the same
endpoint, the 2025-11-25 initialize handshake with a session.

The SDK picks the era per request from the `MCP-Protocol-Version` header: a 2026-07-28 POST
goes to its single-exchange entry; no header or a handshake-era version goes to the session
transport.

Server name `py-modern`. It serves:
  * tool `echo {message}`: returns the message as its only text block;
  * tool `ask_name {}`: asks for a `name` through a form elicitation. At 2026-07-28 the SDK
    answers the first call with an InputRequiredResult (`inputRequests` plus a sealed
    `requestState`) and finishes on the client's retry with `inputResponses`; at 2025-11-25
    it sends `elicitation/create` mid-call. Returns `Hello, <name>!` on accept, otherwise
    `no name (<action>)`;
  * tool `slow_progress {steps}`: sends `steps` progress notifications about 50 ms apart
    (when the call carries a progressToken), then returns `done <steps>`;
  * prompt `greet {who}`: one user message `Say hello to <who>`;
  * resource `py://readme` (text/plain): `py-modern readme`.

Usage: py_modern_server.py [--port N]   (binds 127.0.0.1; 0 picks a free port)
Prints `listening on http://127.0.0.1:PORT/mcp` once it accepts connections, then serves
until killed.
"""

import argparse
import os
import socket
import sys
from typing import Annotated

import anyio
import uvicorn
from pydantic import BaseModel, Field

from mcp.server.mcpserver import Context, Elicit, ElicitationResult, MCPServer, Resolve
from mcp.server.transport_security import TransportSecuritySettings

HOST = "127.0.0.1"
PATH = "/mcp"

mcp = MCPServer("py-modern", version="1.0.0")


@mcp.tool(description="Echo the message back unchanged.", structured_output=False)
def echo(message: str) -> str:
    return message


class NameForm(BaseModel):
    name: str = Field(description="Your name")


def ask_for_name() -> Elicit[NameForm]:
    """Resolver: the SDK renders this as a form elicitation on either protocol era."""
    return Elicit("What is your name?", NameForm)


@mcp.tool(description="Ask the user for their name (form elicitation), then greet them.", structured_output=False)
def ask_name(answer: Annotated[ElicitationResult[NameForm], Resolve(ask_for_name)]) -> str:
    if answer.action == "accept":
        return f"Hello, {answer.data.name}!"
    return f"no name ({answer.action})"


@mcp.tool(
    description="Send `steps` progress notifications about 50 ms apart, then finish.", structured_output=False
)
async def slow_progress(steps: int, ctx: Context) -> str:
    for i in range(1, steps + 1):
        # A no-op when the request carries no progressToken.
        await ctx.report_progress(i, steps, f"step {i}/{steps}")
        await anyio.sleep(0.05)
    return f"done {steps}"


@mcp.prompt(description="A prompt asking to say hello to someone.")
def greet(who: str) -> str:
    return f"Say hello to {who}"


@mcp.resource("py://readme", name="readme", description="The py-modern readme.", mime_type="text/plain")
def readme() -> str:
    return "py-modern readme"


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: object) -> None:
        # A test fixture: on SIGTERM/SIGINT exit at once instead of draining open SSE streams
        # and legacy sessions (uvicorn's graceful shutdown), which takes seconds and logs noise.
        sys.stdout.flush()
        os._exit(0)


async def serve(port: int) -> int:
    app = mcp.streamable_http_app(
        streamable_http_path=PATH,
        # Tests reach it as 127.0.0.1:PORT, possibly through a gateway that forwards any Host;
        # the SDK's localhost default would check Host/Origin, so switch that check off.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        host=HOST,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as e:
        sys.exit(f"py_modern_server: cannot bind {HOST}:{port}: {e}")
    sock.listen(128)
    sock.setblocking(False)
    bound = sock.getsockname()[1]
    server = _Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    stopped = anyio.Event()

    async def run_server() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            stopped.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_server)
        # uvicorn sets `started` once the lifespan has run and the socket is being served.
        while not server.started and not stopped.is_set():
            await anyio.sleep(0.01)
        if server.started:
            print(f"listening on http://{HOST}:{bound}{PATH}", flush=True)
    return 0 if server.started else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    sys.exit(anyio.run(serve, a.port))


if __name__ == "__main__":
    main()
