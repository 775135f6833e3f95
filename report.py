"""Tiny HTML + inline-SVG report helpers: no plotting library, no remote scripts or fonts."""
import html


def esc(s):
    return html.escape(str(s))


def pct(x):
    return "–" if x is None else f"{100 * x:.0f}%"


def ci(r):
    """'83% [78–87%], n=300' from a rate dict {rate, n, ci}."""
    return f"{pct(r['rate'])} [{pct(r['ci'][0])}–{pct(r['ci'][1])}], n={r['n']}"


def _color(v, vmax):
    """White -> deep blue; grey for missing."""
    if v is None:
        return "#eee"
    t = max(0.0, min(1.0, v / vmax if vmax else 0))
    r, g, b = int(255 - 215 * t), int(255 - 170 * t), int(255 - 75 * t)
    return f"rgb({r},{g},{b})"


def heatmap_svg(matrix, row_labels, col_labels, title, vmax=1.0, mark=None, cell=34):
    """matrix[row][col] in [0, vmax] (None = not measured); mark=(row, col) outlines one cell."""
    left, top = 70, 40
    w = max(left + cell * len(col_labels) + 50, left + 7 * len(title))
    h = top + cell * len(row_labels) + 80
    out = [f'<svg class="fig" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{esc(title)}">',
           f'<text x="{left}" y="16" class="t">{esc(title)}</text>']
    for i, rl in enumerate(row_labels):
        y = top + i * cell
        out.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4}" text-anchor="end">{esc(rl)}</text>')
        for j, v in enumerate(matrix[i]):
            x = left + j * cell
            out.append(f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" fill="{_color(v, vmax)}">'
                       f'<title>{esc(rl)} × {esc(col_labels[j])}: {pct(v)}</title></rect>')
            if v is not None:
                fg = "#fff" if v / vmax > 0.55 else "#222"
                out.append(f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle" '
                           f'class="v" fill="{fg}">{round(100 * v)}</text>')
    if mark is not None:
        out.append(f'<rect x="{left + mark[1] * cell - 1}" y="{top + mark[0] * cell - 1}" width="{cell + 1}" '
                   f'height="{cell + 1}" fill="none" stroke="#d33" stroke-width="3"/>')
    for j, cl in enumerate(col_labels):
        x = left + j * cell + cell / 2
        y = top + len(row_labels) * cell + 8
        out.append(f'<text transform="translate({x},{y}) rotate(50)" text-anchor="start">{esc(cl)}</text>')
    out.append("</svg>")
    return "".join(out)


def bars_svg(values, labels, title, highlight=None, vmax=1.0, height=160, bar=30):
    """Vertical bars (values in [0, vmax]); the `highlight` label is drawn in red."""
    left, top = 40, 28
    w = max(left + bar * len(values) + 50, left + 7 * len(title))
    h = top + height + 80
    out = [f'<svg class="fig" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{esc(title)}">',
           f'<text x="{left}" y="16" class="t">{esc(title)}</text>',
           f'<line x1="{left}" y1="{top + height}" x2="{w - 5}" y2="{top + height}" stroke="#999"/>']
    for frac in (0.5, 1.0):
        y = top + height * (1 - frac)
        out.append(f'<text x="{left - 4}" y="{y + 4}" text-anchor="end">{pct(frac * vmax)}</text>'
                   f'<line x1="{left}" y1="{y}" x2="{w - 5}" y2="{y}" stroke="#eee"/>')
    for j, (v, lab) in enumerate(zip(values, labels)):
        x = left + j * bar + 3
        bh = 0 if v is None else height * min(v, vmax) / vmax
        color = "#d33" if lab == highlight else "#5b7fbd"
        out.append(f'<rect x="{x}" y="{top + height - bh}" width="{bar - 6}" height="{bh}" fill="{color}">'
                   f'<title>{esc(lab)}: {pct(v)}</title></rect>')
        out.append(f'<text transform="translate({x + bar / 2 - 3},{top + height + 8}) rotate(50)">{esc(lab)}</text>')
    out.append("</svg>")
    return "".join(out)


def table(rows, header):
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def couplet(line1, line2, note=""):
    n = f' <span class="note">{esc(note)}</span>' if note else ""
    return f'<div class="couplet">{esc(line1)}<br>{esc(line2)}{n}</div>'


CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:980px;margin:2em auto;
padding:0 1em;color:#222}
h1{font-size:1.7em}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.fig{font:11px system-ui,sans-serif;margin:.5em 1em .5em 0;vertical-align:top}.fig .t{font-weight:600;font-size:12px}
.fig .v{font-size:10px}.couplet{font-family:Georgia,serif;font-style:italic;background:#f6f6f2;border-left:3px solid #bbb;
padding:.4em .8em;margin:.4em 0}.note{font-style:normal;font-family:system-ui,sans-serif;color:#777;font-size:.85em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left}
.key{background:#eef4ff;border:1px solid #c9d9f5;padding:.6em 1em;border-radius:6px}.bad{color:#b00}.good{color:#070}
code{background:#f3f3f3;padding:0 .2em}
"""


def page(title, intro, sections):
    body = "\n".join(sections)
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>{intro}\n{body}</body></html>")
