#!/usr/bin/python3
"""Writes the demo's HTML report from the JSON of demo/report_data.sql (Python 3 stdlib only).

usage: demo_report.py REPORT_DATA.json OUT.html
The page: Table 1 (ours beside the study), an inline SVG bar chart of P@5, R@5 and Hit@5 per
method (the study's ResNet-18 figures as dashed lines), and example queries of seed 1 with their
top-5 results per method, each marked hit (same style group) or miss.
"""
import html
import json
import sys

COLOURS = {"histogram": "#8c8c8c", "cnn": "#3b75af", "fused": "#e07b28"}
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
    for g, (key, label) in enumerate(METRICS):
        x0 = left + g * group_w + 15
        for i, row in enumerate(summary):
            v = row[key] or 0
            bh = v / ymax * plot_h
            x = x0 + i * bar_w
            colour = COLOURS.get(row["method"], "#555")
            out.append(f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - bh:.1f}" width="{bar_w - 4:.1f}" '
                       f'height="{bh:.1f}" fill="{colour}"><title>{esc(row["method"])} {label} {v:.4f}</title></rect>')
            out.append(f'<text x="{x + (bar_w - 4) / 2:.1f}" y="{top + plot_h - bh - 3:.1f}" font-size="10" '
                       f'text-anchor="middle">{v:.3f}</text>')
        study = [r for r in summary if r["method"] == "cnn" and r.get("study_precision") is not None]
        if study:
            sv = {"precision_at_k": study[0]["study_precision"], "recall_at_k": study[0]["study_recall"],
                  "hit_at_k": study[0]["study_hit"]}[key]
            y = top + plot_h - sv / ymax * plot_h
            out.append(f'<line x1="{x0 - 5:.1f}" x2="{x0 + n * bar_w:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                       f'stroke="#c00" stroke-dasharray="5,3" stroke-width="2"><title>study ResNet-18 {label} {sv}</title></line>')
        out.append(f'<text x="{x0 + n * bar_w / 2:.1f}" y="{h - bottom + 18}" font-size="13" '
                   f'text-anchor="middle" font-weight="bold">{label}</text>')
    lx = left
    for row in summary:
        out.append(f'<rect x="{lx}" y="{h - 14}" width="12" height="12" fill="{COLOURS.get(row["method"], "#555")}"/>'
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


def examples(data):
    out = []
    for ex in data.get("examples") or []:
        q = ex["query"]
        out.append(f'<section class="example"><h3>{esc(ex["category"])}: query {q["id"]}</h3>')
        out.append(f'<div class="query"><img src="{q["src"]}" alt="query {q["id"]}">'
                   f'<div>{esc(q["name"])}<br><small>group: {esc(ex["group_key"])}</small></div></div>')
        for method, results in sorted((ex.get("results") or {}).items()):
            hits = sum(1 for r in results if r["hit"])
            out.append(f'<div class="row"><div class="label">{esc(method)}<br><small>{hits}/5 hits</small></div>')
            for r in results:
                cls = "hit" if r["hit"] else "miss"
                mark = "✓ hit" if r["hit"] else "✗ miss"
                out.append(f'<figure class="{cls}"><img src="{r["src"]}" alt="{r["id"]}" '
                           f'title="{esc(r["name"])} (distance {r["distance"]})"><figcaption>{mark}</figcaption></figure>')
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
figure {{ margin: 0; text-align: center; font-size: 11px; }}
figure img {{ height: 80px; display: block; }}
figure.hit img {{ border: 3px solid #2a9d3a; }}
figure.miss img {{ border: 3px solid #d33; }}
figure.hit figcaption {{ color: #2a9d3a; }}
figure.miss figcaption {{ color: #d33; }}
</style></head><body>
<h1>Style retrieval inside PostgreSQL</h1>
<p>Precision@5, Recall@5 and Hit@5, mean over seeds 1..20 of the protocol's splits (one query
per style group, the rest is the gallery), computed by the views of schema <code>fashion</code>.</p>
<ul>{methods}</ul>
<h2>Table 1</h2>
{table1(summary)}
<h2>Metrics per method</h2>
{bar_chart(summary)}
<h2>Example queries (seed 1)</h2>
<p>Query image, then each method's top 5 in rank order: green = same style group (hit), red = miss.</p>
{examples(data)}
</body></html>
"""
    with open(sys.argv[2], "w") as f:
        f.write(page)


if __name__ == "__main__":
    main()
