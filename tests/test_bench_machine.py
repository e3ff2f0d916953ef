"""bench.machine and bench.results_file.put_row: rows from two benchmark machines in one results file."""

from __future__ import annotations

from bench import machine as machine_mod
from bench.machine import label, note_machine
from bench.render_common import machine_line, machine_of
from bench.results_file import put_row

XEON = {"cpu": "Intel(R) Xeon(R) Processor", "isa": "AVX-512 VNNI", "amx": True, "cores": 2}
EPYC = {"cpu": "AMD EPYC 7B13", "isa": "AVX2, no AVX-512", "amx": False, "cores": 2}


def test_labels_name_the_family_and_widest_extensions():
    assert label(XEON) == "Xeon (AVX-512, AMX)"
    assert label(EPYC) == "EPYC (AVX2)"
    assert label({"cpu": "AMD EPYC", "isa": "AVX-512"}) == "EPYC (AVX-512)"
    assert label({"cpu": "Apple M2"}) == "Apple M2"


def test_a_second_machine_keeps_the_first(monkeypatch):
    monkeypatch.setattr(machine_mod, "machine", lambda: EPYC)
    results = {"machine": XEON, "runs": {}}  # a file from before "machines"
    note_machine(results)
    assert results["machines"] == {"Xeon (AVX-512, AMX)": XEON, "EPYC (AVX2)": EPYC}
    assert results["machine"] == EPYC
    line = machine_line(results)
    assert line.startswith("EPYC (AVX2): AMD EPYC 7B13 (AVX2, no AVX-512)") and "Xeon (AVX-512, AMX): Intel" in line
    assert machine_line({"machine": XEON}).startswith("Intel(R) Xeon(R) Processor (AVX-512 VNNI, AMX), 2 cores")


def test_a_row_from_another_machine_does_not_replace_the_old_one():
    runs = {"vgg/default": {"date": "2026-12-03 11:34 UTC", "drop": 0.7},  # no label: the Xeon by its date
            "vgg/default, run of 2026-12-02": {"date": "2026-12-02 18:53 UTC", "drop": 1.0},
            "resnet/default": {"date": "2026-12-03 05:48 UTC", "drop": 0.68}}
    assert machine_of(runs["vgg/default"]) == "Xeon (AVX-512, AMX)"
    put_row(runs, "vgg/default", {"date": "2026-12-04 03:00 UTC", "machine": "EPYC (AVX2)", "drop": 0.4})
    assert runs["vgg/default"]["drop"] == 0.4
    assert runs["vgg/default, run of 2026-12-03 11:34"]["drop"] == 0.7
    assert list(runs) == ["vgg/default", "vgg/default, run of 2026-12-03 11:34", "vgg/default, run of 2026-12-02",
                          "resnet/default"]  # the kept row beside the new one
    put_row(runs, "vgg/default", {"date": "2026-12-04 04:00 UTC", "machine": "EPYC (AVX2)", "drop": 0.5})
    assert runs["vgg/default"]["drop"] == 0.5 and len(runs) == 4  # the same machine: replaced


def test_a_scale_row_stamped_measured_at_is_kept_too():
    """bench.scale's rows carry ``measured_at``, not ``date``: another machine's row of one name stays all the same."""
    runs = {"resnet50-224": {"measured_at": "2026-12-05 03:10 UTC", "machine": "Xeon (AVX-512, AMX)", "wall_s": 768.8}}
    put_row(runs, "resnet50-224", {"measured_at": "2026-12-07 03:03 UTC", "machine": "EPYC (AVX-512)", "wall_s": 552.8})
    assert runs == {"resnet50-224": {"measured_at": "2026-12-07 03:03 UTC", "machine": "EPYC (AVX-512)", "wall_s": 552.8},
                    "resnet50-224, run of 2026-12-05 03:10": {"measured_at": "2026-12-05 03:10 UTC",
                                                              "machine": "Xeon (AVX-512, AMX)", "wall_s": 768.8}}
