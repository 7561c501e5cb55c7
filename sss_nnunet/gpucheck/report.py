"""Markdown rendering of the GPU check's report (the JSON holds every number)."""

from __future__ import annotations


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _numerics(sec: dict) -> list[str]:
    lines = ["## (a) Bi-WKV numerics vs float64 reference", ""]
    for backend, res in sec.items():
        if not isinstance(res, dict):
            continue
        if res.get("status") != "ok" and "results" not in res:
            lines += [f"- **{backend}**: {res.get('reason') or res.get('status') + ': ' + res.get('error', '')}", ""]
            continue
        lines += [f"**{backend}** on {res['device']}: {res['status']}", "",
                  "| case | y | dw | du | dk | dv | deterministic | status |", "|---|---|---|---|---|---|---|---|"]
        for r in res["results"]:
            e = r["errors"]
            lines.append(f"| {r['case']} | " + " | ".join(_fmt(e[n], 2) for n in ("y", "dw", "du", "dk", "dv"))
                         + f" | {r['deterministic']} | {r['status']} |")
        lines.append("")
    return lines


def _bench(sec: dict) -> list[str]:
    lines = ["## (b) Bi-WKV timings", "",
             f"Shapes of one forward pass of the default network, patch {sec.get('patch')}, batch {sec.get('batch')}:",
             "", "| B | T | C | dtype | calls per forward |", "|---|---|---|---|---|"]
    shapes = sec.get("network_shapes", [])
    lines += [f"| {s['B']} | {s['T']} | {s['C']} | {s['dtype']} | {s['calls']} |" for s in shapes]
    lines.append("")
    if "rows" not in sec:
        return lines + [f"Timings: {sec.get('reason') or sec.get('status') + ': ' + sec.get('error', '')}", ""]
    bw = sec["bandwidth"]
    lines += [f"Device {bw['device']}: reference bandwidth {bw['reference_Bps'] / 1e9:.0f} GB/s ({bw['reference']}; "
              f"measured copy {bw['measured_copy_Bps'] / 1e9:.0f} GB/s). Target: {sec['target']}: **{sec['status']}**.",
              "", "| origin | B | T | C | dtype | backend | fwd ms | fwd+bwd ms | fwd GB/s | fwd+bwd GB/s | "
              "fwd+bwd x floor |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sec["rows"]:
        lines.append(f"| {r['origin']} | {r['B']} | {r['T']} | {r['C']} | {r['dtype']} | {r['backend']} | "
                     f"{r['fwd_s'] * 1e3:.3f} | {r['fwd_bwd_s'] * 1e3:.3f} | {r['fwd_GBps']:.0f} | "
                     f"{r['fwd_bwd_GBps']:.0f} | {r['fwd_bwd_x_floor']:.1f} |")
    return lines + [""]


def _train(sec: dict) -> list[str]:
    lines = ["## (c) One training step of the default network", ""]
    for mode, res in sec.items():
        if not isinstance(res, dict):
            continue
        if res.get("status") != "ok":
            lines += [f"- **{mode}**: {res.get('reason') or res.get('status') + ': ' + res.get('error', '')}", ""]
            continue
        lines += [f"**{mode}**{' (' + res['note'] + ')' if res.get('note') else ''}: step {res['step_s']:.3f} s "
                  f"(first {res['first_step_s']:.1f} s), peak memory {_fmt(res['peak_memory_MB'], 5)} MB, "
                  f"stream syncs per step {_fmt(res['syncs_per_step'])}, H2D copies per step "
                  f"{_fmt(res['h2d_copies_per_step'])}, share of time in WKV {100 * res['wkv_share']:.1f} %", ""]
        for site in res.get("sync_sites", []):
            lines.append(f"- sync at {site}")
        lines += ["", "| kernel / op | us | share |", "|---|---|---|"]
        lines += [f"| `{t['name']}` | {t['us']:.0f} | {100 * t['share']:.1f} % |" for t in res["top"]]
        lines.append("")
    return lines


def _ddp(sec: dict) -> list[str]:
    if sec.get("status") in ("skipped", "error"):
        return ["## (d) DDP", "", sec.get("reason") or f"error: {sec.get('error', '')}", ""]
    return ["## (d) DDP", "", f"{sec['status']}: gradient difference to one process {sec['grad_rel_diff']:.2g}, "
            f"ranks' weights differ by {sec['rank_state_diff']:.2g}", ""]


def markdown(report: dict) -> str:
    m = report["meta"]
    lines = ["# RWKV-SSS GPU check", "",
             f"{m['device']} ({m['gpus']} GPU(s)), torch {m['torch']}, triton {m['triton']}, "
             f"{'quick, ' if m['quick'] else ''}{m['seconds']:.0f} s, {m['started']}", ""]
    if report["skipped"]:
        lines += ["Skipped:", ""] + [f"- {s}" for s in report["skipped"]] + [""]
    if report["errors"]:
        lines += ["Errors in: " + ", ".join(report["errors"]), ""]
    render = {"a_numerics": _numerics, "b_bi_wkv_bench": _bench, "c_train_step": _train, "d_ddp": _ddp}
    for key, fn in render.items():
        sec = report.get(key, {})
        if sec.get("status") == "error":
            lines += [f"## {key}", "", f"error: {sec['error']}", ""]
        else:
            lines += fn(sec)
    return "\n".join(lines) + "\n"
