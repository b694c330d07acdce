"""The reading half of bench/hop-profile.

  hop_profile.py fold                 perf script output (stdin) -> folded stacks (stdout)
  hop_profile.py report OUT ERA...    the files in OUT -> profile.md (stdout)

Every per-call figure is (count after BASE + N calls - count after BASE calls) / N,
so what the bench does once per run (handshake, check request, close) cancels out.
"""

import json
import os
import re
import sys
from collections import defaultdict

# Stages of the gateway's request path: a callgrind function belongs to a stage
# when its demangled name matches. Inclusive cost of a stage = the cost of every
# call into it from outside it, so nested calls inside a stage are not counted
# twice; stages themselves nest (the hyper server calls the handler), so the
# column does not add up to 100 %.
STAGES = [
    ("hyper server (conn, request parse, response write)",
     r"hyper::proto::h1::role::Server|hyper::server::|hyper_util::server::|hyper::proto::h1::dispatch::Server"),
    ("axum router / tower", r"^<?axum::|^<?tower::|^<?tower_http::"),
    ("mcpgate_gateway::http (handler, guard, auth)", r"mcpgate_gateway::http"),
    ("mcpgate_gateway::mcp::dispatch", r"mcpgate_gateway::mcp::dispatch"),
    ("mcpgate_gateway::mcp::modern", r"mcpgate_gateway::mcp::modern"),
    ("policy / ledger (state::policy, mcpgate_store)", r"mcpgate_gateway::state::policy|mcpgate_store::"),
    ("SQLite (sqlx, libsqlite3)", r"^<?sqlx|^sqlite3|^<?libsqlite3_sys"),
    ("mcpgate_upstream (conn, http, routes)", r"mcpgate_upstream::"),
    ("reqwest / hyper client", r"^<?reqwest::|hyper::proto::h1::role::Client|hyper::client::|hyper_util::client::"),
    ("serde_json", r"serde_json::"),
    ("SSE decode (mcpgate_proto::sse::Decoder)", r"mcpgate_proto::sse::Decoder"),
    ("SSE encode (gateway http::sse, proto::sse::encode)", r"mcpgate_gateway::http::sse::|mcpgate_proto::sse::encode"),
    ("tracing", r"^<?tracing::|^<?tracing_core::|^<?tracing_subscriber::"),
    ("tokio runtime (scheduler, I/O driver, timers)", r"^<?tokio::runtime::"),
    ("malloc / free / realloc", r"^(malloc|free|realloc|calloc|cfree|_int_malloc|_int_free|__libc_malloc|__libc_free|__libc_realloc|__libc_calloc|posix_memalign|aligned_alloc|_int_realloc|malloc_consolidate)$"),
    ("syscall wrappers (libc: send, recv, epoll, futex)",
     r"^(__libc_send|__libc_recv|send|recv|sendto|recvfrom|writev|__writev|readv|epoll_wait|__GI_epoll_wait|epoll_ctl|syscall|futex|__futex|write|read|__libc_write|__libc_read|__GI___libc_write|__GI___libc_read|__GI___writev)$"),
    # Only in perf's column: callgrind does not see the kernel.
    ("kernel (syscalls, scheduling, network stack)", r"_\[k\]$"),
]

ALLOC_FNS = {"malloc", "calloc", "realloc", "__libc_malloc", "__libc_calloc", "__libc_realloc"}
# Every task spawned on the multi-thread runtime passes through its
# `bind_new_task` exactly once (`tokio::spawn`, `Handle::spawn`, hyper's
# executor all end there); the spawn site is the first caller outside
# tokio's own spawn functions.
SPAWN = re.compile(r"::bind_new_task$")
SPAWN_PATH = re.compile(r"^tokio::task::spawn::spawn(_inner)?$|^tokio::runtime::scheduler::Handle::spawn$|::bind_new_task$")
SPAWN_BLOCKING = re.compile(r"^tokio::runtime::blocking::pool::Spawner::spawn_blocking")

HASH = re.compile(r"::h[0-9a-f]{16}")


def clean(name):
    return HASH.sub("", name)


