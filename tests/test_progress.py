"""Progress bars count the items done (images, points), not the batches."""

from __future__ import annotations

import pandas as pd

import pigeon._progress as progress_module


def test_track_chunks_covers_the_range_and_counts_items(monkeypatch):
    bars = []

    def spy():
        bar = real()
        bars.append(bar)
        return bar

    real = progress_module.progress
    monkeypatch.setattr(progress_module, "progress", spy)
    parts = list(progress_module.track_chunks(10, 4, "items"))
    assert [(p.start, p.stop) for p in parts] == [(0, 4), (4, 8), (8, 10)]
    [task] = bars[0].tasks
    assert task.total == 10 and task.completed == 10


def test_enrich_counts_points(capsys):
    from pigeon.geography import enrich

    enrich(pd.DataFrame({"lat": [48.85, 40.4, -33.9, 35.7, 64.1], "lon": [2.35, -3.7, 151.2, 139.7, -21.9]}))
    err = capsys.readouterr().err
    assert "enriching points" in err and "5/5" in err
