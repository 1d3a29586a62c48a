"""Record demonstrations from rosbag2 bags (MCAP or sqlite3) into a fine-tuning dataset.

Each bag (or each instruction segment of a bag) becomes an episode of (third-person image,
instruction, end-effector action) steps at the profile's policy rate; all-zero actions are
dropped. Live topics are not recorded here: record them with `ros2 bag record` first.

Examples:

    openvla-ros record --bag bags/ep_000 bags/ep_001 --out data/pick_block --profile widowx_bridge
    openvla-ros record --bag run.mcap --out data/drawer --instruction "open the drawer" \\
        --image-topic /camera/color/image_raw --commanded-topic /openvla/ee_target
    openvla-ros record --bag bags/* --out data/measured --action-source measured \\
        --measured-topic /joint_states --gripper-joint gripper --gripper-closed 0.0 \\
        --gripper-open 0.04 --json

The dataset format is described in docs/finetune.md. Known errors print one line on stderr and
exit 1; with --json the last stdout line is the dataset summary without its episode list.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from openvla_ros.cli.errors import CliError
from openvla_ros.msgio import topics

__all__ = ['add_arguments', 'main']


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the verb's arguments."""
    parser.add_argument(
        '--bag', nargs='+', required=True, type=Path, help='rosbag2 directories or files'
    )
    parser.add_argument('--out', required=True, type=Path, help='dataset directory to write')
    parser.add_argument(
        '--profile', default='widowx_bridge', help='robot profile (rate, robot, action space)'
    )
    parser.add_argument('--instruction', default=None, help='fixed instruction for every bag')
    parser.add_argument('--image-topic', default=topics.CAMERA_IMAGE, help='camera topic')
    parser.add_argument('--instruction-topic', default=topics.INSTRUCTION, help='std_msgs/String')
    parser.add_argument(
        '--commanded-topic',
        default=None,
        help='EndEffectorTarget topic (default: /openvla/safe_ee_target, else /openvla/ee_target)',
    )
    parser.add_argument(
        '--measured-topic',
        default=topics.JOINT_STATES,
        help='JointState (FK) or PoseStamped topic',
    )
    parser.add_argument(
        '--action-source',
        default='commanded',
        choices=('commanded', 'measured'),
        help='actions from commanded targets (default) or measured poses',
    )
    parser.add_argument('--rate', type=float, default=None, help='[Hz] step rate (profile)')
    parser.add_argument('--gripper-joint', default=None, help='gripper joint (measured source)')
    parser.add_argument('--gripper-closed', type=float, default=0.0, help='closed joint position')
    parser.add_argument('--gripper-open', type=float, default=1.0, help='open joint position')
    parser.add_argument(
        '--image-size', type=int, default=None, help='store frames resized to N x N'
    )
    parser.add_argument('--jpeg-quality', type=int, default=95, help='JPEG quality (1-100)')
    parser.add_argument(
        '--keep-zero-actions', action='store_true', help='keep all-zero steps (not recommended)'
    )
    parser.add_argument(
        '--header-stamps', action='store_true', help='time by header stamps, not bag times'
    )
    parser.add_argument('--overwrite', action='store_true', help='replace a dataset in --out')
    parser.add_argument('--json', action='store_true', help='print the summary as JSON')


def main(args: argparse.Namespace) -> int:
    """Read the bags, build episodes, write the dataset, print a summary."""
    missing = [str(p) for p in args.bag if not p.exists()]
    if missing:
        raise CliError(f'no bag at {", ".join(missing)}')
    if args.out.exists() and not args.out.is_dir():
        raise CliError(f'{args.out} exists and is not a directory')
    from openvla_ros.bringup.profiles import ProfileError
    from openvla_ros.data import DataError, episodes_from_bags, RecordConfig, write_dataset

    try:
        config = RecordConfig.from_profile(
            args.profile,
            rate_hz=args.rate,
            instruction=args.instruction,
            image_topic=args.image_topic,
            instruction_topic=args.instruction_topic,
            commanded_topic=args.commanded_topic,
            measured_topic=args.measured_topic,
            action_source=args.action_source,
            gripper_joint=args.gripper_joint,
            gripper_closed=args.gripper_closed,
            gripper_open=args.gripper_open,
            image_size=args.image_size,
            jpeg_quality=args.jpeg_quality,
            drop_zero_actions=not args.keep_zero_actions,
            use_header_stamps=args.header_stamps,
        )
        episodes = episodes_from_bags(args.bag, config, progress=not args.json)
        out = write_dataset(
            args.out, episodes, config, profile=args.profile, overwrite=args.overwrite
        )
    except (DataError, ProfileError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f'cannot write {args.out}: {exc}') from exc
    summary = json.loads((out / 'dataset.json').read_text())
    if args.json:
        summary.pop('episodes', None)
        summary.pop('record_config', None)
        print(json.dumps({'dataset': str(out), **summary}))
        return 0
    print(
        f'wrote {out}: {summary["num_episodes"]} episode(s), {summary["num_steps"]} step(s), '
        f'{summary["num_dropped_zero_actions"]} all-zero step(s) dropped'
    )
    for text, steps in summary['instructions'].items():
        print(f'  {steps:6d} steps  {text}')
    return 0
