"""bench.render_scale: the scale table and its verdicts come from the results, met or missed as measured."""

from bench.render_scale import scale, scale_plot


def _row(peak_mb: float, score_s: float, wall_s: float) -> dict:
    return {"command": "lrfc build m.keras ...", "params": 25_600_000, "macs": 4_000_000_000, "layers": 54,
            "input_shape": "224x224x3", "timings": {"load": 20.0, "calibrate": 30.0, "score": score_s, "select": 40.0},
            "peak_rss_mb": {"load": 900.0, "calibrate": peak_mb, "score": peak_mb - 100}, "memory": {"expected_peak": 3000.0},
            "wall_s": wall_s, "measured_at": "2026-11-30 07:00 UTC"}


def test_the_verdicts_follow_the_numbers(tmp_path):
    record = {"machine": {"cpu": "x", "cores": 2}, "rows": {
        "resnet50-224": _row(3500.0, 540.0, 1500.0), "resnet50-64": _row(5000.0, 200.0, 400.0),
        "mobilenetv2": {"command": "lrfc build ...", "error": "exit 1: boom", "wall_s": 60.0}}}
    text = "\n".join(scale(record))
    assert "- resnet50-224: peak 3.42 GiB (met: <= 4 GiB; 3.67 x 10^9 bytes); score 9.0 min (met: <= 10 min)." in text
    assert ("- resnet50-64: peak 4.88 GiB (missed: <= 4 GiB; 5.24 x 10^9 bytes); whole build 6.67 min, 400 s (missed: <= 5 min), "
            "peak 4.88 GiB (missed: <= 4 GiB).") in text
    assert "| mobilenetv2 | | | | | failed: exit 1: boom |" in text
    assert "| resnet50-224 | 224x224x3 | 25,600,000 | 4,000,000,000 | 54 | 3.42 (calibrate) | 2.93 |" in text
    scale_plot(record, tmp_path / "scale.png")
    assert (tmp_path / "scale.png").stat().st_size > 1000


def test_a_whole_build_row_beside_a_cut_short_one_decides_the_build_target():
    cut = {**_row(3000.0, 300.0, 500.0), "until": "score"}
    record = {"machine": {"cpu": "x", "cores": 2}, "rows": {"resnet50-64": cut, "resnet50-64-whole": _row(3900.0, 280.0, 840.0)}}
    text = "\n".join(scale(record))
    assert ("- resnet50-64: peak 2.93 GiB (met: <= 4 GiB; 3.15 x 10^9 bytes); whole build 14.00 min, 840 s (missed: <= 5 min), "
            "peak 3.81 GiB (met: <= 4 GiB).") in text
    for wall, verdict in ((297.2, "4.95 min, 297 s (met"), (301.0, "5.02 min, 301 s (missed")):  # one decimal hid these
        record["rows"]["resnet50-64-whole"]["wall_s"] = wall
        assert f"whole build {verdict}: <= 5 min)" in "\n".join(scale(record))
    record["rows"].pop("resnet50-64-whole")
    assert "whole build not run (stages up to score only)" in "\n".join(scale(record))
    assert "stage by stage" not in "\n".join(scale(record))  # a cut-short build has no stage table


def test_whole_builds_get_a_stage_by_stage_table():
    whole = _row(3900.0, 280.0, 840.0)
    whole["timings"].update(factorize=120.0, lower=58.0, price=0.0)
    whole["peak_rss_mb"].update(select=3000.0, factorize=3584.0, lower=6144.0)
    text = "\n".join(scale({"machine": {"cpu": "x", "cores": 2}, "rows": {"resnet50-64-whole": whole}}))
    assert "| stage | resnet50-64-whole |" in text
    assert "| score | 280 / 3.71 |" in text and "| factorize | 120 / 3.50 |" in text and "| lower | 58 / 6.00 |" in text
    assert "| price |" not in text  # a stage that did not run is left out


def test_a_build_cut_short_runs_its_stages_up_to_the_one_named_and_no_further(tmp_path):
    from bench.scale import state_until

    state = state_until("calibrate", ["tests/fixtures/golden/tiny.keras", "--data", "fashion-mnist", "--finetune", "none",
                                      "--bench-runs", "0", "--calib-samples", "32", "--no-cache", "--out", str(tmp_path / "out")])
    timed = state.timer.snapshot()
    assert {"load", "calibrate"} <= set(timed) and "score" not in timed
    assert state.peak_rss_mb["calibrate"] > 0
    assert not (tmp_path / "out").exists()  # nothing published by a build cut short
