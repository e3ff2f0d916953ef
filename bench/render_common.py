"""What every section of docs/BENCHMARKS.md states about where its numbers come from."""

from __future__ import annotations


DEFAULTS_CHANGED = "2026-11-30 18:16 UTC"  # fine-tuning: 3 epochs without distillation before, 8 with it since
FIT_CHANGED = "2026-12-01 04:50 UTC"       # --data-aware: auto (both fits per rank) before, on (data-aware) since
DATA_CHANGED = "2026-12-01 18:03 UTC"      # fine-tuning: 8 epochs over 20,000 samples before, 3 over 60,000 since
WARM_CHANGED = "2026-12-02 07:33 UTC"      # budget search: every round --epochs before; a warm round by what changed since
MACHINE_CHANGED = "2026-12-02 09:44 UTC"   # the benchmark machine: AVX-512 (VNNI) before, an AVX2-only EPYC since
XEON_CHANGED = "2026-12-02 18:11 UTC"      # the benchmark machine: an AVX2-only EPYC before, an Intel Xeon (AVX-512, AMX) since
EPOCHS_CHANGED = "2026-12-02 16:09 UTC"    # fine-tuning: a cold round 3 epochs over 60,000 samples before, 2 since
ONNX_INT8_CHANGED = "2026-12-03 06:36 UTC"  # ONNX int8 files: int8 activations (S8S8) before, uint8 (U8S8) since
TWIN_CHANGED = "2026-12-03 15:04 UTC"  # the original's files: Flatten/Reshape with shape arithmetic before, constant since
PROXY_CHANGED = "2026-12-06 03:19 UTC"  # the budget search's proxy: the first 1,000 validation samples before, sequential since

RUN = ", run of "  # a row kept from an earlier run of the same command (bench.results_file.put_row, or by hand)


def machine_of(row: dict | None) -> str:
    """Which machine a row ran on: the label it recorded (``bench.machine.stamp``), else the project's benchmark
    machine at its date (rows from before rows recorded one)."""
    row = row or {}
    if row.get("machine"):
        return row["machine"]
    date = row.get("date") or row.get("measured_at")
    if not date:
        return "?"
    if date < MACHINE_CHANGED:
        return "EPYC (AVX-512)"
    return "EPYC (AVX2)" if date < XEON_CHANGED else "Xeon (AVX-512, AMX)"


def as_run(command: str, date: str | None) -> str:
    """A row's command as it reproduces that row today.

    At ``DEFAULTS_CHANGED`` fine-tuning went from 3 epochs without
    distillation to 8 with it; a fine-tuning ``lrfc build`` recorded before
    then gets the flags it ran with spelled out (``--epochs 3``,
    ``--no-distill``) where it did not set them itself. At ``FIT_CHANGED``
    the score stage's default fit went from ``auto`` to ``on``: any ``lrfc
    build`` recorded before then gets ``--data-aware auto``. At
    ``DATA_CHANGED`` a round went from 8 epochs over 20,000 training samples
    to 3 over 60,000: a fine-tuning build from before gets ``--epochs 8``
    (3 before ``DEFAULTS_CHANGED``) and ``--train-samples 20000`` where it
    did not set them. At ``EPOCHS_CHANGED`` a cold round went from 3 epochs
    to 2: a fine-tuning build from between the two gets ``--epochs 3``.
    """
    words = command.split()
    if words[:2] != ["lrfc", "build"] or not date:
        return command
    extra = []
    tunes = "--finetune none" not in command
    if date < EPOCHS_CHANGED and tunes and "--epochs" not in words:
        extra += ["--epochs", "3" if date < DEFAULTS_CHANGED or date >= DATA_CHANGED else "8"]
    if date < DATA_CHANGED and tunes and "--train-samples" not in words:
        extra += ["--train-samples", "20000"]
    if date < DEFAULTS_CHANGED and tunes:
        extra += [] if {"--distill", "--no-distill"} & set(words) else ["--no-distill"]
    if date < FIT_CHANGED and "--data-aware" not in words:
        extra += ["--data-aware", "auto"]
    return " ".join([command, *extra]) if extra else command


def machine_line(record: dict) -> str:
    """CPU model, cores, Python, numpy and the pinned runtimes/frameworks of one results file: of each machine its rows
    ran on, each under the label the rows' machine column shows, where there were several."""
    machines = record.get("machines") or {}
    if len(machines) > 1:
        return "; ".join(f"{name}: {_described(m)}" for name, m in sorted(machines.items()))
    return _described(record.get("machine", {}))


def _described(m: dict) -> str:
    v = m.get("versions", {})
    versions = ", ".join(f"{k} {v[k]}" for k in sorted(v))
    isa = f" ({m['isa']}{', AMX' if m.get('amx') else ''})" if m.get("isa") else ""
    return (f"{m.get('cpu', '?')}{isa}, {m.get('cores', '?')} cores, Python {m.get('python', '?')}, "
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
