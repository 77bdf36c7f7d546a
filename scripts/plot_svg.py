#!/usr/bin/env python3
"""plot_svg.py: draw one column of a CSV against another as an SVG line plot.

  plot_svg.py --csv FILE --x COL --y COL -o OUT.svg [--log2x]
              [--hline VALUE --hline-label TEXT] [--title T] [--subtitle S]
              [--xlabel L] [--ylabel L]

Standard library only; the SVG is written by hand: axes, ticks, grid, axis
labels, a polyline with its points (each labelled with its value), a title,
and an optional dashed horizontal reference line. Columns named run1,
run2, ... (the single runs behind each point) are drawn as a min-max
whisker at each point. --log2x puts x on a
base-2 logarithmic axis (x must be > 0). The y axis starts at 0.
"""
import argparse
import csv
import math
import sys
from xml.sax.saxutils import escape

W, H = 760, 460
LEFT, RIGHT, TOP, BOTTOM = 80, 30, 70, 60


def nice_step(span, target=6):
    """a 1/2/5 x 10^k step that cuts span into about target intervals"""
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def fmt(v):
    if abs(v - round(v)) < 1e-9:
        return "{:,}".format(int(round(v)))
    return "{:,.1f}".format(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", required=True)
    ap.add_argument("--x", required=True)
    ap.add_argument("--y", required=True)
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--log2x", action="store_true")
    ap.add_argument("--hline", type=float)
    ap.add_argument("--hline-label", default="")
    ap.add_argument("--title", default="")
    ap.add_argument("--subtitle", default="")
    ap.add_argument("--xlabel", default="")
    ap.add_argument("--ylabel", default="")
    a = ap.parse_args()

    with open(a.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        pts = [(float(r[a.x]), float(r[a.y])) for r in rows]
        runs = [[float(v) for k, v in r.items()
                 if k and k.startswith("run") and k[3:].isdigit() and v]
                for r in rows]
    except (KeyError, ValueError) as e:
        sys.exit("plot_svg.py: %s: bad column or value: %s" % (a.csv, e))
    if not pts:
        sys.exit("plot_svg.py: %s: no rows" % a.csv)
    if a.log2x and min(x for x, _ in pts) <= 0:
        sys.exit("plot_svg.py: --log2x needs x > 0")

    tx = (lambda v: math.log2(v)) if a.log2x else (lambda v: v)
    xs = [tx(x) for x, _ in pts]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    pad = (x1 - x0) * 0.04
    x0, x1 = x0 - pad, x1 + pad
    ymax = max([y for _, y in pts] + [max(r) for r in runs if r])
    if a.hline is not None:
        ymax = max(ymax, a.hline)
    ystep = nice_step(ymax * 1.08 if ymax > 0 else 1)
    ytop = ystep * math.ceil(ymax * 1.08 / ystep) if ymax > 0 else ystep

    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(v):
        return LEFT + (tx(v) - x0) / (x1 - x0) * pw

    def py(v):
        return TOP + ph - v / ytop * ph

    o = []
    o.append('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
             'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">'
             % (W, H, W, H))
    o.append('<rect width="100%" height="100%" fill="white"/>')
    o.append('<text x="%d" y="24" text-anchor="middle" font-size="16" '
             'font-weight="bold">%s</text>' % (W // 2, escape(a.title)))
    if a.subtitle:
        o.append('<text x="%d" y="44" text-anchor="middle" fill="#555">%s'
                 '</text>' % (W // 2, escape(a.subtitle)))

    # y grid and ticks
    v = 0.0
    while v <= ytop + 1e-9:
        y = py(v)
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e4e4e4"/>'
                 % (LEFT, y, W - RIGHT, y))
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black"/>'
                 % (LEFT - 5, y, LEFT, y))
        o.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>'
                 % (LEFT - 8, y + 4, fmt(v)))
        v += ystep
    # x ticks: at the data points (log axis: powers of two)
    ticks = sorted(set(x for x, _ in pts))
    if not a.log2x and len(ticks) < 3:
        ticks = list(range(int(math.floor(min(ticks))),
                           int(math.ceil(max(ticks))) + 1))
    for t in ticks:
        x = px(t)
        o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#f0f0f0"/>'
                 % (x, TOP, x, TOP + ph))
        o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black"/>'
                 % (x, TOP + ph, x, TOP + ph + 5))
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                 % (x, TOP + ph + 19, fmt(t)))
    # axes
    o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>'
             % (LEFT, TOP + ph, W - RIGHT, TOP + ph))
    o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>'
             % (LEFT, TOP, LEFT, TOP + ph))
    if a.xlabel:
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%s%s</text>'
                 % (LEFT + pw / 2, H - 14, escape(a.xlabel),
                    " (log2 scale)" if a.log2x else ""))
    if a.ylabel:
        o.append('<text x="18" y="%.1f" text-anchor="middle" '
                 'transform="rotate(-90 18 %.1f)">%s</text>'
                 % (TOP + ph / 2, TOP + ph / 2, escape(a.ylabel)))

    # the reference line
    if a.hline is not None:
        y = py(a.hline)
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#c0392b" '
                 'stroke-width="1.5" stroke-dasharray="6 4"/>'
                 % (LEFT, y, W - RIGHT, y))
        o.append('<text x="%d" y="%.1f" text-anchor="end" fill="#c0392b">%s'
                 '</text>' % (W - RIGHT - 4, y - 6, escape(a.hline_label)))

    # the data: whiskers (min-max of the runs), the line, the points
    for (x, _), r in zip(pts, runs):
        if len(r) > 1:
            o.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" '
                     'stroke="#7fa7d6" stroke-width="1.5"/>'
                     % (px(x), py(min(r)), px(x), py(max(r))))
            for v in (min(r), max(r)):
                o.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" '
                         'stroke="#7fa7d6" stroke-width="1.5"/>'
                         % (px(x) - 4, py(v), px(x) + 4, py(v)))
    line = " ".join("%.1f,%.1f" % (px(x), py(y)) for x, y in pts)
    o.append('<polyline points="%s" fill="none" stroke="#1f5fa8" '
             'stroke-width="2"/>' % line)
    for x, y in pts:
        o.append('<circle cx="%.1f" cy="%.1f" r="3.5" fill="#1f5fa8"/>'
                 % (px(x), py(y)))
        o.append('<text x="%.1f" y="%.1f" font-size="10" fill="#1f5fa8" '
                 'stroke="white" stroke-width="3" paint-order="stroke">'
                 '%s</text>' % (px(x) + 6, py(y) - 7, fmt(round(y))))
    legend = "median docs/s"
    if any(len(r) > 1 for r in runs):
        legend += " (whiskers: min-max of %d runs)" % max(len(r) for r in runs)
    o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#1f5fa8" '
             'stroke-width="2"/>' % (LEFT + 10, TOP + 10, LEFT + 34, TOP + 10))
    o.append('<text x="%d" y="%d" fill="#1f5fa8">%s</text>'
             % (LEFT + 40, TOP + 14, escape(legend)))
    o.append("</svg>")
    with open(a.out, "w") as f:
        f.write("\n".join(o) + "\n")


if __name__ == "__main__":
    main()
