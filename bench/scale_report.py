#!/usr/bin/env python3
"""Turns bench/scale.sh's raw JSON into bench/results/scale/summary.md and images/scale-*.png.

    scale_report.py RESULTS_DIR IMAGES_DIR [README]

With README given it also writes the tables into it, between the scale-table markers; CI does
that to a copy of the README and checks that nothing changed.

Nothing here measures; it reads what `raftkv bench` and scale.sh wrote. Throughput, latency and
restart times are medians over the runs of a cell (their number is printed); memory, disk, the
preload and the join come from one reading.
"""

import glob
import json
import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SIZE_ORDER = {"0": 0, "10M": 1, "100M": 2, "1G": 3}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=0):
    return "–" if v is None else f"{v:,.{digits}f}"


def value_label(v):
    if v >= 1_000_000:
        return f"{v / 1e6:.0f} MB"
    if v >= 1024:
        return f"{v // 1024} KiB"
    return f"{v} B"


def cells(raw):
    rows = []
    for path in sorted(glob.glob(os.path.join(raw, "*.nodes.json"))):
        nodes = json.load(open(path))
        name = f"{nodes['system']}-{nodes['size']}-{nodes['value_bytes']}"
        runs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(raw, f"{name}.r*.bench.json")))]
        failed = [r["failed"] for r in runs if "failed" in r]
        runs = [r for r in runs if "failed" not in r]
        preload = json.load(open(os.path.join(raw, f"{name}.preload.json"))).get("preload")
        join = nodes.get("join") or {}
        errors = sum(sum(r["errors"].values()) for r in runs)
        rows.append(
            {
                "system": nodes["system"],
                "size": nodes["size"],
                "value": nodes["value_bytes"],
                "runs": len(runs),
                "failed": failed,
                "ops": median([r["ops_per_sec"] for r in runs]),
                "mbs": median([r["ops_per_sec"] * nodes["value_bytes"] / 1e6 for r in runs]),
                "p50": median([r["p50_ms"] for r in runs]),
                "p99": median([r["p99_ms"] for r in runs]),
                "errors": errors,
                "steal": median(nodes.get("steal_pct") or []),
                "preload_mbs": preload and preload["mb_per_sec"],
                "preload_failed": nodes.get("preload_failed"),
                "rss_mb": mb(median(nodes["rss_kb"])),
                "disk_mb": mb(median(nodes["disk_kb"])),
                "restart_ms": median(nodes["restart_ms"]),
                "restart_failed": nodes.get("restart_failed"),
                "restarts": len(nodes["restart_ms"]),
                "join": join,
            }
        )
    rows.sort(key=lambda r: (r["system"], r["value"], SIZE_ORDER.get(r["size"], 9)))
    return rows


def mb(kb):
    return None if kb is None else kb / 1024


def rate(nbytes, ms):
    if not nbytes or not ms:
        return None
    return nbytes / 1e6 / (ms / 1000)


def phase(ms, nbytes=None):
    """A snapshot phase's duration, with its rate when the bytes are known; – when absent or 0
    (no snapshot was needed)."""
    if not ms:
        return "–"
    return fmt(ms) if nbytes is None else f"{fmt(ms)} ({fmt(rate(nbytes, ms))})"


