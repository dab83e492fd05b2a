"""benchlib.py - the number crunching of bench/run (Debian's python3 only).

    benchlib.py cpu PID...              CPU ticks used so far by the process
                                        trees of PID..., by command name, with
                                        and without waited-for children (JSON)
    benchlib.py cpudiff BEFORE AFTER    the difference of two such snapshots
    benchlib.py memproto N ALGO SHA NAME LIMIT WINDOW_MS [EPOCH_MS]
                                        the RESP text of N EVALSHA calls, one
                                        per distinct client, for redis-cli --pipe
    benchlib.py report RESDIR           the tables (stdout), RESDIR/summary.json,
                                        RESDIR/chart.dat
    benchlib.py doc RESDIR DOC          (re)writes docs/BENCHMARKS.md from
                                        RESDIR, keeping its hand-written
                                        analysis section
"""
import glob
import hashlib
import json
import os
import re
import statistics
import sys
import time

# name, label, uses Redis, what it is
VARIANTS = [
    ("a", "lighttpd -> libfcgi hello app (bare)"),
    ("b", "lighttpd + fcgi-ratelimit authorizer -> same hello app"),
    ("n", "lighttpd + no-op authorizer (always 200, no Redis) -> same hello app"),
    ("c", "lighttpd -> fcgi-ratelimit relaying hello.cgi"),
    ("d", "lighttpd -> fcgiwrap -> hello.cgi"),
    ("e", "lighttpd mod_cgi -> hello.cgi"),
    ("f", "seed: FastAPI + uvicorn + redis.asyncio (INCR+EXPIRE)"),
    ("g", "nginx limit_req, return 200 (in-process, not shared)"),
    ("hb", "denied: fcgi-ratelimit authorizer, client over its limit"),
    ("hf", "denied: seed design, client over its limit"),
    ("b-tcp", "b, many clients (X-Forwarded-For), one redis-server on TCP loopback"),
    ("b-cluster", "b, many clients, Redis Cluster of 3 masters (redis+cluster://)"),
    ("b-cluster-r", "b, many clients, Redis Cluster of 3 masters + 3 replicas"),
    ("b-sentinel", "b, many clients, master + replica + 3 sentinels (redis+sentinel://)"),
]
LABEL = dict(VARIANTS)

# numerator, denominator, target (req/s ratio at least; None: for
# information), what it says
RATIOS = [
    ("b", "n", 0.85, "what fcgi-ratelimit costs as an authorizer against a no-op "
                     "authorizer behind the same lighttpd hop (1.0 = as cheap as "
                     "doing nothing)"),
    ("b", "a", None, "the same hello app with and without fcgi-ratelimit in front; "
                     "capped by n/a, the hop alone"),
    ("n", "a", None, "the ceiling of b/a: what lighttpd's authorizer hop alone costs, "
                     "with an authorizer that does nothing"),
    ("c", "d", 1.00, "fcgi-ratelimit relaying a CGI script (limit checked in Redis) "
                     "against fcgiwrap running the same script with no limit at all; "
                     "with the gateway CPU row below"),
    ("c", "e", 0.90, "the same against lighttpd's own mod_cgi (no limit)"),
    ("b", "f", 10.0, "authorizer against the seed design (Python ASGI app + "
                     "redis.asyncio), both on their allowed path"),
    ("hb", "a", 1.00, "a denied request (authorizer answers 429) against a bare "
                      "allowed request to the hello app: denying must be cheaper than "
                      "serving"),
    ("b-cluster", "b-tcp", 0.90, "the authorizer against a 3-master Redis Cluster "
                                 "against one redis-server, both on TCP loopback, "
                                 "same clients"),
    ("b-sentinel", "b-tcp", None, "the same against a sentinel-managed master"),
    ("b-cluster-r", "b-sentinel", None, "a 3-master cluster with a replica each "
                                        "against a master with a replica: the same "
                                        "durability on both sides"),
]

# The relaying gateways of the CGI variants, by command name: their own CPU
# per request, the scripts they run excluded, is compared (c at most d).
GATEWAYS = [("c", "fcgi-ratelimit"), ("d", "fcgiwrap")]

