"""What the Python interop scripts share: a failed check, the PASS/FAIL lines they print,
and the text of a tool or prompt result."""

import mcp.types as types


class CheckFailed(Exception):
    pass


def check(cond: object, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


def passed(msg: str) -> None:
    print(f"ok   {msg}", flush=True)


def text_of(result: types.CallToolResult | types.GetPromptResult) -> str:
    blocks = result.content if isinstance(result, types.CallToolResult) else [m.content for m in result.messages]
    return "\n".join(b.text for b in blocks if isinstance(b, types.TextContent))
