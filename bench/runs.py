#!/usr/bin/env python3
"""Benchmarks of agent runs through a real `mcpgate serve` (release build).

1. Run start: POST /api/v1/workflows/NAME/runs to the run's first output
   line, as a follower of its SSE log receives it (a `command` workflow that
   echoes, on the bubblewrap backend, no warm pool), N runs one after another.
2. Model proxy: time to first byte of a streamed /v1/messages response from
   mcpgate-mock-model (a scripted MOCK), direct and through /models/mock,
   interleaved request by request so both sides see the same machine noise;
   the difference of the medians is what the proxy adds.

Usage: bench/runs.py [TARGET_DIR] [N]   (TARGET_DIR holds release/mcpgate;
default target). Stdlib only. Prints min / p50 / p90 / max in milliseconds.
"""
import http.client, json, os, shutil, statistics, subprocess, sys, tempfile, time

target = sys.argv[1] if len(sys.argv) > 1 else "target"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 30
rel = os.path.join(target, "release")
mcpgate = os.path.abspath(os.path.join(rel, "mcpgate"))
mock_bin = os.path.abspath(os.path.join(rel, "mcpgate-mock-model"))
tmp = tempfile.mkdtemp(prefix="mcpgate-bench-runs-")


def pct(xs, p):
    xs = sorted(xs)
    return xs[round((len(xs) - 1) * p)]


def report(name, xs):
    ms = [x * 1000 for x in xs]
    print(f"{name:<44} n={len(ms):<4} min {min(ms):7.3f}  p50 {pct(ms, .5):7.3f}  "
          f"p90 {pct(ms, .9):7.3f}  max {max(ms):7.3f} ms")


mock = subprocess.Popen([mock_bin, "--tool", "none"], stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL, text=True)
mock_url = mock.stdout.readline().strip().removeprefix("MOCK model listening on ")
mock_host, mock_port = mock_url.removeprefix("http://").split(":")
with open(os.path.join(tmp, "model.key"), "w") as f:
    f.write("sk-bench-model-key")
cfg = os.path.join(tmp, "mcpgate.toml")
with open(cfg, "w") as f:
    f.write(f'''
auth = "keys"
data_dir = "{tmp}/data"
[plans]
pro = "pro"
[tiers.pro]
tools = ["*"]
[models.mock]
kind = "anthropic"
url = "{mock_url}"
auth = [{{ header = "x-api-key", file = "{tmp}/model.key" }}]
[runs]
max_concurrent = 4
[workflows.hello]
agent = "command"
command = ["echo", "first line"]
tenant = "acme"
timeout = "1m"
''')
gw = subprocess.Popen([mcpgate, "serve", "--config", cfg, "--listen", "127.0.0.1:0"],
                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    gw_url = gw.stdout.readline().strip().removeprefix("listening on ").removesuffix("/mcp")
    gw_host, gw_port = gw_url.removeprefix("http://").split(":")
    env = dict(os.environ, RUST_LOG="error")
    subprocess.run([mcpgate, "tenants", "add", "acme", "--plan", "pro", "--config", cfg],
                   check=True, capture_output=True, env=env)
    key = subprocess.run([mcpgate, "keys", "create", "--tenant", "acme", "--config", cfg],
                         check=True, capture_output=True, text=True, env=env).stdout
    key = next(t for t in key.split() if t.startswith("mcpg_"))
    for _ in range(100):  # the gateway answers
        c = http.client.HTTPConnection(gw_host, int(gw_port))
        c.request("GET", "/health")
        if c.getresponse().status == 200:
            break
        time.sleep(0.05)

    # 1. Run start.
    starts = []
    for _ in range(n):
        c = http.client.HTTPConnection(gw_host, int(gw_port))
        t0 = time.perf_counter()
        c.request("POST", "/api/v1/workflows/hello/runs", json.dumps({"params": {}}),
                  {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        r = c.getresponse()
        run = json.loads(r.read())
        assert r.status == 201, run
        c.request("GET", f"/api/v1/runs/{run['id']}/logs",
                  headers={"Authorization": f"Bearer {key}", "Accept": "text/event-stream"})
        r = c.getresponse()
        while True:
            line = r.fp.readline().decode()
            if not line:
                raise SystemExit(f"the log ended without output: run {run['id']}")
            if line.startswith("data:") and "first line" in line:
                starts.append(time.perf_counter() - t0)
                break
        c.close()
    report("run start: POST .../runs -> first output line", starts)

    # 2. Model proxy, time to first byte of a streamed response.
    body = json.dumps({"model": "mock", "max_tokens": 16, "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]})

    def ttfb(host, port, path, headers):
        c = http.client.HTTPConnection(host, int(port))
        t0 = time.perf_counter()
        c.request("POST", path, body, dict(headers, **{"Content-Type": "application/json"}))
        r = c.getresponse()
        assert r.status == 200, r.read()
        r.read(1)
        t = time.perf_counter() - t0
        r.read()
        c.close()
        return t

    direct, proxied = [], []
    for i in range(n * 10):
        d = ttfb(mock_host, mock_port, "/v1/messages", {"x-api-key": "direct"})
        p = ttfb(gw_host, gw_port, "/models/mock/v1/messages", {"x-api-key": key})
        if i >= 10:  # warm-up
            direct.append(d)
            proxied.append(p)
    report("model TTFB, direct to the MOCK", direct)
    report("model TTFB, through /models/mock", proxied)
    print(f"{'model proxy adds (p50 difference)':<44} "
          f"{(statistics.median(proxied) - statistics.median(direct)) * 1000:7.3f} ms")
finally:
    gw.terminate()
    mock.terminate()
    gw.wait()
    mock.wait()
    shutil.rmtree(tmp, ignore_errors=True)
