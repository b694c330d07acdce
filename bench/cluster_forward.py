#!/usr/bin/env python3
"""bench/cluster-forward's client (httpx2, from tests/interop/.venv): latency and
throughput of tools/call on a session's own replica (direct) and through another
replica (forwarded). Usage: cluster_forward.py OWNER_URL PEER_URL N C SECS"""
import asyncio, statistics, sys, time
import httpx2 as httpx

H = {"content-type": "application/json", "accept": "application/json, text/event-stream",
     "mcp-protocol-version": "2025-11-25"}

async def session(c, url):
    r = await c.post(url, headers=H, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "fwdbench", "version": "0"}}})
    r.raise_for_status()
    sid = r.headers["mcp-session-id"]
    h = dict(H, **{"mcp-session-id": sid})
    await c.post(url, headers=h, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    return h

async def call(c, url, h, i):
    t = time.perf_counter()
    r = await c.post(url, headers=h, json={"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                            "params": {"name": "fx__echo", "arguments": {"message": "x"}}})
    assert r.status_code == 200 and '"result"' in r.text, (r.status_code, r.text[:200])
    return time.perf_counter() - t

def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(len(xs) * p))] * 1e3

async def main():
    owner, peer, n, conc, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=conc * 2)) as c:
        h = await session(c, owner)
        for i in range(100):
            await call(c, owner, h, i); await call(c, peer, h, i)
        lat = {"direct": [], "forwarded": []}
        for i in range(n):
            lat["direct"].append(await call(c, owner, h, i))
            lat["forwarded"].append(await call(c, peer, h, i))
        for k, v in lat.items():
            print(f"sequential {k:9}: n={len(v)} p50={pct(v, .5):.3f} ms p90={pct(v, .9):.3f} ms p99={pct(v, .99):.3f} ms")
        for k, url in (("direct", owner), ("forwarded", peer)):
            hs = [await session(c, owner) for _ in range(conc)]
            done = 0; stop = time.perf_counter() + secs
            async def worker(hh):
                nonlocal done
                i = 0
                while time.perf_counter() < stop:
                    await call(c, url, hh, i); i += 1; done += 1
            t = time.perf_counter()
            await asyncio.gather(*(worker(hh) for hh in hs))
            el = time.perf_counter() - t
            print(f"C={conc} {k:9}: {done} calls in {el:.1f} s = {done / el:.0f} calls/s")

asyncio.run(main())