ADMIN = {"config", "info", "ping", "script", "auth", "select", "hello", "client",
         "command", "flushall", "memory", "dbsize", "replconf", "psync", "sync",
         "publish", "subscribe", "cluster", "readonly", "asking"}
TOPLEVEL = {"evalsha", "eval", "incr", "incrby", "expire", "ttl", "get", "set", "pexpire"}


# ------------------------------------------------------------------ cpu
def tree_ticks(roots):
    """({comm: ticks}, {comm: ticks}) over roots and their living
    descendants: first utime+stime+cutime+cstime (a reaped child counts for
    the process that waited for it), then utime+stime alone (the process's
    own time, its children's left out; a child still running its parent's
    command is counted as "COMM (forked)")."""
    kids, stats, parent = {}, {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        comm = s[s.index("(") + 1:s.rindex(")")]
        rest = s[s.rindex(")") + 2:].split()
        kids.setdefault(int(rest[1]), []).append(int(d))
        parent[int(d)] = int(rest[1])
        # fields 14-17 of proc(5): utime stime cutime cstime
        own = int(rest[11]) + int(rest[12])
        stats[int(d)] = (comm, own + int(rest[13]) + int(rest[14]), own)
    total, own, todo, seen = {}, {}, list(roots), set()
    while todo:
        p = todo.pop()
        if p in seen or p not in stats:
            continue
        seen.add(p)
        comm, t, o = stats[p]
        total[comm] = total.get(comm, 0) + t
        # a fork not yet exec'd (a CGI child being set up) is not the gateway
        mine = comm if stats.get(parent[p], ("",))[0] != comm else comm + " (forked)"
        own[mine] = own.get(mine, 0) + o
        todo.extend(kids.get(p, []))
    return total, own


def cmd_cpu(pids):
    total, own = tree_ticks([int(p) for p in pids])
    print(json.dumps({"ticks": total, "self": own}))


def tick_diff(before, after):
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0}


def cmd_cpudiff(before, after):
    with open(before) as f:
        b = json.load(f)
    with open(after) as f:
        a = json.load(f)
    print(json.dumps({"hz": os.sysconf("SC_CLK_TCK"), "ticks": tick_diff(b["ticks"], a["ticks"]),
                      "self": tick_diff(b["self"], a["self"])}))


