"""scripts/vision_probe.py: simulator views labelled with the true block and end-effector
positions, and the probe that trains a small model's vision stage on them."""

from __future__ import annotations

import json
import sys

import numpy as np
from script_loading import load_script

from openvla_ros.finetune.small_model import make_small_model
from openvla_ros.sim.world import SimWorld

PROBE = load_script('vision_probe')


def test_views_are_labelled_with_the_scenes_block_and_the_arms_pose():
    frames, labels = PROBE.render_views(20000, scenes=2, views=2, size=112)
    assert frames.shape == (4, 112, 112, 3) and labels.shape == (4, 5)
    for scene, seed in enumerate((20000, 20001)):
        with SimWorld('wx250s', task='lift_block', seed=seed) as world:
            block = next(iter(world.object_poses().values()))[:3, 3]
        rows = labels[2 * scene : 2 * scene + 2]
        np.testing.assert_allclose(rows[:, :2], np.tile(block[:2], (2, 1)), atol=2e-3)
    assert np.all((labels[:, 4] > 0.02) & (labels[:, 4] < 0.32))  # the arm above the table
    assert not np.array_equal(frames[0], frames[1])  # another arm pose, another picture
    again, _ = PROBE.render_views(20000, scenes=2, views=2, size=112)
    assert np.array_equal(frames, again)  # the seeds decide the views


def test_the_probe_trains_the_vision_stage_and_reports_held_out_r2(tmp_path, capsys, monkeypatch):
    model = make_small_model(tmp_path / 'base', 'micro', seed=0)
    argv = ['vision_probe.py', str(model), '--scenes', '3', '--views', '2', '--held-out-scenes',
            '2', '--steps', '4', '--batch-size', '2', '--eval-every', '2']  # fmt: skip
    monkeypatch.setattr(sys, 'argv', argv)
    PROBE.main()
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert lines[0]['frames'] == 6 and lines[0]['held_out'] == 4
    assert [line['step'] for line in lines[1:]] == [2, 4]
    for line in lines[1:]:
        assert set(line['held_out_r2']) == set(PROBE.LABELS)
        assert all(np.isfinite(v) for v in line['held_out_r2'].values())
