"""Small HTML and SVG pieces of the report: one number format, one table, one heatmap, one curve, one bar chart.
Nothing here computes a result; every function formats what it is given."""
import math
from html import escape

from interp.claims import THRESHOLDS


def num(v, digits=2):
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}f}"


def interval(ci, digits=2):
    if not ci or ci[0] is None:
        return "–"
    return f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def rate(r):
    """'0.37 (k/n, 95% CI [lo, hi])' of a rate dict from interp.stats.rate; over fewer than THRESHOLDS["few"]
    items only 'k/n' (such a rate is a coin toss, not a number); a control whose edits mostly change nothing
    is named for what it is."""
    if not r or r.get("rate") is None:
        return "– (n = 0)"
    if (r.get("noop_fraction") or 0) > THRESHOLDS["noop"]:
        return f"no-op: {r['noop_fraction']:.0%} of its edits change nothing"
    if r["n"] < THRESHOLDS["few"]:
        return f"{r['k']}/{r['n']}"
    return f"{r['rate']:.2f} ({r['k']}/{r['n']}, 95% CI {interval(r['ci'])})"


def effect(e):
    """A normalized LD effect dict from interp.stats.ratio_of_sums."""
    if not e or e.get("value") is None:
        return "–"
    return f"{e['value']:.2f} (n = {e['n']} pairs, 95% CI {interval(e['ci'])})"


def fmt_seeds(m, k):
    """A headline number of model record m: mean [min, max] over seeds, and on how many seeds it rests
    when some seeds could not measure it. Where a seed counted fewer than THRESHOLDS["few"] items, every
    seed is shown as k/n instead (a mean of coin tosses is not a number); a control whose edits mostly
    change nothing is named so."""
    h = m["headline"]
    v, r = h.get(k), h.get(k + "_range")
    if v is None:
        return "–"
    if isinstance(v, list):
        return interval(v)
    seeds = m.get("seeds") or []
    noops = [s.get("noop", {}).get(k) for s in seeds if s.get("noop", {}).get(k) is not None]
    if noops and max(noops) > THRESHOLDS["noop"]:
        return f"no-op in {sum(x > THRESHOLDS['noop'] for x in noops)} of {len(noops)} seeds (its edits change nothing)"
    if any((s.get("n", {}).get(k) or THRESHOLDS["few"]) < THRESHOLDS["few"] for s in seeds):
        return ", ".join(few(s.get(k), s.get("k", {}).get(k), s.get("n", {}).get(k)) for s in seeds) + " (per seed)"
    n, got = h.get("n_seeds", 1), m.get("headline_seeds_measured", {}).get(k, h.get("n_seeds", 1))
    return (num(v) + (f" [{num(r[0])}, {num(r[1])}]" if r and got > 1 else "") +
            (f" ({got} of {n} seeds)" if got < n else ""))


def few(v, k, n):
    """One seed's number where some seed counted few items: k/n for a rate, the value and its n otherwise."""
    if v is None:
        return "–"
    return f"{k}/{n}" if k is not None else f"{num(v)} (n = {n})"


def table(headers, rows, cls=""):
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _colour(v, lo, hi):
    if v is None:
        return "#eee"
    t = max(0.0, min(1.0, (v - lo) / (hi - lo) if hi > lo else 0.0))
    r, g, b = int(255 - 225 * t), int(255 - 140 * t), int(255 - 40 * t)
    return f"rgb({r},{g},{b})"


def heatmap(grid, rows, cols, title, xlabel, ylabel, caption, lo=0.0, hi=1.0, digits=2):
    """An SVG grid of values (None = not measured) with its title, axis labels and caption."""
    cw, ch, top = 46, 24, 40
    left = max(92, 30 + 7 * max((len(str(r)) for r in rows), default=0))  # room for the longest row label
    w, h = left + cw * len(cols) + 10, top + ch * len(rows) + 90
    out = [f'<figure><svg width="{w}" height="{h}" role="img" aria-label="{escape(title)}">',
           f'<text x="{left}" y="16" class="t">{escape(title)}</text>']
    for i, r in enumerate(rows):
        y = top + i * ch
        out.append(f'<text x="{left - 6}" y="{y + 16}" text-anchor="end">{escape(str(r))}</text>')
        for j, _ in enumerate(cols):
            v = grid[i][j] if j < len(grid[i]) else None
            out.append(f'<rect x="{left + j * cw}" y="{y}" width="{cw - 2}" height="{ch - 2}" fill="{_colour(v, lo, hi)}"/>')
            out.append(f'<text x="{left + j * cw + cw / 2 - 1}" y="{y + 16}" text-anchor="middle" class="v">'
                       f'{"" if v is None else num(v, digits)}</text>')
    yb = top + ch * len(rows)
    for j, c in enumerate(cols):
        x = left + j * cw + cw / 2
        out.append(f'<text transform="translate({x},{yb + 8}) rotate(45)" class="c">{escape(str(c))}</text>')
    out.append(f'<text x="{left + cw * len(cols) / 2}" y="{h - 4}" text-anchor="middle" class="a">{escape(xlabel)}</text>')
    out.append(f'<text transform="translate(12,{top + ch * len(rows) / 2}) rotate(-90)" text-anchor="middle" '
               f'class="a">{escape(ylabel)}</text>')
    out.append(f"</svg><figcaption>{escape(caption)}</figcaption></figure>")
    return "".join(out)


