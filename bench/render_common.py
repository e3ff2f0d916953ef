"""What every section of docs/BENCHMARKS.md states about where its numbers come from."""

from __future__ import annotations


DISTILL_DEFAULT_SINCE = "2026-11-30 17:27 UTC"  # fine-tuning builds dated before it ran without distillation


def as_run(command: str, date: str | None) -> str:
    """A row's command as it reproduces that row today.

    Distillation became the default at ``DISTILL_DEFAULT_SINCE``; a
    fine-tuning ``lrfc build`` recorded before then without either flag ran
    with it off, so ``--no-distill`` is added to say so.
    """
    words = command.split()
    if (words[:2] != ["lrfc", "build"] or not date or date >= DISTILL_DEFAULT_SINCE
            or {"--distill", "--no-distill"} & set(words) or "--finetune none" in command):
        return command
    return command + " --no-distill"


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
