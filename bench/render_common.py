"""What every section of docs/BENCHMARKS.md states about where its numbers come from."""

from __future__ import annotations


def machine_line(record: dict) -> str:
    """CPU model, cores, Python, numpy and the pinned runtimes/frameworks of one results file."""
    m = record.get("machine", {})
    v = m.get("versions", {})
    versions = ", ".join(f"{k} {v[k]}" for k in sorted(v))
    return (f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, Python {m.get('python', '?')}, "
            f"numpy {m.get('numpy', '?')}" + (f"; {versions}" if versions else ""))


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display on a benchmark machine)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path) -> None:
    """Write a PNG without the matplotlib version stamp, so a re-render of the same numbers is the same file."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
