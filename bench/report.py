#!/usr/bin/env python3
"""Turns bench/compare.sh's raw JSON into bench/results/summary.md and PNG plots.

    report.py RESULTS_DIR IMAGES_DIR [README]

With README given it also writes the README's short table (between the bench-table markers); CI
does that to a copy of the README and checks that nothing changed.

Every figure in the table is the median over the runs of that cell (the number of runs is
printed beside each table). Nothing here measures; it only reads what `raftkv bench` and
compare.sh wrote.
"""

import glob
import json
import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SYSTEMS = ["raftkv", "etcd", "pysyncobj"]
LABEL = {"raftkv": "raftkv", "etcd": "etcd", "pysyncobj": "PySyncObj service"}
CONNECTIONS = [1, 16, 64, 256]
WORKLOADS = ["put", "append", "get-leader", "get-follower", "get-local", "mixed"]
BUCKET_MS = 50  # raftkv bench's TIMELINE_BUCKET_MS


def load(raw, pattern):
    return [json.load(open(p)) for p in sorted(glob.glob(os.path.join(raw, pattern)))]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=0, unit=""):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}{unit}"


def cell(raw, system, workload, c):
    runs = load(raw, f"{system}-{workload}-c{c}-r*.json")
    runs = [r for r in runs if "ops_per_sec" in r]
    if not runs:
        return None
    return {
        "runs": len(runs),
        "ops": median([r["ops_per_sec"] for r in runs]),
        "p50": median([r["p50_ms"] for r in runs]),
        "p99": median([r["p99_ms"] for r in runs]),
        "p999": median([r["p999_ms"] for r in runs]),
        "errors": sum(sum(r["errors"].values()) for r in runs),
        "elections": sum(r["elections"] or 0 for r in runs),
        "client_cpu": median([r["client_cpu_share"] for r in runs]),
    }


def efficiency(raw, system, c=64):
    """fsyncs and server CPU-µs per acknowledged write, from the put runs at c connections."""
    fs, cpu = [], []
    for p in sorted(glob.glob(os.path.join(raw, f"{system}-put-c{c}-r*.server.json"))):
        server = json.load(open(p))
        bench = json.load(open(p.replace(".server.json", ".json")))
        # The counters span warm-up + run; the writes in that span are estimated from the
        # measured rate (the warm-up runs the same load).
        writes = bench["ops_per_sec"] * server["seconds"]
        if writes > 0:
            fs.append(server["fsyncs"] / writes)
            cpu.append(server["cpu_ticks"] * 10_000 / writes)
    return median(fs), median(cpu)