def parse_callgrind(path):
    """Self cost per function, (caller, callee) -> [calls, inclusive], total."""
    ids = {}
    self_cost = defaultdict(int)
    arcs = defaultdict(lambda: [0, 0])
    fn = cfn = None
    pending = None
    total = None

    def name(spec):
        spec = spec.strip()
        m = re.match(r"\((\d+)\)(?: (.*))?$", spec)
        if not m:
            return clean(spec)
        if m.group(2) is not None:
            ids[m.group(1)] = clean(m.group(2))
        return ids.get(m.group(1), "?")

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                if pending is not None:
                    arc = arcs[(fn, cfn)]
                    arc[0] += pending
                    arc[1] += cost
                    pending = None
                else:
                    self_cost[fn] += cost
            elif line.startswith("fn="):
                fn = name(line[3:])
            elif line.startswith("cfn="):
                cfn = name(line[4:])
            elif line.startswith("calls="):
                pending = int(line[6:].split()[0])
            elif line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
    if total is None:
        total = sum(self_cost.values())
    return self_cost, arcs, total


def callgrind_figures(base_path, full_path, n):
    figures = []
    parsed = [parse_callgrind(p) for p in (base_path, full_path)]

    def stage_incl(arcs, pattern):
        rx = re.compile(pattern)
        return sum(incl for (caller, callee), (_, incl) in arcs.items()
                   if rx.search(base_fn(callee) or "") and not rx.search(base_fn(caller) or ""))

    def allocs(arcs, pattern=None):
        rx = re.compile(pattern) if pattern else None
        count = 0
        for (caller, callee), (calls, _) in arcs.items():
            if callee is None:
                continue
            chain = callee.split("'")
            if chain[0] not in ALLOC_FNS:
                continue
            if rx is None or any(rx.search(frame) for frame in chain[1:]) or rx.search(caller or ""):
                count += calls
        return count

    def entry_calls(arcs, rx):
        return sum(calls for (caller, callee), (calls, _) in arcs.items()
                   if rx.search(base_fn(callee) or "") and not rx.search(base_fn(caller) or ""))

    def entry_callers(arcs, rx):
        out = defaultdict(int)
        for (caller, callee), (calls, _) in arcs.items():
            if rx.search(base_fn(callee) or "") and not rx.search(base_fn(caller) or ""):
                out[base_fn(caller)] += calls
        return out

    (_, a0, t0), (_, a1, t1) = parsed
    total = (t1 - t0) / n
    for label, pattern in STAGES:
        incl = (stage_incl(a1, pattern) - stage_incl(a0, pattern)) / n
        mall = (allocs(a1, pattern) - allocs(a0, pattern)) / n
        figures.append((label, pattern, incl, mall))
    return {
        "total": total,
        "stages": figures,
        "allocs": (allocs(a1) - allocs(a0)) / n,
        "spawns": (entry_calls(a1, SPAWN) - entry_calls(a0, SPAWN)) / n,
        "spawn_blocking": (entry_calls(a1, SPAWN_BLOCKING) - entry_calls(a0, SPAWN_BLOCKING)) / n,
        "spawn_callers": sorted(
            ((name, (calls - entry_callers(a0, SPAWN_PATH).get(name, 0)) / n)
             for name, calls in entry_callers(a1, SPAWN_PATH).items()),
            key=lambda kv: -kv[1]),
    }


def base_fn(name):
    """A function name without callgrind's `'caller'caller` context suffix."""
    return name.split("'")[0] if name else name


