#!/usr/bin/python3
"""Writes the demo's HTML report from the JSON of demo/report_data.sql (Python 3 stdlib only).

usage: demo_report.py REPORT_DATA.json OUT.html
The page opens with what the best method wins (its Hit@5, P@5 and R@5 against the others, and
the queries of seed 1 it wins outright), then Table 1 (ours beside the study), an inline SVG bar
chart of P@5, R@5 and Hit@5 per method (the study's ResNet-18 figures as dashed lines; value
labels are kept clear of those lines and drawn with a white halo), and example queries of seed 1:
the best method's wins first, queries every method fails last. Each result tile names the product
and its distance and is marked hit (same style group) or miss; a miss that is nearly identical to
the query (distance under a quarter of the row's median) is marked as a likely label-noise miss.
Generic over the methods (colours for unknown methods come from a fixed palette).
"""
import html
import json
import sys

COLOURS = {"histogram": "#8c8c8c", "cnn": "#3b75af", "fused": "#e07b28", "learned": "#3a9a4a", "learned_fused": "#8e44ad"}
PALETTE = ["#6a3d9a", "#2a9d8f", "#b15928", "#e31a1c", "#1f78b4", "#33a02c"]
NEAR_IDENTICAL = 0.25  # a miss closer than this share of its row's median distance


def colour(method, _seen={}):
    if method in COLOURS:
        return COLOURS[method]
    if method not in _seen:
        _seen[method] = PALETTE[len(_seen) % len(PALETTE)]
    return _seen[method]


def best_method(summary):
    """The method with the highest Hit@5, then P@5."""
    return max(summary, key=lambda r: (r["hit_at_k"] or 0, r["precision_at_k"] or 0)) if summary else None
METRICS = [("precision_at_k", "P@5"), ("recall_at_k", "R@5"), ("hit_at_k", "Hit@5")]


def esc(x):
    return html.escape(str(x), quote=True)


