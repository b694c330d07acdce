"""bench/raw_list.py URL N — `tools/list` as the wire sees it.

One HTTP/1.1 keep-alive connection (stdlib `http.client`) POSTs N
2026-07-28 `tools/list` requests (no session needed) and reads each whole
body without parsing it: the status must be 200 and the body over 1 MB.
Prints one JSON line with the latency percentiles in µs, measured from the
request's send to the body's last byte. What it leaves out is the client's
own JSON parse of the page, which `mcpgate-bench` does on every reply
(about 0.8 ms for a 1.2 MB page on the benchmark machine).
"""

import http.client
import json
import sys
import time
import urllib.parse

url = urllib.parse.urlparse(sys.argv[1])
n = int(sys.argv[2])
conn = http.client.HTTPConnection(url.hostname, url.port)
meta = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "raw-list", "version": "1"},
}
body = json.dumps(
    {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}
).encode()
headers = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": "2026-07-28",
    "mcp-method": "tools/list",
}
took = []
size = 0
for _ in range(n + n // 10):  # the first tenth warms up and is not kept
    t = time.perf_counter()
    conn.request("POST", url.path, body, headers)
    resp = conn.getresponse()
    data = resp.read()
    took.append(time.perf_counter() - t)
    size = len(data)
    if resp.status != 200 or size < 1_000_000:
        sys.exit(f"raw_list: status {resp.status}, {size} bytes")
took = sorted(took[n // 10 :])
pick = lambda q: round(took[min(len(took) - 1, int(len(took) * q))] * 1e6)
print(json.dumps({"n": len(took), "bytes": size, "p50_us": pick(0.5), "p99_us": pick(0.99)}))