# ------------------------------------------------------------------ memory
def cmd_memproto(n, algo, sha, name, limit, window_ms, epoch_ms="0"):
    """EVALSHA for N clients, as the filter sends them: one key per rule,
    or with EPOCH_MS > 0 the buckets layout's three hashes of the epochs
    around now (the filter's N, src/limiter.c) and the field."""
    out = sys.stdout.buffer
    args_tail = [algo, limit, window_ms, limit]
    e = int(epoch_ms)
    if e > 0:
        ep = (int(time.time() * 1000) - e // 2) // e
    buf = []
    for i in range(int(n)):
        h = hashlib.sha256(b"bench-client-%d" % i).hexdigest()
        if e > 0:
            keys = ["ratelimit:%s:{%s}:%d" % (name, h[:3], ep + d) for d in (-1, 0, 1)]
            parts = ["EVALSHA", sha, "3"] + keys + args_tail + [h[3:]]
        else:
            parts = ["EVALSHA", sha, "1", "ratelimit:%s:{%s}" % (name, h)] + args_tail
        buf.append("*%d\r\n" % len(parts))
        for p in parts:
            buf.append("$%d\r\n%s\r\n" % (len(p), p))
        if len(buf) > 20000:
            out.write("".join(buf).encode())
            buf = []
    out.write("".join(buf).encode())


# ------------------------------------------------------------------ profile
def cg_rows(text):
    out = []
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([\s\d.]+%\)\s+(.*)", line)
        if m and "PROGRAM TOTALS" not in line:
            fn = re.sub(r"\s*\[[^]]*\]$", "", m.group(2))
            if ":" in fn:
                f, name = fn.rsplit(":", 1)
                fn = "%s:%s" % (os.path.basename(f), name)
            out.append((int(m.group(1).replace(",", "")), fn))
    return out


def cmd_callgrind(incl, self_, n, name):
    with open(incl) as f:
        inc = cg_rows(f.read())
    with open(self_) as f:
        slf = cg_rows(f.read())
    n = int(n)
    seen, top = set(), []
    for ir, fn in inc:
        key = fn.split(":")[-1]
        if key in seen or key in ("main", "(below main)") or key.startswith("0x") \
                or key.startswith("__libc_start"):
            continue
        seen.add(key)
        top.append((ir, fn))
    loop = next((ir for ir, fn in top if fn.endswith(":fastcgi_loop")), None)
    print("-- callgrind %s: %d requests through one worker" % (name, n))
    if loop:
        print("   %d instructions per request in the FastCGI loop (start-up excluded)"
              % (loop // n))
    print("   inclusive, instructions per request:")
    for ir, fn in top[:18]:
        print("   %9d  %s" % (ir // n, fn))
    print("   self, instructions per request:")
    for ir, fn in slf[:12]:
        print("   %9d  %s" % (ir // n, fn))
    print()


def cmd_strace(path, n, v):
    n = int(n)
    rows = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) >= 5 and p[0][0].isdigit() and p[-1] != "total":
                rows.append((int(p[3]), p[-1]))
    rows.sort(reverse=True)
    tot = sum(c for c, _ in rows)
    print("-- strace -c, the FastCGI workers of (%s): %.1f syscalls per request "
          "(%d requests)" % (v, tot / n, n))
    print("   " + ", ".join("%s %.2f" % (name, c / n) for c, name in rows if c / n >= 0.05))
    print()


# ------------------------------------------------------------------ parsing
def to_ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    if not m:
        return None
    x = float(m.group(1))
    return x * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def parse_wrk(path):
    with open(path) as f:
        t = f.read()
    r = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", t)
    r["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", t)
    r["requests"] = int(m.group(1)) if m else 0
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s(?:\.000)?%%\s+(\S+)" % pct, t, re.M)
        r["p" + pct] = to_ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", t)
    r["errors"] = m.group(1).strip() if m else ""
    return r


def parse_cmdstats(path):
    calls = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"cmdstat_([a-z|_-]+):calls=(\d+),usec=(\d+)", line.strip())
            if m and m.group(1).split("|")[0] not in ADMIN:
                # several servers' stats in one file (a cluster's masters): summed
                c, u = calls.get(m.group(1), (0, 0))
                calls[m.group(1)] = (c + int(m.group(2)), u + int(m.group(3)))
    return calls


def load(resdir):
    runs = {}
    for path in sorted(glob.glob(os.path.join(resdir, "runs", "*.wrk"))):
        base = os.path.basename(path)[:-4]
        v, rnd = base.rsplit(".r", 1)
        w = parse_wrk(path)
        red = os.path.join(resdir, "runs", base + ".redis")
        w["redis"] = parse_cmdstats(red) if os.path.exists(red) else None
        cpu = os.path.join(resdir, "runs", base + ".cpu")
        if os.path.exists(cpu):
            with open(cpu) as f:
                w["cpu"] = json.load(f)
        w["nodes"] = {}
        for node in glob.glob(os.path.join(resdir, "runs", base + ".node.*")):
            w["nodes"][node.rsplit(".", 1)[1]] = parse_cmdstats(node).get("evalsha", (0, 0))
        runs.setdefault(v, []).append(w)
    return runs


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(resdir):
    runs = load(resdir)
    meta = {}
    mp = os.path.join(resdir, "meta.json")
    if os.path.exists(mp):
        with open(mp) as f:
            meta = json.load(f)
    s = {"meta": meta, "variants": {}, "ratios": [], "memory": {}, "redis": {}}
    for v, _ in VARIANTS:
        rs = runs.get(v)
        if not rs:
            continue
        e = {"rps": med([r["rps"] for r in rs]), "p50": med([r["p50"] for r in rs]),
             "p99": med([r["p99"] for r in rs]), "rounds": len(rs),
             "rps_all": [r["rps"] for r in rs],
             "requests": sum(r["requests"] for r in rs),
             "non2xx": sum(r["non2xx"] for r in rs),
             "errors": "; ".join(sorted({r["errors"] for r in rs if r["errors"]}))}
        # Redis commands per request, all rounds together.
        reds = [r for r in rs if r["redis"] is not None]
        if reds:
            tot, usec, nreq = {}, {}, sum(r["requests"] for r in reds)
            for r in reds:
                for k, (c, u) in r["redis"].items():
                    tot[k] = tot.get(k, 0) + c
                    usec[k] = usec.get(k, 0) + u
            if nreq and tot:
                per = {k: c / nreq for k, c in sorted(tot.items())}
                scripted = "evalsha" in per or "eval" in per
                # a script's own usec includes the commands it runs
                top_us = sum(u for k, u in usec.items()
                             if k in ("evalsha", "eval") or (not scripted and k in TOPLEVEL))
                top = sum(c for k, c in per.items() if k in ("evalsha", "eval")) \
                    if ("evalsha" in per or "eval" in per) else \
                    sum(c for k, c in per.items() if k in TOPLEVEL)
                s["redis"][v] = {"per_request": per, "round_trips": top,
                                 "all": sum(per.values()), "usec": top_us / nreq}
        # CPU per request by component, all rounds together.
        cpus = [r for r in rs if r.get("cpu")]
        if cpus:
            comp, nreq = {}, sum(r["requests"] for r in cpus)
            for r in cpus:
                for k, t in r["cpu"]["ticks"].items():
                    comp[k] = comp.get(k, 0) + t
            hz = cpus[0]["cpu"]["hz"]
            if nreq:
                e["cpu_us"] = {k: t * 1e6 / hz / nreq for k, t in comp.items()}
            if nreq and all("self" in r["cpu"] for r in cpus):
                own = {}
                for r in cpus:
                    for k, t in r["cpu"]["self"].items():
                        own[k] = own.get(k, 0) + t
                e["cpu_self_us"] = {k: t * 1e6 / hz / nreq for k, t in own.items()}
        s["variants"][v] = e
        if any(r["nodes"] for r in rs):
            s["nodes"] = node_spread(resdir, rs)
    V = s["variants"]
    for n, d, target, _ in RATIOS:
        if n in V and d in V and V[n]["rps"] and V[d]["rps"]:
            val = V[n]["rps"] / V[d]["rps"]
            s["ratios"].append({"name": "%s/%s" % (n if n != "hb" else "h", d),
                                "value": val, "target": target, "at_most": False,
                                "met": target is None or val >= target})
    gateway_cpu(s)
    memp = os.path.join(resdir, "memory.txt")
    if os.path.exists(memp):
        with open(memp) as f:
            for line in f:
                p = line.split()
                if len(p) >= 5:
                    algo, n, before, after, keys = p[:5]
                    s["memory"][algo] = {"clients": int(n), "before": int(before),
                                         "after": int(after), "keys": int(keys),
                                         "per_client": (int(after) - int(before)) / int(n),
                                         "usage": p[5] if len(p) > 5 else "-",
                                         "type": " ".join(p[6:8])}
    return s


def node_spread(resdir, rs):
    """The cluster's load per master, all rounds together: for each master
    (by port, with its slots from RESDIR/cluster-masters.txt) its EVALSHA
    calls and usec (INFO commandstats), per call and per request of the
    variant."""
    slots = {}
    mp = os.path.join(resdir, "cluster-masters.txt")
    if os.path.exists(mp):
        with open(mp) as f:
            for line in f:
                p = line.split()
                if p:
                    slots[p[0]] = " ".join(p[1:])
    nreq = sum(r["requests"] for r in rs if r["nodes"])
    calls, usec = {}, {}
    for r in rs:
        for port, (c, u) in r["nodes"].items():
            calls[port] = calls.get(port, 0) + c
            usec[port] = usec.get(port, 0) + u
    total = sum(calls.values())
    return [{"node": "127.0.0.1:%s" % port, "slots": slots.get(port, "?"),
             "calls": calls[port], "share": calls[port] / total if total else 0,
             "usec": usec[port], "usec_per_call": usec[port] / calls[port] if calls[port] else 0,
             "usec_per_request": usec[port] / nreq if nreq else 0}
            for port in sorted(calls, key=int)]


def gateway_cpu(s):
    """s["gateway_cpu"]: per relaying variant, its gateway's own CPU per
    request (utime+stime of the gateway processes) and the part of its
    children it waited for (the scripts); and the target row "c gateway CPU
    at most d's" in s["ratios"]."""
    V, g = s["variants"], {}
    for v, comm in GATEWAYS:
        e = V.get(v, {})
        own = e.get("cpu_self_us", {}).get(comm)
        if own is None:
            continue
        g[v] = {"gateway": comm, "self_us": own,
                "children_us": e["cpu_us"].get(comm, own) - own}
    s["gateway_cpu"] = g
    (c, _), (d, _) = GATEWAYS
    if c in g and d in g and g[d]["self_us"] > 0:
        val = g[c]["self_us"] / g[d]["self_us"]
        s["ratios"].append({"name": "%s/%s gateway CPU" % (c, d), "value": val,
                            "target": 1.0, "at_most": True, "met": val <= 1.0})


def fmt(x, nd=0):
    if x is None:
        return "-"
    return ("%." + str(nd) + "f") % x


def tables(s):
    V = s["variants"]
    out = []
    out.append("| variant | what | req/s (median) | p50 ms | p99 ms | rounds (req/s) | non-2xx |")
    out.append("| --- | --- | ---: | ---: | ---: | --- | ---: |")
    for v, label in VARIANTS:
        if v not in V:
            continue
        e = V[v]
        out.append("| %s | %s | %s | %s | %s | %s | %d |" % (
            v if v not in ("hb", "hf") else "h (%s)" % v[1], label, fmt(e["rps"]),
            fmt(e["p50"], 2), fmt(e["p99"], 2),
            " ".join(fmt(x) for x in e["rps_all"]), e["non2xx"]))
    out.append("")
    out.append("| ratio | value | target | met | margin |")
    out.append("| --- | ---: | ---: | --- | --- |")
    for r in s["ratios"]:
        if r["target"] is None:
            out.append("| %s | %.2f | (reference) | | |" % (r["name"], r["value"]))
            continue
        # the margin is positive when the target is met, either way round
        margin = 1 - r["value"] / r["target"] if r.get("at_most") else \
            r["value"] / r["target"] - 1
        out.append("| %s | %.2f | %s %.2f | %s | %+.0f %% of target |" % (
            r["name"], r["value"], "<=" if r.get("at_most") else ">=", r["target"],
            "yes" if r["met"] else "**no**", margin * 100))
    out.append("")
    if s["redis"]:
        out.append("| variant | Redis round trips / request | all Redis commands / request "
                   "(incl. inside Lua) | Redis time / request (us, commandstats) | "
                   "breakdown per request |")
        out.append("| --- | ---: | ---: | ---: | --- |")
        for v, _ in VARIANTS:
            if v in s["redis"]:
                r = s["redis"][v]
                out.append("| %s | %.3f | %.3f | %.1f | %s |" % (
                    v, r["round_trips"], r["all"], r["usec"],
                    ", ".join("%s %.3f" % (k, c) for k, c in r["per_request"].items()
                              if c >= 0.0005)))
        out.append("")
    if s["memory"]:
        out.append("| algorithm / RATELIMIT_STORE | clients | Redis keys | used_memory before | "
                   "after | bytes per client | MEMORY USAGE of one key | type, encoding | "
                   "target <= 100 |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
        for algo in ("fixed-window", "sliding-log", "sliding-window", "token-bucket",
                     "fixed-window/buckets", "sliding-window/buckets", "token-bucket/buckets"):
            if algo in s["memory"]:
                m = s["memory"][algo]
                tgt = "n/a (at most LIMIT entries)" if algo == "sliding-log" else \
                    ("yes" if m["per_client"] <= 100 else "**no** (%+.0f %%)" % (
                        (m["per_client"] / 100 - 1) * 100))
                name = algo.replace("/buckets", " / buckets") if "/" in algo \
                    else algo + " / keys"
                out.append("| %s | %d | %d | %d | %d | %.1f | %s | %s | %s |" % (
                    name, m["clients"], m["keys"], m["before"], m["after"],
                    m["per_client"], m["usage"], m["type"], tgt))
        out.append("")
    cpu_rows = [(v, V[v]["cpu_us"]) for v, _ in VARIANTS if v in V and V[v].get("cpu_us")]
    if cpu_rows:
        comps = []
        for _, c in cpu_rows:
            for k in c:
                if k not in comps:
                    comps.append(k)
        out.append("CPU time per request, microseconds, by process tree (from "
                   "/proc/PID/stat; short-lived CGI children that are not "
                   "waited for are not counted: fcgiwrap ignores SIGCHLD, so "
                   "d's scripts are missing):")
        out.append("")
        out.append("| variant | " + " | ".join(comps) + " | total |")
        out.append("| --- | " + " | ".join("---:" for _ in comps) + " | ---: |")
        for v, c in cpu_rows:
            out.append("| %s | %s | %.0f |" % (
                v, " | ".join(fmt(c.get(k)) for k in comps), sum(c.values())))
        out.append("")
    out.extend(gateway_lines(s))
    out.extend(node_lines(s))
    return "\n".join(out)


def node_lines(s):
    nodes = s.get("nodes")
    if not nodes:
        return []
    out = ["Redis command time per request per node (b-cluster, all rounds; "
           "`INFO commandstats` of each master, `CONFIG RESETSTAT` before each run):", "",
           "| master | slots | evalsha calls | share of calls | usec | usec per call | "
           "usec per request of b-cluster |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for n in nodes:
        out.append("| %s | %s | %d | %.1f %% | %d | %.2f | %.2f |" % (
            n["node"], n["slots"], n["calls"], n["share"] * 100, n["usec"],
            n["usec_per_call"], n["usec_per_request"]))
    out.append("")
    return out


def gateway_lines(s):
    g = s.get("gateway_cpu")
    if not g:
        return []
    parts = []
    for v, _ in GATEWAYS:
        if v in g:
            x = g[v]
            kids = "%.0f us in the scripts it waited for" % x["children_us"] \
                if x["children_us"] >= 0.5 else "its scripts not counted: not waited for"
            parts.append("%s %s %.0f us (%s)" % (v, x["gateway"], x["self_us"], kids))
    return ["Gateway CPU per request, script excluded (utime+stime of the gateway "
            "processes alone; everything in a forked child, from fork to exit, is the "
            "script's): " + "; ".join(parts) + ".", ""]


def missed_text(r):
    if r.get("at_most"):
        return "%s = %.2f, %.0f %% above its ceiling %.2f" % (
            r["name"], r["value"], (r["value"] / r["target"] - 1) * 100, r["target"])
    return "%s = %.2f, %.0f %% below its target %.2f" % (
        r["name"], r["value"], (1 - r["value"] / r["target"]) * 100, r["target"])


def cmd_report(resdir):
    s = summarize(resdir)
    with open(os.path.join(resdir, "summary.json"), "w") as f:
        json.dump(s, f, indent=1)
    with open(os.path.join(resdir, "chart.dat"), "w") as f:
        for i, (v, _) in enumerate(VARIANTS):
            if v in s["variants"] and s["variants"][v]["rps"]:
                name = {"hb": "h(b)", "hf": "h(f)"}.get(v, v)
                f.write('%d "%s" %.1f\n' % (i, name, s["variants"][v]["rps"]))
    print(tables(s))


# ------------------------------------------------------------------ doc
TARGETS_TEXT = """\
What each ratio says (all from one run, same wrk settings, the median of the
rounds; absolute numbers drift on a shared machine, ratios measured side by
side hold much better):

- **b/n >= 0.85**: what the authorizer costs. (a) is lighttpd and a bare
  libfcgi hello app; (b) is the same lighttpd and the same app with
  fcgi-ratelimit as a FastCGI authorizer under the same `fastcgi.server`
  key, so every request pays one more FastCGI round trip (lighttpd ->
  filter) and one Redis round trip (filter -> EVALSHA). (n) is (b) with the
  hello app itself started as the authorizer, answering a bare
  `Status: 200` without Redis: the same hop, an authorizer that does
  nothing. The target is set against (n), not (a), because the hop alone
  has a ceiling no authorizer can pass: lighttpd opens a second FastCGI
  connection per request (authorizer, then responder) and runs its
  authorizer phase, and n/a is about 0.7 on the hosts measured so far. A
  target of 0.80 on b/a asked fcgi-ratelimit to beat doing nothing; b/n
  asks what it costs beyond the hop: its request parsing, the key, and the
  Redis round trip.
- **b/a and n/a** (information, no target): b/a is what a site sees when
  it puts the authorizer in front of an app; n/a is its ceiling.
- **c/d >= 1.0, and the gateway's own CPU per request at most fcgiwrap's**:
  fcgi-ratelimit relaying a legacy CGI script *with* a Redis check per
  request, against fcgiwrap (what sites run today) relaying the same
  script with *no* limit at all. Both fork and exec the script for every
  request, and on a host that forks fast that fork+exec, and the shell it
  starts, dominate both variants' time: throughput cannot tell the
  gateways apart by much (a quiet run measured c/d = 1.00, c/e = 0.93,
  b/n = 0.80), so c/d only has to hold even, and the second half measures
  the gateway itself. "Gateway CPU" is utime+stime from `/proc/PID/stat`
  of the gateway processes alone (fcgi-ratelimit for c, fcgiwrap for d),
  sampled before and after each run and divided by its requests; their
  cutime/cstime, the children they waited for, are left out, and so is a
  child caught between fork and exec at a sample: a forked child counts
  as the script's from fork to exit (fcgiwrap ignores SIGCHLD, so its
  children are not waited for and no script time shows for d at all). The spawn
  itself (fork, or posix_spawn's vfork-style clone) is the gateway's.
  Redis's CPU for c's check is in the CPU table, not in this row.
- **c/e >= 0.9**: the same against lighttpd's built-in mod_cgi (no limit).
- **b/f >= 10**: the authorizer against the seed design this project
  replaces: a FastAPI application under uvicorn with a redis.asyncio
  middleware (INCR, EXPIRE on the first request, TTL when denied).
- **h/a >= 1** (h measured for b): a client far over its limit hammering the
  authorizer; each request is answered 429 by the filter without reaching
  the application. A denial must cost less than serving the bare app.
  h(f) is the seed design's denial path, for comparison.
- **exactly one Redis call per uncached check**: EVALSHA calls per request
  from `INFO commandstats` (`CONFIG RESETSTAT` before each run). Commands
  the script runs inside Redis (TIME, GET, INCR, ...) are counted
  separately: they cost Redis CPU, not round trips.
- **<= 100 bytes of Redis memory per tracked client** for fixed-window,
  sliding-window and token-bucket: 100 000 distinct clients, each with one
  request, sent straight to the limiter script with EVALSHA through
  `redis-cli --pipe` (same script text and key format
  `PREFIX NAME ":{" 64-hex "}"` as the binary), `used_memory` before and after,
  for both layouts: `RATELIMIT_STORE=keys` (the default, one key per
  client and rule) and `RATELIMIT_STORE=buckets` (clients share 4096
  small hashes per rule and window; "Redis keys" counts the hashes).
- **b-cluster/b-tcp >= 0.90**: the authorizer against a Redis Cluster of
  3 masters (`redis+cluster://`, each check one EVALSHA to the master of
  the client's slot) against one redis-server (b-tcp), both on TCP
  loopback, neither with a replica: the cluster may cost at most 10 % of
  the throughput. Both take the same load from many clients: the shipped
  authorizer config with `RATELIMIT_TRUSTED_PROXIES=127.0.0.1/32` and
  `wrk -s bench/clients.lua`, whose requests carry an `X-Forwarded-For`
  address out of 65536 in turn, so the keys spread over the 16384 slots
  and the three masters (the per-node table: EVALSHA calls and their
  `usec` in each master's `INFO commandstats`). b-tcp is not b: b has one
  client and a unix socket. The CPU table counts every server of a setup
  (replicas and sentinels too); the Redis tables count the masters.
- **b-sentinel/b-tcp** (information): the same against a master and its
  replica watched by three sentinels (`redis+sentinel://`): each worker
  asks a sentinel for the master when it connects, then talks to the
  master alone, so it should cost what b-tcp costs, replication aside.
- **b-cluster-r/b-sentinel** (information): the tests' cluster, 3 masters
  with a replica each, against the sentinel's master with its replica:
  both replicate every write. On one 2-CPU machine the replicas run on
  the same CPUs as everything else, which a production cluster does not.
- (g) nginx `limit_req` is the in-process ceiling: its counters live in one
  nginx's shared memory and are not shared across web servers.
"""


def cmd_doc(resdir, docpath):
    s = summarize(resdir)
    meta = s["meta"]
    keep = ""
    if os.path.exists(docpath):
        with open(docpath) as f:
            old = f.read()
        m = re.search(r"<!-- analysis:begin -->.*?<!-- analysis:end -->", old, re.S)
        if m:
            keep = m.group(0)
    if not keep:
        keep = ("<!-- analysis:begin -->\n## Analysis\n\n(written by hand after a run; "
                "bench/run keeps this section)\n<!-- analysis:end -->")
    missed = [r for r in s["ratios"] if not r["met"]]
    lines = []
    lines.append("# Benchmarks")
    lines.append("")
    lines.append("Generated by `bench/run` (the tables, the chart and the machine "
                 "section); the analysis section is written by hand and kept across runs.")
    lines.append("")
    lines.append("## How it was run")
    lines.append("")
    lines.append("```")
    lines.append(meta.get("command", "bench/run"))
    lines.append("```")
    lines.append("")
    lines.append("- date: %s" % meta.get("date", "?"))
    lines.append("- wrk: `%s` per variant and round, %s rounds, variants alternating "
                 "(each round starts one variant later); the median of the rounds is "
                 "reported" % (meta.get("wrk", "?"), meta.get("rounds", "?")))
    lines.append("- machine: %s, %s CPUs, %s" % (meta.get("cpu", "?"), meta.get("nproc", "?"),
                                                 meta.get("kernel", "?")))
    lines.append("- load average before / after the run: %s / %s" % (
        meta.get("load_before", "?"), meta.get("load_after", "?")))
    lines.append("- versions: %s" % meta.get("versions", "?"))
    lines.append("- setup: %s" % meta.get("setup", ""))
    lines.append("")
    lines.append("## Results")
    lines.append("")
    lines.append("![requests per second by variant](bench.png)")
    lines.append("")
    lines.append(tables(s))
    lines.append("## The targets")
    lines.append("")
    lines.append(TARGETS_TEXT)
    if missed:
        lines.append("Missed in this run: " + "; ".join(missed_text(r) for r in missed) + ".")
        lines.append("")
    pp = os.path.join(resdir, "profile.txt")
    if os.path.exists(pp):
        lines.append("## Profile (strace -c on the workers; callgrind on one worker)")
        lines.append("")
        lines.append("```")
        with open(pp) as f:
            lines.append(f.read().rstrip())
        lines.append("```")
        lines.append("")
    lines.append(keep)
    lines.append("")
    with open(docpath, "w") as f:
        f.write("\n".join(lines))


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd = argv[1]
    if cmd == "cpu":
        cmd_cpu(argv[2:])
    elif cmd == "callgrind":
        cmd_callgrind(*argv[2:6])
    elif cmd == "strace":
        cmd_strace(*argv[2:5])
    elif cmd == "cpudiff":
        cmd_cpudiff(argv[2], argv[3])
    elif cmd == "memproto":
        cmd_memproto(*argv[2:9])
    elif cmd == "report":
        cmd_report(argv[2])
    elif cmd == "doc":
        cmd_doc(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