def parse_strace(path):
    counts = {}
    with open(path, errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 5 or not parts[0].replace(".", "").isdigit():
                continue
            name = parts[-1]
            if name == "total":
                continue
            # % time, seconds, usecs/call, calls, [errors], syscall
            try:
                counts[name] = int(parts[3])
            except ValueError:
                continue
    return counts


def strace_figures(base_path, full_path, n):
    b, f = parse_strace(base_path), parse_strace(full_path)
    per = {k: (f.get(k, 0) - b.get(k, 0)) / n for k in set(b) | set(f)}
    return sum(per.values()), sorted(per.items(), key=lambda kv: (-kv[1], kv[0]))


def fold(stdin, stdout):
    """perf script (comm,tid,time,period,ip,sym,dso) -> `comm;outer;...;leaf NS`
    lines, weighted by each sample's period (cpu-clock: nanoseconds); kernel
    frames end in `_[k]`, as inferno colours them."""
    stacks = defaultdict(int)
    comm = None
    period = 0
    frames = []

    def flush():
        if comm is not None and frames:
            stacks[";".join([comm] + [clean(f) for f in reversed(frames)])] += period

    for line in stdin:
        line = line.rstrip("\n")
        if not line.strip():
            flush()
            comm, frames = None, []
        elif line[0] not in " \t":
            flush()
            head = line.split()
            comm, frames = head[0], []
            period = int(head[-1]) if head[-1].isdigit() else 1
        else:
            parts = line.strip().split(None, 1)
            sym = parts[1] if len(parts) > 1 else parts[0]
            m = re.match(r"(.*?)\s+\(([^()]*)\)$", sym)
            kernel = False
            if m:
                sym, dso = m.group(1), m.group(2)
                kernel = "kernel" in dso or dso.startswith("[")
            sym = sym.replace(";", ":")
            if sym == "[unknown]":
                continue
            frames.append(sym + ("_[k]" if kernel else ""))
    flush()
    for stack, count in sorted(stacks.items()):
        stdout.write(f"{stack} {count}\n")


def perf_figures(folded_path, n):
    """CPU ns per call in all, per stage (a sample counts for a stage once if
    any frame of its stack matches), and the share of complete stacks."""
    stacks = []
    with open(folded_path) as f:
        for line in f:
            stack, _, weight = line.rstrip("\n").rpartition(" ")
            if stack:
                stacks.append((stack.split(";")[1:], int(weight)))
    total = sum(w for _, w in stacks)
    complete = sum(w for frames, w in stacks
                   if any(fr in ("start_thread", "clone3", "_start", "main") for fr in frames))
    stages = {}
    for label, pattern in STAGES:
        rx = re.compile(pattern)
        stages[label] = sum(w for frames, w in stacks if any(rx.search(fr) for fr in frames)) / n
    return {"total": total / n, "stages": stages,
            "complete": complete / total if total else 0.0}


def fmt(x, digits=0):
    if abs(x) < 0.5 * 10 ** -digits:
        x = 0.0
    return f"{x:,.{digits}f}"


def report(out, eras):
    def path(name):
        return os.path.join(out, name)

    def exists(name):
        return os.path.exists(path(name))

    run = open(path("run.txt")).read() if exists("run.txt") else ""
    knobs = dict(kv.split("=", 1) for kv in run.splitlines()[0].split() if "=" in kv) if run else {}
    n = int(knobs.get("N", "2000"))
    cg_n = int(knobs.get("CG_N", "300"))
    perf_n = int(knobs.get("PERF_N", "8000"))
    p = print
    p("# Hop profile: where a gateway's per-call work goes (`tools/call echo`, C=1)")
    p()
    p("Made by `bench/hop-profile`. Every strace and callgrind figure is per call: the difference "
      f"between a run of BASE + N calls and one of BASE calls on the same warm process, divided by N "
      f"(strace N = {n}, callgrind N = {cg_n}), so the bench's handshake and session close cancel out.")
    p()
    p("- *instructions / call* (callgrind, user space, all gateway threads): the inclusive cost of "
      "every call into the stage from a function outside it. Exact for a stage that is entered once "
      "per piece of work; a stage whose futures wrap other stages' futures (axum/tower middleware, "
      "the tokio runtime) is entered again from inside itself through another stage and counted "
      "again, so its figure is an upper bound (‡ where it even exceeds the total).")
    p("- *CPU µs / call* (perf, cpu-clock at 1999 Hz, user + kernel, over PERF_N calls and one "
      "handshake): each sample counts once for every stage with a frame on its stack. DWARF "
      "unwinding stops early on part of the samples (the share that reached the thread's start is "
      "given), which loses the outer frames of those samples, so outer stages (hyper server, axum, "
      "`mcpgate_gateway::http`) are undercounted here. CPU time is not latency: both tokio workers "
      "and their wake-ups are in it.")
    p("- *malloc calls / call*: calls to malloc/calloc/realloc with a frame of the stage among "
      "malloc's 40 innermost callers (callgrind `--separate-callers40`), each call counted once; "
      "inlined functions are not frames, so it is a lower bound.")
    p("- Stages nest (the hyper server calls the handler, which calls dispatch), so no column adds up "
      "to 100 %. The stage patterns are listed at the end.")
    p()
    p("```")
    p(run.strip())
    p("```")
    for era in eras:
        p()
        p(f"## Era `{era}`")
        proto = {}
        for who in ("direct", "plain", "keyed"):
            for suffix in ("bench.json", "warm.json"):
                if exists(f"{era}-{who}.{suffix}"):
                    proto[who] = json.load(open(path(f"{era}-{who}.{suffix}"))).get("protocol", "?")
                    break
        p()
        p("Protocol the bench's session negotiated: " + ", ".join(
            f"{w} `{v}`" for w, v in proto.items()) + ".")
        # syscalls
        p()
        p("### Syscalls per call (`strace -c -f -p`)")
        p()
        rows = []
        for who, proc in (("direct", "fixture"), ("plain", "gateway"), ("plain", "fixture"),
                          ("keyed", "gateway"), ("keyed", "fixture")):
            b, f = f"{era}-{who}.{proc}.base.strace", f"{era}-{who}.{proc}.full.strace"
            if exists(b) and exists(f):
                total, per = strace_figures(path(b), path(f), n)
                rows.append((who, proc, total, per))
        if rows:
            names = []
            for *_, per in rows:
                for k, v in per[:8]:
                    if k not in names and v >= 0.05:
                        names.append(k)
            p("| path | process | total | " + " | ".join(names) + " |")
            p("|---|---|---|" + "---|" * len(names))
            for who, proc, total, per in rows:
                d = dict(per)
                label = {"direct": "direct", "plain": "auth off", "keyed": "keyed"}[who]
                p(f"| {label} | {proc} | {total:.2f} | " + " | ".join(f"{d.get(k, 0):.2f}" for k in names) + " |")
        else:
            p("(no strace runs)")
        # callgrind + perf, per gateway
        for who, title in (("plain", "auth-off gateway"), ("keyed", "keyed gateway (keys + quota + audit)")):
            b, f = f"{era}-{who}.callgrind.base", f"{era}-{who}.callgrind.full"
            folded = f"{era}-{who}.folded"
            p()
            p(f"### {title}: per call, by stage")
            p()
            cg = callgrind_figures(path(b), path(f), cg_n) if exists(b) and exists(f) else None
            pf = perf_figures(path(folded), perf_n) if exists(folded) else None
            if cg:
                p(f"callgrind: **{fmt(cg['total'])} instructions per call** (all gateway threads, "
                  f"user space), **{cg['allocs']:.1f} malloc/calloc/realloc calls per call**, "
                  f"**{cg['spawns']:.2f} tokio tasks spawned per call** "
                  f"(and {cg['spawn_blocking']:.2f} `spawn_blocking`).")
            if pf:
                p(f"perf: **{pf['total'] / 1000:.1f} µs of gateway CPU per call** (cpu-clock, user + "
                  f"kernel, over {perf_n} calls plus one handshake; {pf['complete']:.0%} of the "
                  "samples were unwound to the thread's start, the rest stop early, so outer stages "
                  "are undercounted).")
            if not (cg or pf):
                p("(no callgrind or perf run)")
                continue
            p()
            p("| stage | instructions / call | % of instructions | CPU µs / call (perf) | % of CPU | malloc calls / call |")
            p("|---|---:|---:|---:|---:|---:|")
            cg_stage = {label: (incl, mall) for label, _, incl, mall in cg["stages"]} if cg else {}
            for label, pattern in STAGES:
                cells = []
                incl, mall = cg_stage.get(label, (None, None))
                kernel_only = label.startswith("kernel")
                if cg and not kernel_only:
                    total = cg["total"]
                    over = incl > total
                    cells += [fmt(incl) + (" ‡" if over else ""), f"{100 * incl / total:.1f} %" if total else "—"]
                else:
                    cells += ["—", "—"]
                if pf:
                    ns = pf["stages"].get(label, 0)
                    cells += [f"{ns / 1000:.1f}", f"{100 * ns / pf['total']:.1f} %" if pf["total"] else "—"]
                else:
                    cells += ["—", "—"]
                cells.append(f"{mall:.1f}" if cg and not kernel_only else "—")
                p(f"| {label} | " + " | ".join(cells) + " |")
            if cg:
                p()
                if cg["spawn_callers"]:
                    p()
                    p("Tasks spawned per call, by the function that spawned them: " + ", ".join(
                        f"`{name}` {v:.2f}" for name, v in cg["spawn_callers"] if abs(v) >= 0.05) + ".")
        # perf
        for who in ("plain", "keyed"):
            top = f"{era}-{who}.perf-top30.txt"
            if exists(top):
                p()
                p(f"### perf, {'auth off' if who == 'plain' else 'keyed'}: top inclusive frames "
                  f"over {perf_n} calls (`{era}-{who}.folded`"
                  + (f", `{era}-{who}.svg`" if exists(f"{era}-{who}.svg") else "") + ")")
                p()
                p("```")
                p(open(path(top)).read().rstrip())
                p("```")
    p()
    p("## Stage patterns (regular expressions over demangled function names)")
    p()
    for label, pattern in STAGES:
        p(f"- {label}: `{pattern}`")
    if exists("commands.txt"):
        p()
        p("## Commands")
        p()
        p("```")
        p(open(path("commands.txt")).read().rstrip())
        p("```")


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "fold":
        fold(sys.stdin, sys.stdout)
    elif len(sys.argv) >= 3 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3:] or ["session", "modern"])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
