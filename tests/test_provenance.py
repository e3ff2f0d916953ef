"""`lrfc.provenance`: what a report and export.json say made them."""

from __future__ import annotations

import platform

from lrfc import provenance as prov


def test_the_command_is_the_cli_s_own_and_none_after_it():
    from lrfc.cli import main

    prov.record_command(["build", "my model.keras", "--data", "imgs/"])
    assert prov.command() == "lrfc build 'my model.keras' --data imgs/"  # quoted as a shell would need it
    assert prov.provenance()["command"] == prov.command()
    assert main(["profiles", "list", "--json"]) == 0  # a CLI call records its own, and forgets it when it ends
    assert prov.command() is None and prov.provenance()["command"] is None  # the Python API ran no command


def test_the_line_a_report_shows():
    record = {"lrfc": "0.1.0", "command": None, "created_at": "2026-12-07T00:30:00Z",
              "packages": {"tensorflow-cpu": "2.21.0", "keras": "3.15.1", "tf2onnx": "1.17.0",
                           "ai-edge-litert": "2.3.0", "onnxruntime": "1.32.0"},
              "machine": {"cpu": "AMD EPYC", "isa": "AVX-512 VNNI", "cores": 2, "system": "Linux 6.1"}}
    assert prov.provenance_line(record) == (
        "lrfc 0.1.0, 2026-12-07T00:30:00Z on AMD EPYC (AVX-512 VNNI, 2 cores); tensorflow-cpu 2.21.0, "
        "tf2onnx 1.17.0, ai-edge-litert 2.3.0, onnxruntime 1.32.0; the Python API")
    assert prov.provenance_line(None) is None
    assert prov.version_text().endswith(f"; Python {platform.python_version()}")