def curves(xs, series, title, xlabel, ylabel, caption):
    """An SVG line plot of rates in [0, 1]: series = [(name, colour, [y or None per x])]."""
    left, top, pw, ph = 50, 30, 380, 160
    legend_w = 10 + 7 * max([len(name) for name, _, _ in series] or [0])  # the legend sits right of the plot
    w, h = left + pw + legend_w + 10, max(250, top + 16 * len(series) + 10)
    sx = lambda i: left + pw * i / max(1, len(xs) - 1)
    sy = lambda v: top + ph * (1 - max(0.0, min(1.0, v)))  # a value outside [0, 1] is drawn at the edge
    out = [f'<figure><svg width="{w}" height="{h}" role="img" aria-label="{escape(title)}">',
           f'<text x="{left}" y="16" class="t">{escape(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for v in (0, 0.5, 1):
        out.append(f'<text x="{left - 6}" y="{sy(v) + 4}" text-anchor="end" class="c">{v}</text>')
    every = max(1, math.ceil(len(xs) * 45 / pw))  # x labels at least ~45 px apart
    for i, x in enumerate(xs):
        if i % every == 0:
            out.append(f'<text x="{sx(i)}" y="{top + ph + 16}" text-anchor="middle" class="c">{escape(str(x))}</text>')
    for k, (name, colour, ys) in enumerate(series):
        pts = " ".join(f"{sx(i)},{sy(v)}" for i, v in enumerate(ys) if v is not None)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{left + pw + 10}" y="{top + 10 + 16 * k}" fill="{colour}" class="c">{escape(name)}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{h - 30}" text-anchor="middle" class="a">{escape(xlabel)}</text>')
    out.append(f'<text transform="translate(12,{top + ph / 2}) rotate(-90)" text-anchor="middle" class="a">'
               f'{escape(ylabel)}</text>')
    out.append(f"</svg><figcaption>{escape(caption)}</figcaption></figure>")
    return "".join(out)


def bars(items, title, xlabel, caption):
    """An SVG of horizontal bars on [0, 1], each with an interval (a 95% CI or a range over seeds: the
    caption says which): items = [(label, value or None, [lo, hi] or None)]."""
    at = lambda v: max(0.0, min(1.0, v))  # a slightly negative effect draws as zero
    left, top, pw, bh = 190, 30, 260, 22
    w, h = left + pw + 60, top + bh * len(items) + 56
    out = [f'<figure><svg width="{w}" height="{h}" role="img" aria-label="{escape(title)}">',
           f'<text x="10" y="16" class="t">{escape(title)}</text>']
    for k, (label, v, ci) in enumerate(items):
        y = top + k * bh
        out.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        if v is not None:
            out.append(f'<rect x="{left}" y="{y + 3}" width="{pw * at(v):.1f}" height="{bh - 8}" fill="#4a74c9"/>')
            out.append(f'<text x="{left + pw * at(v) + 4:.1f}" y="{y + 15}" class="v">{num(v)}</text>')
        if ci and ci[0] is not None:
            out.append(f'<line x1="{left + pw * at(ci[0]):.1f}" x2="{left + pw * at(ci[1]):.1f}" y1="{y + bh / 2 - 1}" '
                       f'y2="{y + bh / 2 - 1}" stroke="#222" stroke-width="1.5"/>')
    yb = top + bh * len(items)
    for v in (0, 0.5, 1):
        out.append(f'<text x="{left + pw * v}" y="{yb + 14}" text-anchor="middle" class="c">{v}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{h - 6}" text-anchor="middle" class="a">{escape(xlabel)}</text>')
    out.append(f"</svg><figcaption>{escape(caption)}</figcaption></figure>")
    return "".join(out)


STYLE = """body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:13px;vertical-align:top}th{background:#f4f4f4}
.verdict{font-size:1.1em;background:#f3f7ff;border-left:4px solid #4a74c9;padding:.5em .8em}
svg text{font:11px system-ui,sans-serif}svg .t{font-weight:600;font-size:12px}svg .v{font-size:10px}
figure{display:inline-block;margin:.5em 1.5em .5em 0;vertical-align:top}figure.viewer{display:block;overflow-x:auto}figcaption{font-size:12px;color:#555;max-width:460px}
code{background:#f4f4f4;padding:0 3px}.note{color:#555;font-size:13px}"""


def page(title, body):
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>{body}</body></html>\n")
