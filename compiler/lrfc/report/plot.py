"""The Pareto plot of a build report: per layer, candidate cost against similarity, as a PNG."""

from __future__ import annotations

import io
import math

from lrfc.objectives import cost_key
from lrfc.report.fmt import check_report, ranks_text, short


# One look per method across every report, so plots can be compared side by side.
_METHOD_STYLE = {
    "tucker": ("#1f77b4", "o"), "cp": ("#ff7f0e", "^"), "tt": ("#2ca02c", "s"),
    "svd": ("#d62728", "D"), "qr": ("#9467bd", "v"), "ttm": ("#8c564b", "P"),
}


_FALLBACK_STYLE = [("#e377c2", "X"), ("#7f7f7f", "h"), ("#bcbd22", "*"), ("#17becf", "p")]


_MAX_SUBPLOTS = 24


def pareto_png(report: dict) -> bytes:
    """Per factorized layer, the candidates' cost (fraction of the original) against similarity, as a PNG.

    One subplot per layer that has candidates, factorized layers first and the
    largest first when there are more than 24; one colour and marker per method;
    the layer's final threshold as a dashed line; the chosen point ringed in
    black. The bytes are the same for the same report (no timestamp or version
    in the metadata).
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check_report(report)
    key = cost_key(report["objective"])
    by_layer: dict[str, list[dict]] = {}
    for c in (report.get("search") or {}).get("candidates") or []:
        if c.get("similarity") is not None:
            by_layer.setdefault(c["layer"], []).append(c)
    layers = {l["name"]: l for l in report["layers"]}
    shown, caption = _pick_layers(by_layer, layers, key)
    styles = _styles({c["method"] for name in shown for c in by_layer[name]})
    two_fits = len({bool(c.get("data_aware")) for name in shown for c in by_layer[name]}) == 2
    thresholds = report.get("layer_thresholds") or {}

    with matplotlib.rc_context({"font.size": 8, "axes.titlesize": 8.5}):
        fig, axes = _grid(Figure, len(shown), caption=bool(caption))
        for ax, name in zip(axes, shown):
            limit = float(thresholds.get(name, report["threshold"]))
            _draw_layer(ax, name, layers.get(name, {}), by_layer[name], key, limit, styles, two_fits)
        for ax in list(axes)[len(shown):]:
            ax.remove()
        if shown:
            _legend(fig, styles, report, two_fits, key, caption)
        buf = io.BytesIO()
        FigureCanvasAgg(fig).print_png(buf, metadata={"Software": None})  # Agg whatever the user's backend
    return buf.getvalue()


def _draw_layer(ax, name: str, layer: dict, cands: list[dict], key: str, limit: float, styles: dict, two_fits: bool):
    """One layer's subplot: each method's candidates and front, the threshold, the chosen point, the title."""
    from matplotlib.ticker import PercentFormatter

    base = layer.get(f"{key}_before") or max(c[key] for c in cands) or 1
    for method in sorted({c["method"] for c in cands}):
        color, marker = styles[method]
        pts = sorted((c[key] / base, c["similarity"], bool(c.get("data_aware"))) for c in cands if c["method"] == method)
        for fit in (False, True):
            sel = [p for p in pts if p[2] == fit]
            if sel:
                ax.scatter([p[0] for p in sel], [p[1] for p in sel], s=18, marker=marker, linewidths=1.0,
                           facecolors=color if (fit or not two_fits) else "none", edgecolors=color, alpha=0.85, zorder=3)
        front = _frontier(pts)
        ax.plot([p[0] for p in front], [p[1] for p in front], color=color, lw=0.9, alpha=0.6, drawstyle="steps-post", zorder=2)
    ax.axhline(limit, color="#444444", ls="--", lw=0.9, zorder=1)
    ax.axvline(1.0, color="#bbbbbb", ls=":", lw=0.8, zorder=0)
    chosen = _chosen_point(layer, cands, key)
    if chosen:
        ax.scatter([chosen[0]], [chosen[1]], s=110, facecolors="none", edgecolors="black", linewidths=1.6, zorder=4)
    ax.set_xlim(0, 1.04 * max(1.0, max(c[key] / base for c in cands)))
    ys = [c["similarity"] for c in cands] + [limit]
    ax.set_ylim(min(ys) - 0.02 * (1.0 - min(ys)) - 0.005, max(1.0, max(ys)) + 0.01)
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
    ax.grid(True, lw=0.4, alpha=0.4)
    if layer:
        pick = f"{layer['method']} {ranks_text(layer.get('ranks'))}" if layer.get("method") else "kept"
        sub = f"{layer.get('type', '?')}: {pick}"
    else:
        sub = "not in the layer table"
    ax.set_title(f"{_mathsafe(short(name, 34))}\n{_mathsafe(sub)}")


def _legend(fig, styles: dict, report: dict, two_fits: bool, key: str, caption: str) -> None:
    """The legend row (methods, then marks) and the axis labels."""
    from matplotlib.lines import Line2D

    threshold = float(report["threshold"])
    unit = "params" if key == "params" else "MACs"
    methods = [Line2D([], [], ls="", marker=styles[m][1], color=styles[m][0], label=m) for m in styles]
    raised = any(v > threshold + 1e-9 for v in (report.get("layer_thresholds") or {}).values())
    marks = [Line2D([], [], ls="--", color="#444444", label="layer's final threshold" if raised else f"threshold {threshold:g}"),
             Line2D([], [], ls="", marker="o", ms=9, mfc="none", mec="black", mew=1.6, label="chosen")]
    if two_fits:
        marks.append(Line2D([], [], ls="", marker="o", color="#666666", label="data-aware fit"))
        marks.append(Line2D([], [], ls="", marker="o", mfc="none", mec="#666666", label="weight fit"))
    handles, ncols_legend = _legend_rows([methods, marks], lambda: Line2D([], [], ls="", label=""))
    width, height = fig.get_size_inches()
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.04 / height), ncols=ncols_legend, frameon=False)
    fig.supxlabel(f"{unit} of the candidate as a share of the layer's original {unit}"
                  + (f"\n{caption}" if caption else ""), y=0.04 / height, va="bottom", fontsize=8)
    fig.supylabel("output similarity on calibration data", x=0.04 / width, ha="left", fontsize=8)


def _grid(Figure, n: int, caption: bool):
    """A figure with ``n`` axes, 4 to a row, laid out in fixed inches.

    Fixed margins (room for the legend, two-line titles, tick labels) instead
    of constrained layout: the grid is regular and this draws twice as fast.
    """
    if not n:
        fig = Figure(figsize=(6.5, 2.5), dpi=110)
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "No search candidates in this report.", ha="center", va="center")
        return fig, []
    top, bottom, left, right, row_gap, col_gap = 1.0, 0.6 + 0.18 * caption, 0.75, 0.2, 0.8, 0.55
    ncols, nrows = min(4, n), math.ceil(n / 4)
    ax_w = max(2.75, (6.5 - left - right - (ncols - 1) * col_gap) / ncols)
    ax_h = 1.95
    width = left + ncols * ax_w + (ncols - 1) * col_gap + right
    height = top + nrows * ax_h + (nrows - 1) * row_gap + bottom
    fig = Figure(figsize=(width, height), dpi=110)
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw={
        "left": left / width, "right": 1 - right / width, "top": 1 - top / height, "bottom": bottom / height,
        "wspace": col_gap / ax_w, "hspace": row_gap / ax_h}).ravel()
    return fig, list(axes)


def _pick_layers(by_layer: dict, layers: dict, key: str) -> tuple[list[str], str]:
    """Layers to plot in model order; at most 24, preferring factorized then costly layers."""
    order = [n for n in layers if n in by_layer] + [n for n in by_layer if n not in layers]
    if len(order) <= _MAX_SUBPLOTS:
        return order, ""
    rank = sorted(order, key=lambda n: (layers.get(n, {}).get("method") is None, -layers.get(n, {}).get(f"{key}_before", 0)))
    keep = set(rank[:_MAX_SUBPLOTS])
    caption = (f"Showing {_MAX_SUBPLOTS} of {len(order)} layers with candidates (factorized and largest first); "
               f"all candidates are in report.json.")
    return [n for n in order if n in keep], caption


def _styles(methods: set[str]) -> dict[str, tuple[str, str]]:
    """Colour and marker per method, in the order of docs/METHOD.md (conv methods, then dense)."""
    known = [m for m in _METHOD_STYLE if m in methods]
    other = sorted(methods - set(known))
    return {m: _METHOD_STYLE[m] for m in known} | {m: _FALLBACK_STYLE[i % len(_FALLBACK_STYLE)] for i, m in enumerate(other)}


def _legend_rows(rows: list[list], blank) -> tuple[list, int]:
    """Handles in the column-major order ``fig.legend`` fills, so each list becomes one row."""
    ncols = max(len(r) for r in rows)
    padded = [r + [blank() for _ in range(ncols - len(r))] for r in rows]
    return [padded[r][c] for c in range(ncols) for r in range(len(rows))], ncols


def _frontier(pts: list[tuple]) -> list[tuple]:
    """The best similarity reachable at or below each cost: the method's trade-off curve."""
    front, best = [], -math.inf
    for x, y, *_ in pts:
        if y > best:
            front.append((x, y))
            best = y
    return front


def _chosen_point(layer: dict, cands: list[dict], key: str) -> tuple[float, float] | None:
    if not layer.get("method") or not layer.get(f"{key}_before"):
        return None
    sim = layer.get("similarity")
    if sim is None:
        match = [c for c in cands if c["method"] == layer["method"] and list(c["ranks"]) == list(layer.get("ranks") or [])]
        if not match:
            return None
        sim = match[0]["similarity"]
    return layer[f"{key}_after"] / layer[f"{key}_before"], sim


def _mathsafe(text: str) -> str:
    """Matplotlib reads ``$...$`` as math; layer names are plain text."""
    return str(text).replace("$", r"\$")
