"""Plots for docs/benchmarks.md from the CSV files of the benchmarks (matplotlib, PNG).

    .venv/bin/python benchmarks/plots.py [--results benchmarks/results] [--img docs/img]
    .venv/bin/python benchmarks/plots.py --tables     # the Markdown tables, from the same CSVs

Needs matplotlib (the ``bench`` extra). Draws what it finds:

* ``bench-bootstrap.png``: job time vs ranks for each contender (median, min–max bars) and the
  ratio to the floor (from ``bootstrap.csv``);
* ``bench-breakdown.png``: where the time goes at the largest N profiled: CPU seconds per phase
  summed over ranks, and the critical path's milestones (from ``profile*.csv``);
* ``bench-teardown.png``: teardown and worker RSS per contender (from ``bootstrap.csv``);
* ``bench-scale.png``: the same as bench-bootstrap for larger N (from ``scale.csv``);
* ``bench-transfer.png``: TLS vs TCP (from ``transfer.csv``).
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path

STYLE = {  # contender -> (colour, line style, marker)
    "floor": ("black", "--", "o"),
    "dask-mpi": ("tab:red", "-", "s"),
    "dask-mpi-nodash": ("tab:red", ":", "s"),
    "batch-mpi": ("tab:blue", "-", "o"),
    "batch-file": ("tab:green", "-", "^"),
    "batch-rank0": ("tab:purple", "-", "D"),
    "batch-mpi-tcp": ("tab:blue", ":", "x"),
    "batch-mpi-nodash": ("tab:cyan", ":", "x"),
}


# drawn in the time-vs-ranks and teardown plots (every contender is in the tables)
PLOTTED = ["floor", "dask-mpi", "dask-mpi-nodash", "batch-mpi", "batch-file", "batch-rank0",
           "batch-mpi+proposed"]


def style(name: str) -> tuple[str, str, str]:
    base = name.split("+")[0]
    colour, line, marker = STYLE.get(base, ("tab:gray", "-", "."))
    return colour, ("-." if "+" in name else line), marker


def read(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def num(x: str | None) -> float | None:
    try:
        return float(x) if x not in (None, "") else None
    except ValueError:
        return None


def plot_bootstrap(rows: list[dict], out: Path, title: str,
                   heading: str = "Start cluster, wait for workers, 100 tasks, exit") -> None:
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["ok"] == "True" and r.get("kept", "True") == "True"
          and r["contender"] in PLOTTED]
    by: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in ok:
        by[r["contender"]][int(r["ranks"])].append(float(r["wall_s"]))
    floor = {n: statistics.median(v) for n, v in by.get("floor", {}).items()}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    for name, per_n in by.items():
        ns = sorted(per_n)
        med = [statistics.median(per_n[n]) for n in ns]
        lo = [m - min(per_n[n]) for m, n in zip(med, ns, strict=True)]
        hi = [max(per_n[n]) - m for m, n in zip(med, ns, strict=True)]
        colour, line, marker = style(name)
        ax.errorbar(ns, med, yerr=[lo, hi], label=name, color=colour, linestyle=line,
                    marker=marker, capsize=3)
        if name != "floor" and floor:
            ratio = [statistics.median(per_n[n]) / floor[n] for n in ns if n in floor]
            ax2.plot([n for n in ns if n in floor], ratio, color=colour, linestyle=line,
                     marker=marker, label=name)
    ax.set_xlabel("ranks (N)")
    ax.set_ylabel("job time, s (median; bars: min–max)")
    ax.set_title(heading)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax2.axhline(1.15, color="black", linewidth=0.8, linestyle=":")
    ax2.text(ax2.get_xlim()[0], 1.16, " target 1.15 × floor", fontsize=8)
    ax2.set_xlabel("ranks (N)")
    ax2.set_ylabel("median job time / median floor")
    ax2.set_title("Ratio to the import floor")
    ax2.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


PHASE_ORDER = [
    "interpreter", "import distributed", "import dask_batch", "MPI_Init", "TLS credentials",
    "scheduler init (dashboard)", "scheduler start", "rendezvous wait", "worker init",
    "worker register", "client connect", "teardown", "other",
]


def plot_breakdown(miles: list[dict], ranks: list[dict], out: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    n = max(int(r["ranks"]) for r in miles)
    names = list(dict.fromkeys(r["contender"] for r in miles if int(r["ranks"]) == n))
    # CPU per phase, summed over ranks, median over repetitions
    cpu: dict[str, dict[str, float]] = {}
    for name in names:
        reps: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for r in ranks:
            if r["contender"] == name and int(r["ranks"]) == n:
                rep = reps[r["rep"]]
                rep["total"] += float(r["cpu_total"])
                for p in PHASE_ORDER:
                    v = num(r.get(f"cpu:{p}"))
                    if v:
                        rep[p] += v
        cpu[name] = {p: statistics.median(rep[p] for rep in reps.values())
                     for p in [*PHASE_ORDER, "total"]}
        cpu[name]["other"] = max(0.0, cpu[name]["total"] - sum(
            cpu[name][p] for p in PHASE_ORDER if p != "other"))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(15, 5.2),
                                  gridspec_kw={"width_ratios": [1.15, 1]})
    cmap = plt.get_cmap("tab20")
    for i, p in enumerate(PHASE_ORDER):
        left = [sum(cpu[nm][q] for q in PHASE_ORDER[:i]) for nm in names]
        ax.barh(names, [cpu[nm][p] for nm in names], left=left, color=cmap(i), label=p)
    ax.invert_yaxis()
    ax.set_xlabel(f"CPU seconds, all {n} ranks together (median)")
    ax.set_title(f"Where the CPU goes, N = {n}")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="x", alpha=0.3)
    keys = ["imported", "mpi_init", "scheduler_up", "workers_registered", "work_done",
            "all_gone"]
    labels = ["all imported", "MPI_Init done", "scheduler published", "workers registered",
              "work done", "all processes gone"]
    colours = plt.get_cmap("Set2")
    for j, name in enumerate(names):
        rs = [r for r in miles if r["contender"] == name and int(r["ranks"]) == n]
        prev = 0.0
        for k, key in enumerate(keys):
            vals = [num(r.get(key)) for r in rs]
            vals = [v for v in vals if v is not None]
            if not vals:
                continue
            t = statistics.median(vals)
            ax2.barh(j, max(0.0, t - prev), left=prev, color=colours(k), label=labels[k])
            prev = max(prev, t)
    ax2.set_yticks(range(len(names)), names)
    ax2.invert_yaxis()
    ax2.set_xlabel("s after launch (median); a segment ends at its milestone")
    ax2.set_title(f"Critical path, N = {n}")
    handles, lbls = ax2.get_legend_handles_labels()
    seen = dict(zip(lbls, handles, strict=True))
    order = [lb for lb in labels if lb in seen]
    ax2.legend([seen[lb] for lb in order], order, fontsize=7, loc="lower right")
    ax2.grid(axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_teardown(rows: list[dict], out: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["ok"] == "True" and r.get("kept", "True") == "True"
          and num(r.get("teardown_s")) is not None and r["contender"] in PLOTTED]
    if not ok:
        return
    names = list(dict.fromkeys(r["contender"] for r in ok))
    ns = sorted({int(r["ranks"]) for r in ok})
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.8 / len(ns)
    for i, n in enumerate(ns):
        vals, rss = [], []
        for name in names:
            rs = [r for r in ok if r["contender"] == name and int(r["ranks"]) == n]
            vals.append(statistics.median(float(r["teardown_s"]) for r in rs) if rs else 0)
            w = [num(r.get("rss_worker_mib")) for r in rs]
            w = [x for x in w if x]
            rss.append(statistics.median(w) if w else 0)
        xs = [j + i * width for j in range(len(names))]
        ax.bar(xs, vals, width, label=f"N = {n}")
        ax2.bar(xs, rss, width, label=f"N = {n}")
    for a in (ax, ax2):
        a.set_xticks([j + width * (len(ns) - 1) / 2 for j in range(len(names))], names,
                     rotation=20, fontsize=8)
        a.grid(axis="y", alpha=0.3)
        a.legend(fontsize=8)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle=":")
    ax.set_ylabel("s (median)")
    ax.set_title("Teardown: client done → every process gone")
    ax2.set_ylabel("MiB (median over workers and runs)")
    ax2.set_title("Worker RSS when the client is done")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_transfer(rows: list[dict], out: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    modes = list(dict.fromkeys(r["mode"] for r in rows))
    metrics = [("startup_s", "start-up, s"), ("connect_ms", "one connection, ms"),
               ("w2w_s", "100 MiB worker→worker, s"), ("scatter_s", "100 MiB scatter, s"),
               ("gather_s", "100 MiB gather, s")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(14, 3.4))
    colours = {"tls": "tab:blue", "tls-rsa": "tab:orange", "tcp": "tab:green"}
    for ax, (key, label) in zip(axes, metrics, strict=True):
        meds, lo, hi = [], [], []
        for m in modes:
            vals = [float(r[key]) for r in rows if r["mode"] == m and num(r.get(key))]
            med = statistics.median(vals) if vals else 0
            meds.append(med)
            lo.append(med - min(vals) if vals else 0)
            hi.append(max(vals) - med if vals else 0)
        ax.bar(modes, meds, yerr=[lo, hi], capsize=3,
               color=[colours.get(m, "tab:gray") for m in modes])
        ax.set_title(label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def machine_title(results: Path, stem: str) -> str:
    import json

    p = results / f"{stem}-machine.json"
    if not p.exists():
        return ""
    m = json.loads(p.read_text())
    return (f"{m['date']} · {m['host']}: {m['nproc']} × {m['cpu']}, {m['ram_gib']} GiB · "
            f"Python {m['python']} · MPICH {m['mpich']} · distributed {m['distributed']} · "
            f"ranks oversubscribed on {m['nproc']} cores")


def typed(rows: list[dict]) -> list[dict]:
    """CSV strings back to numbers and booleans."""
    out = []
    for r in rows:
        t: dict = {}
        for k, v in r.items():
            if v in ("True", "False"):
                t[k] = v == "True"
            elif v == "":
                t[k] = None
            else:
                try:
                    t[k] = int(v)
                except ValueError:
                    try:
                        t[k] = float(v)
                    except ValueError:
                        t[k] = v
        out.append(t)
    return out


# (contender, base, what the ratio shows), where both ran
PAIRS = [
    ("batch-mpi", "dask-mpi-nodash", "batch-mpi / dask-mpi-nodash (equal work: no dashboard "
     "served)"),
    ("batch-mpi-nodash", "dask-mpi-nodash", "batch-mpi-nodash / dask-mpi-nodash"),
    ("batch-file", "dask-mpi-nodash", "batch-file / dask-mpi-nodash"),
    ("batch-mpi-tcp-nonanny", "dask-mpi-nodash", "batch-mpi-tcp-nonanny / dask-mpi-nodash "
     "(dask-mpi's transport and worker: TCP, no nanny)"),
    ("batch-mpi", "batch-mpi-tcp", "batch-mpi / batch-mpi-tcp (TLS)"),
    ("batch-mpi", "batch-mpi-nonanny", "batch-mpi / batch-mpi-nonanny (the nanny)"),
    ("batch-mpi", "batch-mpi-nodash", "batch-mpi / batch-mpi-nodash (the dashboard)"),
    ("batch-mpi", "batch-mpi-via-scheduler", "batch-mpi / batch-mpi-via-scheduler (gathers "
     "straight from the workers)"),
]


def what_each_default_costs(rows: list[dict], paired) -> str:
    """Paired median (min–max) ratios of one contender over another, per N."""
    ns = sorted({r["ranks"] for r in rows})
    lines = []
    for name, base, label in PAIRS:
        cells = []
        for n in ns:
            v = paired(rows, name, n, base)
            cells.append(f"{statistics.median(v):.2f} ({min(v):.2f}–{max(v):.2f})" if v else "–")
        if any(c != "–" for c in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if not lines:
        return ""
    head = "| ratio | " + " | ".join(f"N = {n}" for n in ns) + " |"
    return "\n".join([head, "|---|" + "---|" * len(ns), *lines])


def tables(results: Path) -> str:
    """The Markdown tables of docs/benchmarks.md, from the CSV files."""
    import importlib.util
    import sys

    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    import bootstrap
    import harness as h

    # benchmarks/profile.py by path: the name "profile" is also a standard-library module
    spec = importlib.util.spec_from_file_location("bench_profile", here / "profile.py")
    prof = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(prof)  # type: ignore[union-attr]

    parts = []
    for stem in ("bootstrap", "scale"):
        if (results / f"{stem}.csv").exists():
            rows = typed(read(results / f"{stem}.csv"))
            parts += [f"### {stem}", bootstrap.markdown(bootstrap.summarise(rows))]
            costs = what_each_default_costs(rows, bootstrap.paired)
            if costs:
                parts += [f"### {stem}: paired ratios", costs]
    if (results / "profile.csv").exists():
        parts += ["### profile", prof.report(typed(read(results / "profile.csv")),
                                              typed(read(results / "profile-ranks.csv")))]
    if (results / "transfer-summary.csv").exists():
        rows = typed(read(results / "transfer-summary.csv"))
        parts += ["### transfer", h.table(rows, ["mode", "runs", "startup_s", "connect_ms",
                                                 "w2w_s", "w2w_mib_s", "scatter_s",
                                                 "gather_s", "gather_mib_s"])]
        for r in rows:
            if r.get("key"):
                parts.append(f"{r['mode']}: {r['key']}; own cert {r['own_cert']}; no client "
                             f"cert {r['no_client_cert']}; foreign cert {r['foreign_cert']}")
    if (results / "transfer-credentials.csv").exists():
        rows = typed(read(results / "transfer-credentials.csv"))
        parts += ["### credentials", h.table(rows, list(rows[0]))]
    return "\n\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="benchmarks/results")
    ap.add_argument("--img", default="docs/img")
    ap.add_argument("--tables", action="store_true",
                    help="print the Markdown tables instead of drawing")
    a = ap.parse_args()
    if a.tables:
        print(tables(Path(a.results)))
        return
    import matplotlib

    matplotlib.use("Agg")
    results, img = Path(a.results), Path(a.img)
    img.mkdir(parents=True, exist_ok=True)
    done = []
    if (results / "bootstrap.csv").exists():
        rows = read(results / "bootstrap.csv")
        title = machine_title(results, "bootstrap")
        plot_bootstrap(rows, img / "bench-bootstrap.png", title)
        plot_teardown(rows, img / "bench-teardown.png", title)
        done += ["bench-bootstrap.png", "bench-teardown.png"]
    if (results / "scale.csv").exists():
        plot_bootstrap(read(results / "scale.csv"), img / "bench-scale.png",
                       machine_title(results, "scale"),
                       "More ranks than cores: 2 cores oversubscribed up to 16×")
        done.append("bench-scale.png")
    if (results / "profile.csv").exists() and (results / "profile-ranks.csv").exists():
        plot_breakdown(read(results / "profile.csv"), read(results / "profile-ranks.csv"),
                       img / "bench-breakdown.png", machine_title(results, "profile"))
        done.append("bench-breakdown.png")
    if (results / "transfer.csv").exists():
        plot_transfer(read(results / "transfer.csv"), img / "bench-transfer.png",
                      machine_title(results, "transfer"))
        done.append("bench-transfer.png")
    print("wrote", ", ".join(str(img / d) for d in done) or "nothing (no CSV found)")


if __name__ == "__main__":
    main()
