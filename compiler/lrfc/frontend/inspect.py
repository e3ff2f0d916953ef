"""`lrfc inspect`: the layer catalogue of a model file as data and as a table."""

from __future__ import annotations

from lrfc.frontend.load import load_flat


def inspect_model(path: str, trust: bool = False, input_shape: tuple[int, ...] | None = None) -> dict:
    """The `lrfc inspect --json` document for a model file.

    Returns:
        ``{"model", "input_shape", "input", "layers": [{"name", "type",
        "output_shape", "params", "macs", "methods"}...], "total_params",
        "total_macs", "factorizable_layers", "binary_output"}``; ``input`` is the input
        contract inferred from the graph (``frontend.contract``); ``binary_output``
        ``"sigmoid"`` or ``"logit"`` for a binary classifier's one output unit
        (``frontend.binary``), else None.
    """
    from lrfc.frontend.binary import binary_kind
    from lrfc.frontend.catalogue import describe_model
    from lrfc.frontend.contract import infer_contract

    flat = load_flat(path, trust, input_shape)
    rows = describe_model(flat)
    return {
        "model": flat.name,
        "input_shape": [list(t.shape[1:]) for t in flat.inputs],
        "input": infer_contract(flat).to_json() if len(flat.inputs) == 1 else None,
        "layers": [r.to_json() | ({"note": r.note} if r.note else {}) for r in rows],
        "total_params": sum(r.params for r in rows),
        "total_macs": sum(r.macs for r in rows),
        "factorizable_layers": sum(1 for r in rows if r.methods),
        "binary_output": binary_kind(flat) if len(flat.inputs) == 1 and len(flat.outputs) == 1 else None,
    }


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def render_table(report: dict) -> str:
    """A fixed-width table of an inspect report, totals at the bottom."""
    head = ("layer", "type", "output shape", "params", "MACs", "methods")
    rows = [
        (
            r["name"],
            r["type"],
            "(" + ", ".join("None" if d is None else str(d) for d in r["output_shape"]) + ")",
            _fmt_int(r["params"]),
            _fmt_int(r["macs"]),
            ",".join(r["methods"]) or "-",
        )
        for r in report["layers"]
    ]
    total = ("total", f"{len(rows)} layers", "", _fmt_int(report["total_params"]), _fmt_int(report["total_macs"]),
             f"{report['factorizable_layers']} factorizable")
    widths = [max(len(str(c[i])) for c in [head, total, *rows]) for i in range(len(head))]
    right = {3, 4}

    def line(cells) -> str:
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [line(head), rule, *map(line, rows), rule, line(total)]
    if report.get("input"):
        from lrfc.frontend.contract import InputContract

        lines.append(f"input: {InputContract(**report['input']).describe()}")
    if report.get("binary_output"):
        from lrfc.frontend.binary import describe

        lines.append(f"output: {describe(report['binary_output'])}")
    return "\n".join(lines)