def main():
    out, images = sys.argv[1], sys.argv[2]
    raw = os.path.join(out, "raw")
    machine = json.load(open(os.path.join(raw, "machine.json")))
    disk = json.load(open(os.path.join(raw, "disk.json")))
    systems = [s for s in SYSTEMS if glob.glob(os.path.join(raw, f"{s}-put-*.json"))]
    lines = [
        "# raftkv vs etcd vs the PySyncObj service",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['mem_gb']} GB, "
        f"kernel {machine['kernel']}, {machine['fs']}; raw fsync rate of that disk "
        f"{disk['fsyncs_per_sec']:,.0f}/s (4 KiB write + fsync, one thread). "
        f"raftkv {machine['raftkv']}, etcd {machine['etcd']}, PySyncObj {machine['pysyncobj']}; "
        f"{machine['date']}. All five nodes of a system, and the load generator, share the "
        "machine; one system runs at a time, in rounds (each round starts a fresh cluster of "
        "every system in turn and runs every workload once, so host drift spreads over all "
        "systems). Figures are medians over the runs shown.",
        "",
        "## Writes (PUT through the leader): throughput and latency by connections",
        "",
        "| system | connections | runs | writes/s | p50 ms | p99 ms | p99.9 ms | errors | elections | bench CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    cells = {}
    for s in systems:
        for c in CONNECTIONS:
            x = cell(raw, s, "put", c)
            cells[(s, "put", c)] = x
            if x:
                lines.append(
                    f"| {LABEL[s]} | {c} | {x['runs']} | {fmt(x['ops'])} | {fmt(x['p50'], 2)} | "
                    f"{fmt(x['p99'], 2)} | {fmt(x['p999'], 2)} | {x['errors']} | "
                    f"{x['elections']} | {fmt(x['client_cpu'] * 100)} % |"
                )
    lines += [
        "",
        "## Every workload at 64 connections",
        "",
        "| system | workload | runs | ops/s | p50 ms | p99 ms | errors | elections | bench CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in systems:
        for w in WORKLOADS:
            x = cells.get((s, w, 64)) or cell(raw, s, w, 64)
            cells[(s, w, 64)] = x
            if x:
                lines.append(
                    f"| {LABEL[s]} | {w} | {x['runs']} | {fmt(x['ops'])} | {fmt(x['p50'], 2)} | "
                    f"{fmt(x['p99'], 2)} | {x['errors']} | {x['elections']} | "
                    f"{fmt(x['client_cpu'] * 100)} % |"
                )
    faults = {}
    lines += [
        "",
        "## Faults, memory and efficiency",
        "",
        "| system | failover: new leader ms | failover: first write ms | catch-up of N writes (E entries) ms "
        "| restart to serving ms | idle RSS MB/node | peak RSS under load MB/node "
        "| fsyncs per write @64 | server CPU-µs per write @64 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in systems:
        fo = [r["fault"] for r in load(raw, f"{s}-failover-r*.json")]
        cu = [r["fault"] for r in load(raw, f"{s}-catchup-r*.json")]
        rs = load(raw, f"{s}-restart-r*.json")
        idle = load(raw, f"{s}-idle.json")
        peak = load(raw, f"{s}-load.json")
        f = {
            "new_leader": median([x["new_leader_ms"] for x in fo]),
            "first_write": median([x["first_write_ms"] for x in fo]),
            "failovers": len(fo),
            "catch_up": median([x["catch_up_ms"] for x in cu]),
            "behind": median([x["behind"] for x in cu]),
            # Absent from runs before writes were batched, when every write was one entry.
            "behind_entries": median([x.get("behind_entries", x["behind"]) for x in cu]),
            "restart": median([x["restart_to_serving_ms"] for x in rs]),
            "idle_mb": median(idle[0]["idle_rss_kb"]) / 1024 if idle else None,
            "peak_mb": median(peak[0]["load_peak_rss_kb"]) / 1024 if peak else None,
        }
        f["fsyncs"], f["cpu_us"] = efficiency(raw, s)
        faults[s] = (f, fo)
        missed = sum(1 for x in fo if x["first_write_ms"] is None)
        # A run where no write sent after the kill was acknowledged before the run ended.
        missed = f"; none acknowledged before the run ended in {missed}" if missed else ""
        lines.append(
            f"| {LABEL[s]} | {fmt(f['new_leader'])} ({f['failovers']} runs) | "
            f"{fmt(f['first_write'])}{missed} | {fmt(f['catch_up'])} (N={fmt(f['behind'])}, E={fmt(f['behind_entries'])}, {len(cu)} runs) | "
            f"{fmt(f['restart'])} ({len(rs)} runs) | {fmt(f['idle_mb'], 1)} | {fmt(f['peak_mb'], 1)} | "
            f"{fmt(f['fsyncs'], 3)} | {fmt(f['cpu_us'])} |"
        )
    lines += targets(cells, faults, disk)
    with open(os.path.join(out, "summary.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    if len(sys.argv) > 3:
        splice(sys.argv[3], readme_table(cells, faults, systems, disk, machine))
    plots(cells, faults, systems, out, images)
    print("\n".join(lines))


BEGIN, END = "<!-- bench-table:begin -->\n", "<!-- bench-table:end -->\n"


def readme_table(cells, faults, systems, disk, machine):
    """The README's table: the headline figures of this run, one column per system."""

    def col(s, w, c, k, digits=0):
        x = cells.get((s, w, c))
        return fmt(x[k] if x else None, digits)

    def fault(s, k, digits=0):
        return fmt(faults[s][0][k], digits)

    rows = [
        ("writes/s, 1 / 16 / 64 / 256 connections",
         lambda s: " / ".join(col(s, "put", c, "ops") for c in CONNECTIONS)),
        ("write p50 / p99 at 16 connections",
         lambda s: f"{col(s, 'put', 16, 'p50', 1)} / {col(s, 'put', 16, 'p99', 1)} ms"),
        ("linearizable reads/s on the leader, 64 conn.", lambda s: col(s, "get-leader", 64, "ops")),
        ("failover: kill -9 leader → first write acknowledged",
         lambda s: f"{fault(s, 'first_write')} ms"),
        ("catch-up of a follower 10,000 writes behind", lambda s: f"{fault(s, 'catch_up')} ms"),
        ("restart (kill -9) → serving a linearizable read", lambda s: f"{fault(s, 'restart')} ms"),
        ("RSS per node, idle / peak under load",
         lambda s: f"{fault(s, 'idle_mb')} / {fault(s, 'peak_mb')} MB"),
        ("server CPU per write, 64 conn. (all 5 nodes)", lambda s: f"{fault(s, 'cpu_us')} µs"),
        ("fsyncs per write, 64 conn. (all 5 nodes)",
         lambda s: "none" if faults[s][0]["fsyncs"] == 0 else fault(s, "fsyncs", 2)),
    ]

    def counts(values):
        values = sorted(set(values))
        return str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"

    runs = counts(x["runs"] for (sys_, _, _), x in cells.items() if sys_ in systems and x)
    failovers = counts(faults[s][0]["failovers"] for s in systems)
    lines = [
        f"Run of raftkv {machine['raftkv']}, {machine['date'][:10]}; the disk did "
        f"{disk['fsyncs_per_sec']:,.0f} fsyncs/s. Medians over {runs} runs per load figure "
        f"and {failovers} failovers.",
        "",
        "| | " + " | ".join(LABEL[s] for s in systems) + " |",
        "|---|" + "---:|" * len(systems),
    ]
    lines += [f"| {name} | " + " | ".join(f(s) for s in systems) + " |" for name, f in rows]
    return BEGIN + "\n".join(lines) + "\n" + END


def splice(readme, block):
    """Replaces the README's block between the bench-table markers with `block`."""
    text = open(readme).read()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    with open(readme, "w") as fh:
        fh.write(text[:start] + block + text[end:])


def targets(cells, faults, disk):
    """The issue's targets, checked against this run."""

    def ratio(a, b):
        return a / b if a and b else None

    def get(s, w, c, k):
        x = cells.get((s, w, c))
        return x[k] if x else None

    rows = []
    if "etcd" in faults:
        r = ratio(get("raftkv", "put", 64, "ops"), get("etcd", "put", 64, "ops"))
        rows.append(("writes @64 ≥ 3× etcd", r is not None and r >= 3, f"{fmt(r, 2)}×"))
        a, b = get("raftkv", "put", 16, "p99"), get("etcd", "put", 16, "p99")
        rows.append(("p99 write @16 ≤ etcd's", a is not None and b is not None and a <= b,
                     f"{fmt(a, 2)} ms vs {fmt(b, 2)} ms"))
        r = ratio(get("raftkv", "get-leader", 64, "ops"), get("etcd", "get-leader", 64, "ops"))
        rows.append(("linearizable reads on the leader @64 ≥ 3× etcd", r is not None and r >= 3,
                     f"{fmt(r, 2)}×"))
    if "pysyncobj" in faults:
        r = ratio(get("raftkv", "put", 64, "ops"), get("pysyncobj", "put", 64, "ops"))
        rows.append(("writes @64 ≥ 20× the PySyncObj service", r is not None and r >= 20,
                     f"{fmt(r, 1)}×"))
    if "raftkv" in faults:
        f = faults["raftkv"][0]
        rows.append(("failover (first write after the kill) ≤ 1 s",
                     f["first_write"] is not None and f["first_write"] <= 1000,
                     f"{fmt(f['first_write'])} ms"))
        el = sum(x["elections"] for (s, _, _), x in cells.items() if s == "raftkv" and x)
        rows.append(("no election during any load run", el == 0, f"{el} term changes"))
        rows.append(("catch-up of 10,000 writes ≤ 1 s",
                     f["catch_up"] is not None and f["catch_up"] <= 1000,
                     f"{fmt(f['catch_up'])} ms"))
        rows.append(("idle RSS ≤ 20 MB per node", f["idle_mb"] is not None and f["idle_mb"] <= 20,
                     f"{fmt(f['idle_mb'], 1)} MB"))
        if f["fsyncs"] is not None:
            rows.append(("(info) fsyncs per node per second @64 vs the disk's raw rate", True,
                         f"{fmt(f['fsyncs'] * get('raftkv', 'put', 64, 'ops') / 5)} vs "
                         f"{fmt(disk['fsyncs_per_sec'])}"))
    out = ["", "## Targets (issue 5), checked on this run", "",
           "| target | met | this run |", "|---|---|---|"]
    out += [f"| {t} | {'yes' if ok else '**no**'} | {v} |" for t, ok, v in rows]
    return out


def plots(cells, faults, systems, out, images):
    colors = {"raftkv": "tab:blue", "etcd": "tab:orange", "pysyncobj": "tab:green"}
    os.makedirs(images, exist_ok=True)

    def save(fig, name):
        fig.tight_layout()
        for d in (out, images):
            fig.savefig(os.path.join(d, f"bench-{name}.png"), dpi=110)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for s in systems:
        xs = [c for c in CONNECTIONS if cells.get((s, "put", c))]
        ax.plot(xs, [cells[(s, "put", c)]["ops"] for c in xs], "o-", label=LABEL[s], color=colors[s])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(CONNECTIONS, [str(c) for c in CONNECTIONS])
    ax.set_xlabel("concurrent connections")
    ax.set_ylabel("acknowledged writes / s (median)")
    ax.set_title("Write throughput vs connections (5 nodes, fsync on)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    save(fig, "throughput")

    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=False)
    for ax, c in zip(axes, (16, 64)):
        width = 0.8 / max(len(systems), 1)
        for k, s in enumerate(systems):
            x = cells.get((s, "put", c))
            if not x:
                continue
            values = [x["p50"], x["p99"], x["p999"]]
            ax.bar([i + k * width for i in range(3)], values, width, label=LABEL[s], color=colors[s])
        ax.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(3)], ["p50", "p99", "p99.9"])
        ax.set_yscale("log")
        ax.set_ylabel("write latency, ms (median of runs)")
        ax.set_title(f"{c} connections")
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[0].legend()
    save(fig, "latency")

    fig, ax = plt.subplots(figsize=(8, 4.2))
    starts = []
    for s in systems:
        runs = [r for r in faults.get(s, (None, []))[1] if r["first_write_ms"] is not None]
        if not runs:
            continue
        # The run whose first-write time is the median one.
        run = sorted(runs, key=lambda r: r["first_write_ms"])[len(runs) // 2]
        kill = run["kill_at_ms"]
        xs = [(i * BUCKET_MS - kill) / 1000 for i in range(len(run["timeline"]))]
        ys = [n * 1000 / BUCKET_MS for n in run["timeline"]]
        # The warm-up is not recorded: start where the measured window does.
        starts.append(next((x for x, y in zip(xs, ys) if y > 0), xs[0]))
        ax.step(xs, ys, where="post", label=f"{LABEL[s]} (first write after {run['first_write_ms']:.0f} ms)",
                color=colors[s])
    ax.axvline(0, color="red", linestyle="--", linewidth=1)
    ax.text(0.03, 0.03, "kill -9 leader", transform=ax.get_xaxis_transform(), color="red")
    if starts:
        ax.set_xlim(left=min(starts))
    ax.set_xlabel("seconds since the leader was killed")
    ax.set_ylabel("acknowledged writes / s (50 ms bins)")
    ax.set_title("Failover under a 16-connection write load (median run)")
    ax.set_yscale("symlog", linthresh=100)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    save(fig, "failover")


if __name__ == "__main__":
    main()
