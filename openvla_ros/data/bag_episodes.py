"""rosbag2 files (MCAP or sqlite3) -> episodes of (image, instruction, end-effector action).

How a bag becomes steps (the semantics the policy uses, docs/design.md):

1. Read the camera, instruction and pose streams with rosbags (bag receive times, or header
   stamps with `use_header_stamps`).
2. Sample them at the profile's policy rate from the first time every stream has a value:
   `t_k = t_0 + k / rate`, each stream giving its latest message at or before `t_k`.
3. The action of step k moves the end-effector pose of `t_k` to that of `t_{k+1}`:
   `ActionSpace.delta_between(T_k, T_{k+1})` (the control core's inverse of the delta the policy
   node applies), and its gripper is the opening at `t_{k+1}` in the profile's gripper
   convention. Poses are the commanded targets (`EndEffectorTarget`, preferred: the policy's own
   output has the same meaning) or measured ones (`JointState` through forward kinematics, or a
   `PoseStamped`).
4. Steps whose six delta values are all zero (within `zero_tolerance`) are dropped, like
   OpenVLA's `zero_action_filter` (the gripper value is not looked at).
5. A new episode starts where the instruction changes.

With `label_topic` (an expert's clean labels, `ActionChunk`s published on every policy tick, as
the scripted expert does when its executed actions carry DART noise), the steps are the label
messages instead: step j is (the latest camera frame at or before label j, label j's first
action). That is exactly what a policy sees and must answer at a tick, and it keeps the expert's
action for a perturbed state rather than the perturbed motion that was executed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np

from openvla_ros.data.errors import (
    BagReadError,
    EmptyDatasetError,
    MissingTopicError,
    NoImagesError,
)
from openvla_ros.msgio import topics
from openvla_ros.msgio.fields import decode_image, make_typestore, pose_to_matrix, stamp_ns

__all__ = [
    'ACTION_SOURCES',
    'EXPERT_LABEL_TOPIC',
    'Episode',
    'RecordConfig',
    'Streams',
    'build_episodes',
    'read_bag',
    'episodes_from_bags',
]

logger = logging.getLogger(__name__)

ActionSource = Literal['commanded', 'measured']
ACTION_SOURCES: tuple[str, ...] = ('commanded', 'measured')
#: Where the scripted expert publishes its clean labels (`openvla_ros.nodes.scripted_policy_node`).
EXPERT_LABEL_TOPIC = topics.EXPERT_ACTION
#: Commanded-target topics tried in this order when `commanded_topic` is left at None.
DEFAULT_COMMANDED_TOPICS = (topics.SAFE_EE_TARGET, topics.EE_TARGET)


@dataclass
class RecordConfig:
    """How bags become episodes.

    Attributes:
        rate_hz: [Hz] step rate (the profile's `policy_rate`: 5 Hz for widowx_bridge).
        robot: kinematics name for measured joint states (the profile's `robot`).
        action_space: delta semantics (the profile's `action_space`).
        gripper_convention: `GripperConvention` number of the recorded gripper value.
        image_topic: camera (sensor_msgs/Image or CompressedImage).
        instruction_topic: task text (std_msgs/String).
        commanded_topic: EndEffectorTarget topic; None tries /openvla/safe_ee_target, then
            /openvla/ee_target.
        measured_topic: sensor_msgs/JointState (forward kinematics) or geometry_msgs/PoseStamped.
        action_source: 'commanded' or 'measured' poses.
        instruction: fixed instruction (overrides the instruction topic, which may then be absent).
        gripper_joint: JointState joint giving the gripper when the source is measured and the
            bag has no commanded targets.
        gripper_closed: joint position of the closed gripper [rad or m].
        gripper_open: joint position of the open gripper.
        drop_zero_actions: drop steps whose delta is all-zero (OpenVLA's filter).
        zero_tolerance: largest |delta| counted as zero [m, rad].
        use_header_stamps: time messages by header stamps instead of bag receive times.
        image_size: resize stored frames to this square side (None keeps the camera size).
        jpeg_quality: JPEG quality of stored frames.
        min_steps: episodes with fewer steps are skipped.
        label_topic: ActionChunk topic of an expert's labels; when set, steps are the labels
            (module docstring) and the pose topics only start the episode clock.
    """

    rate_hz: float = 5.0
    robot: str = 'wx250s'
    action_space: str = 'bridge_orig'
    gripper_convention: int = 0
    image_topic: str = topics.CAMERA_IMAGE
    instruction_topic: str = topics.INSTRUCTION
    commanded_topic: str | None = None
    measured_topic: str = topics.JOINT_STATES
    action_source: str = 'commanded'
    instruction: str | None = None
    gripper_joint: str | None = None
    gripper_closed: float = 0.0
    gripper_open: float = 1.0
    drop_zero_actions: bool = True
    zero_tolerance: float = 1e-6
    use_header_stamps: bool = False
    image_size: int | None = None
    jpeg_quality: int = 95
    min_steps: int = 1
    label_topic: str | None = None

    def __post_init__(self) -> None:
        """Check values early and name the field."""
        if not self.rate_hz > 0:
            raise ValueError(f'rate_hz must be > 0, got {self.rate_hz}')
        if self.action_source not in ACTION_SOURCES:
            raise ValueError(
                f'action_source must be one of {ACTION_SOURCES}, got {self.action_source!r}'
            )
        if self.zero_tolerance < 0:
            raise ValueError(f'zero_tolerance must be >= 0, got {self.zero_tolerance}')
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f'jpeg_quality must be in [1, 100], got {self.jpeg_quality}')
        if self.image_size is not None and self.image_size < 8:
            raise ValueError(f'image_size must be >= 8, got {self.image_size}')
        if self.instruction is not None and not self.instruction.strip():
            raise ValueError('instruction is empty')
        if self.gripper_joint is not None and self.gripper_open == self.gripper_closed:
            raise ValueError('gripper_open and gripper_closed must differ')
        if self.min_steps < 1:
            raise ValueError(f'min_steps must be >= 1, got {self.min_steps}')

    @classmethod
    def from_profile(cls, profile: str, **overrides: Any) -> RecordConfig:
        """Rate, robot, action space and gripper convention from a robot profile.

        Args:
            profile: profile name (`widowx_bridge`) or YAML path.
            overrides: any other field.

        Raises:
            ProfileError: unknown profile.
        """
        from openvla_ros.bringup.profiles import load_profile

        loaded = load_profile(profile)
        policy = loaded.node_params('policy_node')
        values: dict[str, Any] = {
            'rate_hz': float(policy.get('policy_rate', 5.0)),
            'robot': str(loaded.get('robot', 'wx250s')),
            'action_space': str(policy.get('action_space', 'bridge_orig')),
            'gripper_convention': int(policy.get('gripper_convention', 0)),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class Streams:
    """The time series read from one bag (times in integer nanoseconds, sorted).

    Attributes:
        source: the bag path.
        image_times: (N,) int64.
        images: N (H, W, 3) uint8 RGB frames.
        instruction_times: (M,) int64.
        instructions: M strings.
        pose_times: (K,) int64.
        poses: (K, 4, 4) float64 end-effector poses.
        gripper_times: (G,) int64.
        grippers: (G,) normalized opening, 0 = closed, 1 = open.
        label_times: (L,) int64 times of the expert labels (empty without `label_topic`).
        labels: (L, 7) expert actions, the gripper as a normalized opening.
    """

    source: str
    image_times: np.ndarray
    images: list[np.ndarray]
    instruction_times: np.ndarray
    instructions: list[str]
    pose_times: np.ndarray
    poses: np.ndarray
    gripper_times: np.ndarray
    grippers: np.ndarray
    label_times: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))


@dataclass
class Episode:
    """One episode: steps at the recording rate with one instruction.

    Attributes:
        instruction: the task text.
        images: T (H, W, 3) uint8 RGB frames (the observation of each step).
        actions: (T, 7) float64 `[dx, dy, dz, droll, dpitch, dyaw, gripper]`.
        timestamps_ns: (T,) int64 sample times.
        source: the bag it came from.
        dropped_zero: steps dropped as all-zero actions.
    """

    instruction: str
    images: list[np.ndarray]
    actions: np.ndarray
    timestamps_ns: np.ndarray
    source: str = ''
    dropped_zero: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.actions.shape[0])


# --- reading ------------------------------------------------------------------------------------
def _resolve_commanded(config: RecordConfig, topics: dict[str, str]) -> str | None:
    if config.commanded_topic is not None:
        return config.commanded_topic if config.commanded_topic in topics else None
    for topic in DEFAULT_COMMANDED_TOPICS:
        if topic in topics:
            return topic
    return None


def _missing(bag: Path, what: str, topic: str, topics: dict[str, str]) -> MissingTopicError:
    listing = ', '.join(f'{t} ({m})' for t, m in sorted(topics.items())) or 'none'
    return MissingTopicError(f'{bag}: no {what} topic {topic!r}; the bag has: {listing}')


def read_bag(path: str | Path, config: RecordConfig, typestore: Any | None = None) -> Streams:
    """Read the streams a recording needs from one rosbag2 bag (MCAP or sqlite3).

    Args:
        path: bag directory (with metadata.yaml) or a single .mcap / .db3 file.
        config: topics, action source and timing.
        typestore: rosbags typestore with our messages (default: `make_typestore()`).

    Raises:
        BagReadError: the bag cannot be opened or a message cannot be decoded.
        MissingTopicError: the image, instruction or pose topic is absent.
        NoImagesError: the image topic holds no messages.
    """
    from rosbags.highlevel import AnyReader, AnyReaderError

    bag = Path(path)
    if not bag.exists():
        raise BagReadError(f'no bag at {bag}')
    typestore = typestore if typestore is not None else make_typestore()
    try:
        reader = AnyReader([bag], default_typestore=typestore)
        reader.open()
    except (AnyReaderError, OSError, Exception) as exc:  # noqa: BLE001 - storage plugins vary
        raise BagReadError(f'cannot open bag {bag}: {exc}') from None
    try:
        topics = {topic: info.msgtype or '' for topic, info in reader.topics.items()}
        return _read_streams(reader, bag, config, topics)
    finally:
        reader.close()


def _read_streams(reader: Any, bag: Path, config: RecordConfig, topics: dict[str, str]) -> Streams:
    if config.image_topic not in topics:
        raise _missing(bag, 'image', config.image_topic, topics)
    if config.instruction is None and config.instruction_topic not in topics:
        raise _missing(bag, 'instruction', config.instruction_topic, topics)
    commanded = _resolve_commanded(config, topics)
    if config.action_source == 'commanded' and commanded is None:
        wanted = config.commanded_topic or ' or '.join(DEFAULT_COMMANDED_TOPICS)
        raise _missing(bag, 'commanded end-effector target', wanted, topics)
    if config.action_source == 'measured' and config.measured_topic not in topics:
        raise _missing(bag, 'measured pose / joint state', config.measured_topic, topics)
    if config.action_source == 'measured' and commanded is None and config.gripper_joint is None:
        raise MissingTopicError(
            f'{bag}: measured poses need the gripper from a commanded EndEffectorTarget topic '
            'or a gripper joint (gripper_joint); neither is available'
        )
    if config.label_topic is not None and config.label_topic not in topics:
        raise _missing(bag, 'expert label', config.label_topic, topics)
    pose_topic = commanded if config.action_source == 'commanded' else config.measured_topic
    wanted_topics = {config.image_topic, pose_topic}
    if config.label_topic is not None:
        wanted_topics.add(config.label_topic)
    if config.instruction is None:
        wanted_topics.add(config.instruction_topic)
    if commanded is not None:
        wanted_topics.add(commanded)
    kinematics = None
    joint_index: list[int] | None = None

    images: list[tuple[int, np.ndarray]] = []
    texts: list[tuple[int, str]] = []
    poses: list[tuple[int, np.ndarray]] = []
    grippers: list[tuple[int, float]] = []
    labels: list[tuple[int, np.ndarray]] = []
    connections = [c for c in reader.connections if c.topic in wanted_topics]
    try:
        for connection, log_time, raw in reader.messages(connections=connections):
            msgtype = connection.msgtype
            msg = reader.deserialize(raw, msgtype)
            header = getattr(msg, 'header', None)
            time = log_time
            if config.use_header_stamps and header is not None and stamp_ns(header) > 0:
                time = stamp_ns(header)
            topic = connection.topic
            if topic == config.image_topic:
                images.append((time, _resize(decode_image(msg, msgtype), config.image_size)))
            elif topic == config.instruction_topic and config.instruction is None:
                texts.append((time, str(msg.data)))
            elif topic == config.label_topic:
                labels.append((time, _label_action(bag, msg)))
            if topic == commanded:
                grippers.append((time, float(np.clip(msg.gripper, 0.0, 1.0))))
                if config.action_source == 'commanded':
                    poses.append((time, pose_to_matrix(msg.pose)))
            elif topic == pose_topic:
                if msgtype.endswith('JointState'):
                    if kinematics is None:
                        from openvla_ros.control.kinematics import get_kinematics

                        kinematics = get_kinematics(config.robot)
                    if joint_index is None:
                        joint_index = _joint_index(bag, list(msg.name), kinematics.joint_names)
                    q = np.asarray(msg.position, dtype=float)[joint_index]
                    poses.append((time, kinematics.fk(q)))
                    if commanded is None and config.gripper_joint is not None:
                        grippers.append((time, _gripper_from_joint(bag, msg, config)))
                elif hasattr(msg, 'pose'):
                    pose = msg.pose.pose if hasattr(msg.pose, 'pose') else msg.pose
                    poses.append((time, pose_to_matrix(pose)))
                else:
                    raise BagReadError(
                        f'{bag}: {topic} has type {msgtype}; expected JointState or PoseStamped'
                    )
    except (BagReadError, MissingTopicError):
        raise
    except Exception as exc:  # noqa: BLE001 - rosbags raises many types for corrupt data
        raise BagReadError(f'cannot read {bag}: {type(exc).__name__}: {exc}') from None
    if not images:
        raise NoImagesError(f'{bag}: image topic {config.image_topic!r} has no messages')
    if not poses:
        raise EmptyDatasetError(f'{bag}: pose topic {pose_topic!r} has no messages')
    if config.instruction is None and not texts:
        raise EmptyDatasetError(
            f'{bag}: instruction topic {config.instruction_topic!r} has no messages '
            '(pass an instruction)'
        )
    images.sort(key=lambda item: item[0])
    texts.sort(key=lambda item: item[0])
    poses.sort(key=lambda item: item[0])
    grippers.sort(key=lambda item: item[0])
    return Streams(
        source=str(bag),
        image_times=np.array([t for t, _ in images], dtype=np.int64),
        images=[img for _, img in images],
        instruction_times=np.array([t for t, _ in texts], dtype=np.int64),
        instructions=[s for _, s in texts],
        pose_times=np.array([t for t, _ in poses], dtype=np.int64),
        poses=np.stack([p for _, p in poses]),
        gripper_times=np.array([t for t, _ in grippers], dtype=np.int64),
        grippers=np.array([g for _, g in grippers], dtype=np.float64),
        label_times=np.array([t for t, _ in sorted(labels, key=lambda x: x[0])], dtype=np.int64),
        labels=np.array(
            [a for _, a in sorted(labels, key=lambda x: x[0])], dtype=np.float64
        ).reshape(-1, 7),
    )


def _label_action(bag: Path, msg: Any) -> np.ndarray:
    """The first action of an expert's ActionChunk, its gripper as a normalized opening."""
    from openvla_ros.control.actions import gripper_to_opening

    dim = int(msg.action_dim)
    values = np.asarray(msg.actions, dtype=np.float64)
    if dim != 7 or values.size < 7:
        raise BagReadError(f'{bag}: expert label with action_dim {dim} ({values.size} values)')
    action = values[:7].copy()
    action[6] = gripper_to_opening(float(action[6]), int(msg.gripper_convention))
    return action


def _joint_index(bag: Path, names: list[str], joint_names: Sequence[str]) -> list[int]:
    if not names:
        return list(range(len(joint_names)))
    missing = [n for n in joint_names if n not in names]
    if missing:
        raise BagReadError(
            f'{bag}: joint states lack arm joint(s) {", ".join(missing)}; they have: '
            + ', '.join(names)
        )
    return [names.index(n) for n in joint_names]


def _gripper_from_joint(bag: Path, msg: Any, config: RecordConfig) -> float:
    names = list(msg.name)
    if config.gripper_joint not in names:
        raise BagReadError(f'{bag}: joint states lack the gripper joint {config.gripper_joint!r}')
    value = float(msg.position[names.index(config.gripper_joint)])
    opening = (value - config.gripper_closed) / (config.gripper_open - config.gripper_closed)
    return float(np.clip(opening, 0.0, 1.0))


def _resize(image: np.ndarray, size: int | None) -> np.ndarray:
    """Resize as OpenVLA's processor does (resize-naive: PIL bicubic, antialiased), so a frame
    stored at the model's input side reaches the model exactly as a live frame would (the
    processor's own resize of a frame of that side is then the identity)."""
    if size is None or image.shape[:2] == (size, size):
        return image
    from PIL import Image

    resized = Image.fromarray(np.ascontiguousarray(image)).resize((size, size), Image.BICUBIC)
    return np.asarray(resized)


# --- sampling -----------------------------------------------------------------------------------
def _latest(times: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Index of the latest entry at or before each time in `at` (-1 where there is none)."""
    return np.searchsorted(times, at, side='right') - 1


def build_episodes(streams: Streams, config: RecordConfig) -> list[Episode]:
    """Sample one bag's streams at the step rate and turn them into episodes.

    Args:
        streams: what `read_bag` returned.
        config: rate, action semantics and filters.

    Returns:
        Episodes (one per instruction segment); may be empty when nothing survives.

    Raises:
        ValueError: unknown action space or gripper convention.
    """
    from openvla_ros.control.actions import get_action_space, gripper_from_opening

    if config.label_topic is not None:
        return _label_episodes(streams, config)
    space = get_action_space(config.action_space)
    starts = [streams.image_times[0], streams.pose_times[0]]
    if config.instruction is None:
        starts.append(streams.instruction_times[0])
    if streams.gripper_times.size:
        starts.append(streams.gripper_times[0])
    start = int(max(starts))
    end = int(min(streams.image_times[-1], streams.pose_times[-1]))
    if end < start:
        return []
    period_ns = 1e9 / config.rate_hz
    count = int(np.floor((end - start) / period_ns + 1e-9)) + 1
    times = start + np.round(np.arange(count) * period_ns).astype(np.int64)  # (n,)
    if count < 2:
        return []
    image_idx = _latest(streams.image_times, times)
    pose_idx = _latest(streams.pose_times, times)
    gripper_idx = _latest(streams.gripper_times, times) if streams.gripper_times.size else None
    if config.instruction is None:
        text_idx = _latest(streams.instruction_times, times)
        texts = [streams.instructions[i] for i in text_idx]
    else:
        texts = [config.instruction] * count

    episodes: list[Episode] = []
    current: dict[str, Any] | None = None
    for k in range(count - 1):
        instruction = texts[k].strip()
        if not instruction:
            continue
        if current is None or instruction != current['instruction']:
            current = _next_episode(episodes, current, instruction, streams.source)
        if texts[k + 1].strip() != instruction:
            continue  # the next pose belongs to the next task
        delta = space.delta_between(streams.poses[pose_idx[k]], streams.poses[pose_idx[k + 1]])
        if config.drop_zero_actions and np.all(np.abs(delta) <= config.zero_tolerance):
            current['dropped'] += 1
            continue
        opening = 1.0 if gripper_idx is None else streams.grippers[gripper_idx[k + 1]]
        gripper = gripper_from_opening(opening, config.gripper_convention)
        current['images'].append(streams.images[image_idx[k]])
        current['actions'].append(np.concatenate([delta, [gripper]]))
        current['times'].append(times[k])
    if current is not None:
        episodes.append(_finish(current, streams.source))
    kept = [e for e in episodes if len(e) >= config.min_steps]
    for episode in episodes:
        if len(episode) < config.min_steps:
            logger.info(
                '%s: skipped an episode of %d step(s) (%r)',
                streams.source,
                len(episode),
                episode.instruction,
            )
    return kept


def _label_episodes(streams: Streams, config: RecordConfig) -> list[Episode]:
    """Steps at the expert's label times: (latest frame, label); see the module docstring.

    A label whose six deltas are zero is dropped (OpenVLA's filter) unless its gripper differs
    from the previous label's: the expert closes or opens the gripper while holding still, and
    those steps are what teaches the policy when to grasp.
    """
    from openvla_ros.control.actions import gripper_from_opening

    if streams.labels.size == 0:
        return []
    times = streams.label_times
    image_idx = _latest(streams.image_times, times)
    if config.instruction is None:
        text_idx = _latest(streams.instruction_times, times)
        texts = ['' if i < 0 else streams.instructions[i] for i in text_idx]
    else:
        texts = [config.instruction] * len(times)
    episodes: list[Episode] = []
    current: dict[str, Any] | None = None
    previous_gripper = None
    for j, label in enumerate(streams.labels):
        instruction = texts[j].strip()
        if not instruction or image_idx[j] < 0:
            continue
        if current is None or instruction != current['instruction']:
            current = _next_episode(episodes, current, instruction, streams.source)
            previous_gripper = None
        still = np.all(np.abs(label[:6]) <= config.zero_tolerance)
        if config.drop_zero_actions and still and label[6] == previous_gripper:
            current['dropped'] += 1
            continue
        previous_gripper = label[6]
        gripper = gripper_from_opening(label[6], config.gripper_convention)
        current['images'].append(streams.images[image_idx[j]])
        current['actions'].append(np.concatenate([label[:6], [gripper]]))
        current['times'].append(times[j])
    if current is not None:
        episodes.append(_finish(current, streams.source))
    return [e for e in episodes if len(e) >= config.min_steps]


def _next_episode(
    episodes: list[Episode], current: dict[str, Any] | None, instruction: str, source: str
) -> dict[str, Any]:
    """A new instruction starts a new episode: finishes the current one (if any) into episodes
    and returns an empty one for instruction."""
    if current is not None:
        episodes.append(_finish(current, source))
    return {'instruction': instruction, 'images': [], 'actions': [], 'times': [], 'dropped': 0}


def _finish(current: dict[str, Any], source: str) -> Episode:
    actions = np.array(current['actions'], dtype=np.float64).reshape(-1, 7)
    return Episode(
        instruction=current['instruction'],
        images=current['images'],
        actions=actions,
        timestamps_ns=np.array(current['times'], dtype=np.int64),
        source=source,
        dropped_zero=int(current['dropped']),
    )


def episodes_from_bags(
    paths: Sequence[str | Path], config: RecordConfig, *, progress: bool = False
) -> list[Episode]:
    """Read every bag and build its episodes.

    Args:
        paths: bag directories or files.
        config: how to record.
        progress: show a tqdm bar over the bags.

    Raises:
        BagReadError, MissingTopicError, NoImagesError: a bag is unusable (the first one fails
            the whole recording: a silently skipped bag is a silently smaller dataset).
        EmptyDatasetError: no bags, or no step survived in any bag.
    """
    from tqdm.auto import tqdm

    if not paths:
        raise EmptyDatasetError('no bags given')
    typestore = make_typestore()
    episodes: list[Episode] = []
    for path in tqdm(list(paths), desc='Reading bags', unit='bag', disable=not progress):
        streams = read_bag(path, config, typestore)
        episodes.extend(build_episodes(streams, config))
    if not episodes:
        raise EmptyDatasetError(
            'no steps survived: the streams do not overlap, or every action was all-zero'
        )
    return episodes