def bar_chart(summary):
    w, h, left, top, bottom = 640, 300, 50, 20, 40
    plot_h = h - top - bottom
    group_w = (w - left - 10) / len(METRICS)
    n = max(len(summary), 1)
    bar_w = min(40, (group_w - 30) / n)
    ymax = 1.0
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
           f'aria-label="P@5, R@5 and Hit@5 per method">']
    for t in range(0, 11):
        v = t / 10
        y = top + plot_h - v / ymax * plot_h
        out.append(f'<line x1="{left}" x2="{w - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{v:.1f}</text>')
    study = [r for r in summary if "ResNet-18" in (r.get("study_method") or "")]
    for g, (key, label) in enumerate(METRICS):
        x0 = left + g * group_w + 15
        study_y = None
        if study:
            sv = {"precision_at_k": study[0]["study_precision"], "recall_at_k": study[0]["study_recall"],
                  "hit_at_k": study[0]["study_hit"]}[key]
            study_y = top + plot_h - sv / ymax * plot_h
        for i, row in enumerate(summary):
            v = row[key] or 0
            bh = v / ymax * plot_h
            x = x0 + i * bar_w
            out.append(f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - bh:.1f}" width="{bar_w - 4:.1f}" '
                       f'height="{bh:.1f}" fill="{colour(row["method"])}"><title>{esc(row["method"])} {label} {v:.4f}</title></rect>')
            # The value above the bar, unless the study's dashed line passes there: then inside
            # the bar's top (white), or above the line if the bar is too short.
            ly = top + plot_h - bh - 3
            if study_y is not None and abs(ly - 4 - study_y) < 9:
                ly = ly + 14 if bh > 18 else study_y - 4
            inside = ly > top + plot_h - bh
            fill = "#fff" if inside else "#222"
            halo = "" if inside else ' stroke="#fff" stroke-width="3" paint-order="stroke"'
            out.append(f'<text class="value" x="{x + (bar_w - 4) / 2:.1f}" y="{ly:.1f}" font-size="10" '
                       f'text-anchor="middle" fill="{fill}"{halo}>{v:.3f}</text>')
        if study_y is not None:
            y = study_y
            out.append(f'<line x1="{x0 - 5:.1f}" x2="{x0 + n * bar_w:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                       f'stroke="#c00" stroke-dasharray="5,3" stroke-width="2" class="study"><title>study ResNet-18 {label} {sv}</title></line>')
        out.append(f'<text x="{x0 + n * bar_w / 2:.1f}" y="{h - bottom + 18}" font-size="13" '
                   f'text-anchor="middle" font-weight="bold">{label}</text>')
    lx = left
    for row in summary:
        out.append(f'<rect x="{lx}" y="{h - 14}" width="12" height="12" fill="{colour(row["method"])}"/>'
                   f'<text x="{lx + 16}" y="{h - 4}" font-size="12">{esc(row["method"])}</text>')
        lx += 100
    out.append(f'<line x1="{lx}" x2="{lx + 20}" y1="{h - 8}" y2="{h - 8}" stroke="#c00" stroke-dasharray="5,3" stroke-width="2"/>'
               f'<text x="{lx + 24}" y="{h - 4}" font-size="12">study ResNet-18</text>')
    out.append("</svg>")
    return "\n".join(out)


def table1(summary):
    rows = ["<table><tr><th>method</th><th>P@5</th><th>R@5</th><th>Hit@5</th><th>seeds</th>"
            "<th>study</th><th>study P@5</th><th>study R@5</th><th>study Hit@5</th>"
            "<th>ΔP@5</th><th>ΔR@5</th><th>ΔHit@5</th></tr>"]
    for r in summary:
        def d(k):
            v = r.get(k)
            return "" if v is None else f"{v:+.4f}"
        rows.append(
            f'<tr><td>{esc(r["method"])}</td><td>{r["precision_at_k"]:.4f}</td><td>{r["recall_at_k"]:.4f}</td>'
            f'<td>{r["hit_at_k"]:.4f}</td><td>{r["seeds"]}</td><td>{esc(r.get("study_method") or "")}</td>'
            f'<td>{r.get("study_precision") or ""}</td><td>{r.get("study_recall") or ""}</td>'
            f'<td>{r.get("study_hit") or ""}</td><td>{d("precision_diff")}</td><td>{d("recall_diff")}</td>'
            f'<td>{d("hit_diff")}</td></tr>')
    rows.append("</table>")
    return "\n".join(rows)


def headline(data, summary):
    """What the best method wins, in words: its Hit@5, P@5, R@5 against each other method, and the
    seed-1 queries it wins outright."""
    best = best_method(summary)
    if best is None:
        return "<p>No results yet.</p>"
    m = best["method"]
    others = [r for r in summary if r["method"] != m]
    wins = data.get("wins") or {}
    nq = data.get("queries_seed1") or 0
    lines = [f'<p class="lead"><b style="color:{colour(m)}">{esc(m)}</b> is the best method: '
             f'for <b>{best["hit_at_k"] * 100:.1f}%</b> of queries a product of the same style is among '
             f'its 5 nearest (Hit@5), and {best["precision_at_k"] * 5:.2f} of its 5 results share the '
             f'style on average (P@5 {best["precision_at_k"]:.4f}, R@5 {best["recall_at_k"]:.4f}).</p>']
    if others:
        items = []
        for r in others:
            items.append(f'<li>against <b>{esc(r["method"])}</b>: Hit@5 {(best["hit_at_k"] - r["hit_at_k"]) * 100:+.1f} points, '
                         f'P@5 {best["precision_at_k"] - r["precision_at_k"]:+.4f}, '
                         f'R@5 {best["recall_at_k"] - r["recall_at_k"]:+.4f}</li>')
        lines.append("<ul class=\"lead\">" + "".join(items) + "</ul>")
    if nq:
        counts = ", ".join(f'{esc(k)} {v}' for k, v in sorted(wins.items(), key=lambda kv: -kv[1]))
        lines.append(f'<p>In seed 1 ({nq} queries), {esc(m)} wins {wins.get(m, 0)} queries outright '
                     f'(more same-style results than every other method); wins per method: {counts}.</p>')
    return "\n".join(lines)


def example_order(data, summary):
    """The best method's wins first, then the other methods' wins (best first), 'all fail' last."""
    best = best_method(summary)
    rank = {r["method"]: i for i, r in enumerate(sorted(summary, key=lambda r: (-(r["hit_at_k"] or 0),
                                                                                -(r["precision_at_k"] or 0))))}

    def key(ex):
        cat = ex["category"]
        if cat.endswith(" wins"):
            m = cat[:-5]
            return (0 if best and m == best["method"] else 1, rank.get(m, 99), ex["query"]["id"])
        return (2, 0, ex["query"]["id"])
    return sorted(data.get("examples") or [], key=key)


def short(name, n=30):
    name = name or ""
    return name if len(name) <= n else name[: n - 1] + "…"


def examples(data, summary):
    out = []
    for ex in example_order(data, summary):
        q = ex["query"]
        cat = ex["category"]
        if cat.endswith(" wins"):
            title = f'{esc(cat[:-5])} wins: more same-style results than any other method'
        elif cat == "all fail":
            title = "every method misses: no same-style product in any top 5"
        else:
            title = esc(cat)
        out.append(f'<section class="example"><h3>{title} — query {q["id"]}</h3>')
        out.append(f'<div class="query"><img src="{q["src"]}" alt="query {q["id"]}">'
                   f'<div>{esc(q["name"])}<br><small>style group: {esc(ex["group_key"])}</small></div></div>')
        results = ex.get("results") or {}
        order = [r["method"] for r in summary if r["method"] in results] + sorted(set(results) - {r["method"] for r in summary})
        for method in order:
            row = results[method]
            hits = sum(1 for r in row if r["hit"])
            ds = sorted(float(r["distance"]) for r in row)
            median = ds[len(ds) // 2] if ds else 0
            out.append(f'<div class="row"><div class="label" style="border-left:6px solid {colour(method)}">'
                       f'{esc(method)}<br><small>{hits}/5 hits</small></div>')
            for r in row:
                d = float(r["distance"])
                if r["hit"]:
                    cls, mark = "hit", "✓ hit"
                elif median > 0 and d < NEAR_IDENTICAL * median:
                    cls, mark = "miss noise", "✗ near-identical, other label"
                else:
                    cls, mark = "miss", "✗ miss"
                out.append(f'<figure class="{cls}"><img src="{r["src"]}" alt="{r["id"]}" title="{esc(r["name"])}">'
                           f'<figcaption><b>{mark}</b><br><span class="name">{esc(short(r["name"]))}</span>'
                           f'<br>distance {d:.4f}</figcaption></figure>')
            out.append("</div>")
        out.append("</section>")
    return "\n".join(out)


def main():
    data = json.load(open(sys.argv[1]))
    summary = data.get("summary") or []
    methods = "".join(f'<li><b>{esc(m["method"])}</b>: {esc(m["description"] or "")}</li>'
                      for m in data.get("methods") or [])
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>lookalike: style-retrieval study</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 12px 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.example {{ border-top: 1px solid #ddd; padding: 8px 0; }}
.query {{ display: flex; gap: 12px; align-items: center; margin-bottom: 6px; }}
.query img {{ height: 120px; border: 3px solid #333; }}
.row {{ display: flex; gap: 6px; align-items: center; margin: 4px 0; }}
.label {{ width: 90px; font-weight: bold; }}
.lead {{ font-size: 17px; }}
figure {{ margin: 0; text-align: center; font-size: 11px; width: 118px; }}
figure img {{ height: 80px; display: block; margin: 0 auto; }}
figure .name {{ color: #444; }}
figure.noise img {{ border: 3px dashed #d9a400; }}
figure.noise figcaption {{ color: #a07800; }}
figure.hit img {{ border: 3px solid #2a9d3a; }}
figure.miss img {{ border: 3px solid #d33; }}
figure.hit figcaption {{ color: #2a9d3a; }}
figure.miss figcaption {{ color: #d33; }}
</style></head><body>
<h1>Style retrieval inside PostgreSQL</h1>
<h2>What the best method wins</h2>
{headline(data, summary)}
<p>Precision@5, Recall@5 and Hit@5, mean over seeds 1..20 of the protocol's splits (one query
per style group, the rest is the gallery), computed by the views of schema <code>fashion</code>.</p>
<ul>{methods}</ul>
<h2>Table 1</h2>
{table1(summary)}
<h2>Metrics per method</h2>
{bar_chart(summary)}
<h2>Example queries (seed 1)</h2>
<p>Query image, then each method's top 5 in rank order, with the product's name and its distance
to the query: green = same style group (hit), red = miss. The best method's wins come first;
queries that every method misses come last.</p>
<p><b>Why some misses are not mistakes.</b> A style group is (article type, colour, usage) as the
catalogue labels them, and the labels are noisy: the same product photographed twice, or a
near-identical one, can be filed under another colour or usage. Such a result is counted as a
miss although a shopper would call it right. Misses much closer to the query than the rest of
their row (under {NEAR_IDENTICAL:.0%} of the row's median distance) are framed in
<span style="color:#a07800">dashed amber</span> as likely label noise.</p>
{examples(data, summary)}
</body></html>
"""
    with open(sys.argv[2], "w") as f:
        f.write(page)


if __name__ == "__main__":
    main()
