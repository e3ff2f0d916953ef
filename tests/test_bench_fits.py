"""bench.fits' section: the three builds per model, totals read off the rows."""

from bench.render_fits import fits


def _run(fit, threads, score, wins, cands, macs, same):
    return {"fit": fit, "score_threads": threads, "score_s": score, "wall_s": 3 * score, "candidates": cands,
            "weight_only": wins, "macs_removed_pct": macs, "params_removed_pct": macs + 3, "drop_points": 0.9,
            "test_accuracy": 0.9, "same_plan": same, "command": f"lrfc build m.keras --data-aware {fit}"}


def test_the_section_states_each_build_and_the_totals():
    record = {"machine": {"cpu": "cpu", "cores": 2}, "rows": {
        "a": {"budget": 2.0, "measured_at": "2026-12-01 05:40 UTC",
              "runs": {"auto": _run("auto", 2, 60.0, 2, 200, 80.0, True), "on": _run("on", 2, 30.0, 0, 198, 80.0, True),
                       "on-1-thread": _run("on", 1, 50.0, 0, 198, 80.0, True)}},
        "b": {"budget": 1.0, "measured_at": "2026-12-01 05:50 UTC",
              "runs": {"auto": _run("auto", 2, 100.0, 1, 300, 70.0, True), "on": _run("on", 2, 45.0, 0, 305, 69.5, False),
                       "on-1-thread": _run("on", 1, 70.0, 0, 305, 69.5, False)}}}}
    text = "\n".join(fits(record))
    assert text.count("| a | 2 |") == 3 and text.count("| b | 1 |") == 3
    assert "| b | 1 | auto | 2 | 100 | 300 | 300 | 1 | yes | 70.00 % |" in text
    assert "| b | 1 | on | 2 | 45 | 135 | 305 | - | no | 69.50 % |" in text
    assert "| b | 1 | on-1-thread | 1 | 70 | 210 | 305 | - | no |" in text
    assert "won 3 of 500 candidates, and 1 of 2 published plans changed" in text
    assert "`auto` 160 s, `on` 75 s (2.13x less), `on` one walk at a time 120 s (threads: 1.60x)" in text
