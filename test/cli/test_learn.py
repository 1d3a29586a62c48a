"""`openvla-ros learn` end to end on a few episodes (the loop runs, resumes and reports; its
success rate is not checked here), and the learned checkpoints that ship with the package."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from openvla_ros.cli._episode_args import learned_checkpoints, resolve_learned
from openvla_ros.cli.main import main as cli

pytest.importorskip('interbotix_xs_msgs.msg', reason='interbotix_xs_msgs fixture not built')

SMOKE = [
    'learn', 'widowx_bridge', '--task', 'lift_block', '--demos', '2', '--steps', '4',
    '--save-every', '2', '--batch-size', '2', '--select-episodes', '1', '--eval-episodes', '1',
    '--model-size', 'micro', '--use-failed-demos', '--warmup-steps', '1', '--vision-steps', '2',
    '--vision-views', '1',
]  # fmt: skip


def test_learn_records_trains_selects_evaluates_and_reports(tmp_path: Path, capsys) -> None:
    out = tmp_path / 'run'
    assert cli([*SMOKE, '--out', str(out), '--json']) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report['demonstrations_recorded'] == 2 and report['demonstrations_used'] == 2
    assert report['dataset']['steps'] > 0
    assert report['demonstrations_real_time_factor'] > 0.0  # the pace they ran at, kept
    assert set(report['selection']) == {'2', '4'}  # both checkpoints were candidates
    assert report['best_step'] in (2, 4)
    # the recipe is in the report: learn's defaults (soft action targets, sine-cosine start)
    assert report['training'] == {
        'keep_still': True, 'batch_size': 2, 'lr': 1e-3, 'augment': 'camera', 'bin_sigma': 3.0,
        'pos_embed_init': 'sincos',
    }  # fmt: skip
    assert 'bin_sigma 3' in (out / 'report.md').read_text()
    # learn's expert plans on the measured pose, the one its frames show
    assert report['expert'] == {
        'plan_from': 'measured', 'speed': [0.04, 0.15], 'gain': 0.4, 'noise': [0.006, 0.03],
        'noise_probability': 0.3, 'miss_probability': 0.0,
    }  # fmt: skip
    evaluation = report['evaluation']
    assert evaluation['episodes'] == 1 and 0.0 <= evaluation['success_rate'] <= 1.0
    assert evaluation['ci95'][0] <= evaluation['success_rate'] <= evaluation['ci95'][1]
    seeds = report['seeds']
    assert seeds['demos'] == [1000, 1002] and seeds['evaluation'] == [9000, 9001]
    for name in ('report.json', 'report.md', 'learning.png', 'learn.json'):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / 'best' / 'config.json').is_file() and (out / 'best' / 'learned.json').is_file()
    # the base's ViTs were taught where the objects are, on views of the demonstration scenes
    vision = report['vision_pretraining']
    assert vision['classes'] == ['red_block', 'green_block', 'blue_block', 'gripper']
    assert (vision['views'], vision['held_out_views']) == (2, 0)  # 2 scenes x 1 view
    assert '2 steps on 2 views' in (out / 'report.md').read_text()
    assert not (out / 'base_random').exists() and (out / 'base' / 'vision_pretrain.json').is_file()
    for stage in ('demos', 'dataset', 'vision', 'train', 'selection', 'evaluation'):
        assert report['timings_s'][stage] >= 0, stage
    # a second run resumes: nothing is recorded, trained or evaluated again
    before = (out / 'learn.json').read_text()
    assert cli([*SMOKE, '--out', str(out), '--json']) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again['evaluation'] == report['evaluation']
    assert (
        json.loads(before)['timings_s']
        == json.loads((out / 'learn.json').read_text())['timings_s']
    )


def test_learn_refuses_an_output_of_other_settings(tmp_path: Path, capsys) -> None:
    out = tmp_path / 'run'
    out.mkdir()
    (out / 'learn.json').write_text(json.dumps({'settings': {'task': 'carrot_on_plate'}}))
    assert cli([*SMOKE, '--out', str(out)]) == 1
    assert 'other settings (task)' in capsys.readouterr().err
    (out / 'learn.json').write_text(json.dumps({'settings': {'expert_plan_from': 'target'}}))
    assert cli([*SMOKE, '--out', str(out)]) == 1
    assert 'other settings (expert_plan_from)' in capsys.readouterr().err


def test_learn_refuses_overlapping_seed_ranges(tmp_path: Path, capsys) -> None:
    assert cli([*SMOKE, '--out', str(tmp_path), '--eval-seed', '1001']) == 1
    assert 'overlap' in capsys.readouterr().err


def test_learn_stops_after_a_stage_and_adopts_a_training_done_elsewhere(
    tmp_path: Path, capsys
) -> None:
    """Record here, train with scripts/gpu_learn.sh in another directory (a GPU machine gets only
    learn.json and dataset/), copy its tars back, resume: selection runs on the exports."""
    import subprocess
    import tarfile

    run = tmp_path / 'run'
    i = SMOKE.index('--demos')
    smoke = SMOKE[:i] + SMOKE[i + 2 :]
    # demonstrations held at half the wall clock's pace (the default, 0, runs them as fast as
    # the graph keeps up): the simulator gets the cap and each demonstration keeps its pace
    assert cli([*smoke, '--demos', '2', '--out', str(run), '--stop-after', 'demos',
                '--demo-time-factor', '0.5']) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith('stopped after demos')
    demos = json.loads((run / 'learn.json').read_text())['demos']
    assert len(demos) == 2
    assert all(0.0 < d['real_time_factor'] <= 0.55 for d in demos.values()), demos
    assert not (run / 'dataset').exists()
    # fewer demos before the dataset exists: the set shrinks to the seeds in range
    assert cli([*smoke, '--demos', '1', '--out', str(run), '--stop-after', 'dataset']) == 0
    state = json.loads((run / 'learn.json').read_text())
    assert list(state['demos']) == ['1000'] and state['dataset']['episodes'] == 1
    summary = json.loads((run / 'dataset' / 'dataset.json').read_text())
    assert summary['image_shapes'] == [[112, 112, 3]]  # the micro model's input side
    assert not (run / 'train').exists()

    elsewhere = tmp_path / 'gpu' / 'run'
    elsewhere.mkdir(parents=True)
    (elsewhere / 'learn.json').write_bytes((run / 'learn.json').read_bytes())
    (elsewhere / 'dataset').symlink_to(run / 'dataset')
    out = tmp_path / 'back'
    script = Path(__file__).resolve().parents[2] / 'scripts' / 'gpu_learn.sh'
    done = subprocess.run(
        [str(script), '--cpu-rehearsal', '--steps', '4', '--batch-size', '2', '--lr', '1e-3',
         '--save-every', '2', '--minutes', '5', '--out', str(out), '--', str(elsewhere)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    tars = sorted(p.name for p in out.glob('*.tar'))
    assert tars == ['run-export_step_000002.tar', 'run-export_step_000004.tar', 'run.tar']
    for name in tars:
        with tarfile.open(out / name) as tar:
            tar.extractall(run, filter='data')
    assert not (run / 'train' / 'checkpoints').exists()  # only the exports came back

    assert cli([*smoke, '--demos', '1', '--out', str(run), '--json']) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(report['selection']) == {'2', '4'} and report['demonstrations_recorded'] == 1
    assert report['evaluation']['episodes'] == 1
    assert (run / 'best' / 'learned.json').is_file()


def test_shipped_learned_checkpoints_load_and_predict_finite_actions() -> None:
    from openvla_ros.model.policy import OpenVLAPolicy

    shipped = learned_checkpoints()
    assert 'lift_block' in shipped, 'the learned lift_block checkpoint must ship'
    for task, path in shipped.items():
        size = sum(f.stat().st_size for f in path.rglob('*') if f.is_file())
        assert size <= 25 * 2**20, f'{task}: {size} bytes'
        meta = json.loads((path / 'learned.json').read_text())
        policy = OpenVLAPolicy.load(str(path), device='cpu', dtype='float32')
        rng = np.random.default_rng(0)
        image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        prediction = policy.predict(image, 'pick up the red block', unnorm_key=meta['unnorm_key'])
        action = np.asarray(prediction.action)
        assert action.shape == (7,) and np.all(np.isfinite(action)), task


def test_policy_learned_resolves_to_the_shipped_checkpoint() -> None:
    import argparse

    args = argparse.Namespace(
        policy='learned', profile='widowx_bridge', task='lift_block', model='', unnorm_key=''
    )
    assert resolve_learned(args) == ''
    assert args.policy == 'openvla' and Path(args.model) == learned_checkpoints()['lift_block']
    assert args.unnorm_key == 'sim_lift_block'
    missing = argparse.Namespace(
        policy='learned', profile='widowx_bridge', task='spoon_on_towel', model='', unnorm_key=''
    )
    assert 'no learned checkpoint ships for task' in resolve_learned(missing)
