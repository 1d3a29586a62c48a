"""scripts/label_pixel_probe.py: finds the red block and measures how linear the first action is
in its pixel position (R^2 near 1 for a linear label, near 0 for a label unrelated to it)."""

from __future__ import annotations

import json

import numpy as np
from script_loading import load_script

from openvla_ros.data import Episode, RecordConfig, write_dataset


def _frame(u: int, v: int) -> np.ndarray:
    frame = np.full((64, 64, 3), 120, np.uint8)
    frame[v - 2 : v + 3, u - 2 : u + 3] = (220, 20, 20)
    return frame


def test_the_red_centroid_is_where_the_block_was_drawn():
    probe = load_script('label_pixel_probe')
    u, v, pixels = probe.red_centroid(_frame(40, 12))
    assert (round(u), round(v), pixels) == (40, 12, 25)
    assert probe.red_centroid(np.full((64, 64, 3), 120, np.uint8)) is None


def test_a_label_linear_in_the_block_position_fits_and_noise_does_not(
    tmp_path, capsys, monkeypatch
):
    rng = np.random.default_rng(0)
    episodes = []
    for i in range(40):
        u, v = rng.integers(8, 56, size=2)
        action = np.zeros((2, 7))
        action[:, 0] = 0.001 * u  # dx follows the column
        action[:, 1] = -0.002 * v + 0.05  # dy the row
        action[:, 2] = rng.normal(0, 0.01)  # dz ignores the block
        episodes.append(Episode('pick up the red block', [_frame(u, v)] * 2, action,
                                np.array([0, 200_000_000]) + i))  # fmt: skip
    data = write_dataset(tmp_path / 'data', episodes, RecordConfig())
    monkeypatch.setattr('sys.argv', ['label_pixel_probe.py', str(data)])
    load_script('label_pixel_probe').main()
    report = json.loads(capsys.readouterr().out)
    assert report['episodes'] == 40
    r2 = report['r2_on_block_pixel_centroid']
    assert r2['dx'] > 0.99 and r2['dy'] > 0.99 and r2['dz'] < 0.3