def table(rows, machine, raw_dir):
    out = [
        "# Cost curves as the data grows (bench/scale.sh)",
        "",
        f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, {machine.get('mem_gb')} GB"
        + (f", disk writing {machine['disk_write_mb_s']} MB/s (1 GiB, fdatasync)"
           if machine.get("disk_write_mb_s") else "")
        + "; "
        f"etcd {machine.get('etcd')}; raftkv {machine.get('raftkv')}; {machine.get('date')}"
        + (f"; resumed {', '.join(open(os.path.join(raw_dir, 'resumed')).read().split(chr(10))[:-1])}"
           if os.path.exists(os.path.join(raw_dir, "resumed")) else "")
        + ".",
        "Five nodes as five processes on loopback, fsync on. PUT figures: 64 connections, median "
        "of the runs shown; restart: kill -9 of a follower until it serves a linearizable read, "
        "median. RSS and disk: median node after the runs. Steal: the share of CPU time the "
        "hypervisor gave to other machines during the PUT runs (/proc/stat), median; a cell with "
        "much of it measured a slower machine (– : not recorded, runs before steal was).",
        "",
        "| system | state | value | runs | PUT/s | MB/s | p50 ms | p99 ms | errors | steal % "
        "| preload MB/s | RSS MB | disk MB | restart ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["preload_failed"]:
            out.append(
                f"| {r['system']} | {r['size']} | {value_label(r['value'])} | preload failed² "
                + "| – " * 10 + "|"
            )
            continue
        out.append(
            f"| {r['system']} | {r['size']} | {value_label(r['value'])} | {r['runs']}"
            f"{' (+' + str(len(r['failed'])) + ' failed: ' + r['failed'][0] + ')' if r['failed'] else ''} | {fmt(r['ops'])} "
            f"| {fmt(r['mbs'], 1)} | {fmt(r['p50'], 2)} | {fmt(r['p99'], 2)} | {r['errors']} "
            f"| {fmt(r['steal'], 1)} "
            f"| {fmt(r['preload_mbs'], 1)} | {fmt(r['rss_mb'])} | {fmt(r['disk_mb'])} "
            f"| {fmt(r['restart_ms']) if not r['restart_failed'] else 'failed¹'} |"
        )
    failed = [r for r in rows if r["restart_failed"]]
    if failed:
        out.append("")
        out += [f"¹ {r['system']}, {r['size']}, {value_label(r['value'])}: {r['restart_failed']}." for r in failed]
    unloaded = [r for r in rows if r["preload_failed"]]
    if unloaded:
        out.append("")
        out += [
            f"² {r['system']}, {r['size']}, {value_label(r['value'])}: loading the state failed: "
            f"{r['preload_failed']}."
            for r in unloaded
        ]
    out += [
        "",
        "Catching up (a sixth server joins the loaded cluster: raftkv `--join`, etcd "
        "`member add --learner`): time until it has applied the leader's last entry and its peak "
        "RSS; the snapshot's phases from /metrics, one reading each. raftkv: the leader's last "
        "build and send, the new server's receive and install. etcd streams its database file as "
        "it is (no build step) and its metrics time the send and the receive only; its snapshot "
        "MB is the learner's database afterwards. A state with no snapshot yet (etcd compacts "
        "its log every 100,000 entries) is caught up by log replication: no phases.",
        "",
        "| system | state | value | snapshot MB | build ms (MB/s) | send ms (MB/s) | receive ms "
        "| install ms (MB/s) | catch-up ms | new server's peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        j = r["join"]
        if not j:
            continue
        if j.get("failed") or j.get("caught_up") is False:
            out.append(
                f"| {r['system']} | {r['size']} | {value_label(r['value'])} | – | – | – | – | – "
                f"| did not catch up{': ' + j['failed'] if j.get('failed') else ' in 10 min'} | – |"
            )
            continue
        size = j.get("install_bytes") or j.get("build_bytes")

        out.append(
            f"| {r['system']} | {r['size']} | {value_label(r['value'])} | {fmt(size and size / 1e6, 1)} "
            f"| {phase(j.get('build_ms'), j.get('build_bytes'))} "
            f"| {phase(j.get('send_ms'), size)} | {phase(j.get('receive_ms'))} "
            f"| {phase(j.get('install_ms'), size)} "
            f"| {fmt(j.get('catch_up_ms'))} | {fmt(j.get('joiner_peak_rss_kb', 0) / 1024)} |"
        )
    return out


def on_off(raw):
    """Snapshots on against off: the median of each figure over the runs of each mode."""
    out = []
    modes = {}
    for mode in ("on", "off"):
        meta_path = os.path.join(raw, f"snapshots-{mode}.jsonl")
        bench_path = os.path.join(raw, f"snapshots-{mode}.bench.jsonl")
        if os.path.exists(meta_path) and os.path.exists(bench_path):
            metas = [json.loads(line) for line in open(meta_path) if line.strip()]
            benches = [json.loads(line) for line in open(bench_path) if line.strip()]
            modes[mode] = (metas, benches)
    if len(modes) < 2:
        return out

    def median(runs, key):
        return statistics.median(r[key] for r in runs)

    def steal(metas):
        values = [m["steal_pct"] for m in metas if "steal_pct" in m]
        return statistics.median(values) if values else None

    on = modes["on"][1]
    out += [
        "",
        "Write latency while snapshots are taken (raftkv, 4 KiB PUTs at 64 "
        f"connections, {len(on)} runs of {fmt(on[0]['seconds'])} s per mode on one loaded "
        "cluster each, medians): snapshots as configured against snapshots off. A snapshot is "
        "full (the whole state written) or a delta (what changed since the last one, appended).",
        "",
        "| snapshots | state | full + delta snapshots in each run (all nodes) "
        "| leader's last full / delta ms | PUT/s | p50 ms | p99 ms | p99.9 ms | steal % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, (metas, runs) in modes.items():
        builds = ", ".join(
            f"{m['builds_during_run']} + {m.get('deltas_during_run', 0)}" for m in metas
        )
        last = f"{fmt(metas[-1]['last_build_ms'])} / {fmt(metas[-1].get('last_delta_ms', 0))}"
        out.append(
            f"| {mode} | {metas[0]['size']} | {builds} | {last} "
            f"| {fmt(median(runs, 'ops_per_sec'))} | {fmt(median(runs, 'p50_ms'), 2)} "
            f"| {fmt(median(runs, 'p99_ms'), 2)} | {fmt(median(runs, 'p999_ms'), 2)} "
            f"| {fmt(steal(metas), 1)} |"
        )
    ratio = median(modes["on"][1], "p99_ms") / median(modes["off"][1], "p99_ms")
    per_run = ", ".join(
        f"{a['p99_ms']:.1f}/{b['p99_ms']:.1f}" for a, b in zip(modes["on"][1], modes["off"][1])
    )
    out.append("")
    out.append(
        f"p99 with snapshots / without: {ratio:.2f}× (medians; run by run, on/off ms: {per_run})."
    )
    return out


def plot(rows, images):
    sizes = sorted({r["size"] for r in rows}, key=lambda s: SIZE_ORDER.get(s, 9))
    for key, ylabel, fname in [
        ("ops", "PUTs per second (64 connections)", "scale-throughput.png"),
        ("p99", "PUT p99 latency, ms", "scale-p99.png"),
        ("rss_mb", "resident memory per node, MB", "scale-rss.png"),
        ("restart_ms", "kill -9 → serving a linearizable read, ms", "scale-restart.png"),
    ]:
        fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
        for system, style in (("raftkv", "-o"), ("etcd", "--s")):
            for value in sorted({r["value"] for r in rows}):
                pts = [(sizes.index(r["size"]), r[key]) for r in rows
                       if r["system"] == system and r["value"] == value and r[key] is not None]
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, style, label=f"{system}, {value_label(value)} values")
        ax.set_xticks(range(len(sizes)))
        ax.set_xticklabels([f"{s} loaded" for s in sizes])
        ax.set_ylabel(ylabel)
        if key in ("ops", "p99"):
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        ax.set_title(f"{ylabel} as the state grows (five nodes, one machine)", fontsize=10)
        fig.tight_layout()
        fig.savefig(os.path.join(images, fname))
        plt.close(fig)


def main():
    out_dir, images = sys.argv[1], sys.argv[2]
    raw = os.path.join(out_dir, "raw")
    machine = json.load(open(os.path.join(raw, "machine.json")))
    rows = cells(raw)
    lines = table(rows, machine, raw) + on_off(raw)
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    plot(rows, images)
    if len(sys.argv) > 3:
        readme = open(sys.argv[3]).read()
        start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
        body = "\n".join(lines[2:]) + "\n"  # without the title
        with open(sys.argv[3], "w") as f:
            f.write(readme[:start] + body + readme[end:])
    print("\n".join(lines))


BEGIN, END = "<!-- scale-table:begin -->\n", "<!-- scale-table:end -->\n"


if __name__ == "__main__":
    main()
