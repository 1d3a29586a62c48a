"""The on-disk dataset: a directory of per-episode `.npz` files and a `dataset.json` summary.

Layout (format `openvla_ros.dataset`, version 1)::

    DIR/
      dataset.json            summary: settings, counts, instructions, one entry per episode
      statistics.json         action statistics of all steps (OpenVLA `norm_stats` entry shape)
      episodes/
        episode_000000.npz    one episode (numpy .npz, no pickled objects)

Each episode file holds:
    instruction   0-d unicode array: the task text (as recorded; lower-cased only in prompts)
    actions       (T, 7) float64: [dx, dy, dz, droll, dpitch, dyaw, gripper] in the profile's
                  action space and gripper convention
    timestamps_ns (T,) int64: sample time of each step
    jpeg          (N,) uint8: the T frames as concatenated JPEG files (RGB content)
    jpeg_offsets  (T + 1,) int64: frame t is jpeg[jpeg_offsets[t]:jpeg_offsets[t + 1]]

JPEG keeps the dataset small and matches what OpenVLA trained on (JPEG-compressed RLDS frames).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict
import json
from pathlib import Path
from typing import Any

import numpy as np

from openvla_ros.data.bag_episodes import Episode, RecordConfig
from openvla_ros.data.errors import DatasetFormatError, EmptyDatasetError
from openvla_ros.data.statistics import compute_action_statistics

__all__ = [
    'DATASET_FORMAT',
    'DATASET_VERSION',
    'Dataset',
    'decode_jpeg',
    'encode_jpeg',
    'write_dataset',
]

DATASET_FORMAT = 'openvla_ros.dataset'
DATASET_VERSION = 1
SUMMARY_NAME = 'dataset.json'
STATISTICS_NAME = 'statistics.json'
EPISODES_DIR = 'episodes'


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes."""
    import cv2

    ok, buffer = cv2.imencode(
        '.jpg', np.ascontiguousarray(image[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise ValueError(f'cannot JPEG-encode an image of shape {image.shape}')
    return buffer.tobytes()


def decode_jpeg(data: bytes | np.ndarray) -> np.ndarray:
    """JPEG bytes -> (H, W, 3) uint8 RGB.

    Raises:
        DatasetFormatError: the bytes are not a decodable image.
    """
    import cv2

    buffer = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetFormatError('cannot decode a stored JPEG frame')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_dataset(
    out_dir: str | Path,
    episodes: Sequence[Episode],
    config: RecordConfig,
    *,
    profile: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write episodes, the summary and the statistics.

    Args:
        out_dir: the dataset directory (created).
        episodes: what `episodes_from_bags` returned.
        config: the recording settings (stored in the summary).
        profile: the robot profile name, for the summary.
        overwrite: replace an existing dataset in `out_dir`.

    Raises:
        EmptyDatasetError: no episode or no step.
        DatasetFormatError: `out_dir` already holds a dataset and `overwrite` is False.
    """
    out = Path(out_dir)
    if not episodes or sum(len(e) for e in episodes) == 0:
        raise EmptyDatasetError('no episodes with steps to write')
    if (out / SUMMARY_NAME).exists() and not overwrite:
        raise DatasetFormatError(f'{out} already holds a dataset (pass overwrite to replace it)')
    episodes_dir = out / EPISODES_DIR
    episodes_dir.mkdir(parents=True, exist_ok=True)
    for stale in episodes_dir.glob('episode_*.npz'):
        stale.unlink()
    entries = []
    shapes: set[tuple[int, ...]] = set()
    for index, episode in enumerate(episodes):
        frames = [encode_jpeg(img, config.jpeg_quality) for img in episode.images]
        shapes.update(tuple(img.shape) for img in episode.images)
        offsets = np.cumsum([0] + [len(f) for f in frames]).astype(np.int64)
        name = f'episode_{index:06d}.npz'
        np.savez(
            episodes_dir / name,
            instruction=np.array(episode.instruction),
            actions=np.asarray(episode.actions, dtype=np.float64),
            timestamps_ns=np.asarray(episode.timestamps_ns, dtype=np.int64),
            jpeg=np.frombuffer(b''.join(frames), dtype=np.uint8),
            jpeg_offsets=offsets,
        )
        entries.append(
            {
                'file': f'{EPISODES_DIR}/{name}',
                'instruction': episode.instruction,
                'num_steps': len(episode),
                'dropped_zero_actions': episode.dropped_zero,
                'source': episode.source,
            }
        )
    actions = np.concatenate([e.actions for e in episodes if len(e)], axis=0)
    statistics = compute_action_statistics(actions, num_trajectories=len(episodes))
    (out / STATISTICS_NAME).write_text(json.dumps(statistics, indent=2) + '\n')
    instructions = Counter()
    for episode in episodes:
        instructions[episode.instruction] += len(episode)
    summary = {
        'format': DATASET_FORMAT,
        'version': DATASET_VERSION,
        'profile': profile,
        'action_space': config.action_space,
        'gripper_convention': config.gripper_convention,
        'rate_hz': config.rate_hz,
        'action_source': config.action_source,
        'num_episodes': len(episodes),
        'num_steps': int(actions.shape[0]),
        'num_dropped_zero_actions': int(sum(e.dropped_zero for e in episodes)),
        'instructions': dict(sorted(instructions.items())),
        'image_shapes': sorted(list(s) for s in shapes),
        'record_config': asdict(config),
        'episodes': entries,
    }
    (out / SUMMARY_NAME).write_text(json.dumps(summary, indent=2) + '\n')
    return out


class Dataset:
    """A dataset directory opened for reading (episodes are loaded lazily, frames on demand).

    Args:
        root: the directory `write_dataset` wrote.

    Raises:
        DatasetFormatError: no or unreadable `dataset.json`, wrong format or version, a missing
            episode file.
        EmptyDatasetError: the dataset has no steps.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        path = self.root / SUMMARY_NAME
        if not self.root.is_dir():
            raise DatasetFormatError(f'no dataset directory {self.root}')
        if not path.is_file():
            raise DatasetFormatError(f'{self.root} is not a dataset: no {SUMMARY_NAME}')
        try:
            self.summary: dict[str, Any] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetFormatError(f'cannot read {path}: {exc}') from None
        if self.summary.get('format') != DATASET_FORMAT:
            raise DatasetFormatError(f'{path}: format is {self.summary.get("format")!r}')
        if self.summary.get('version') != DATASET_VERSION:
            raise DatasetFormatError(
                f'{path}: version {self.summary.get("version")!r}, this code reads '
                f'{DATASET_VERSION}'
            )
        self.entries: list[dict[str, Any]] = list(self.summary.get('episodes', []))
        for entry in self.entries:
            if not (self.root / entry['file']).is_file():
                raise DatasetFormatError(f'{self.root}: missing episode file {entry["file"]}')
        if sum(int(e['num_steps']) for e in self.entries) == 0:
            raise EmptyDatasetError(f'{self.root}: the dataset has no steps')
        self._cache: dict[int, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        """Number of episodes."""
        return len(self.entries)

    @property
    def num_steps(self) -> int:
        """Number of steps over all episodes."""
        return int(sum(int(e['num_steps']) for e in self.entries))

    def episode_arrays(self, index: int) -> dict[str, np.ndarray]:
        """The raw arrays of one episode file (cached; frames stay JPEG)."""
        if index not in self._cache:
            path = self.root / self.entries[index]['file']
            try:
                with np.load(path, allow_pickle=False) as data:
                    self._cache[index] = {key: data[key] for key in data.files}
            except (OSError, ValueError, KeyError) as exc:
                raise DatasetFormatError(f'cannot read {path}: {exc}') from None
        return self._cache[index]

    def actions(self, index: int) -> np.ndarray:
        """(T, 7) actions of episode `index`."""
        return self.episode_arrays(index)['actions']

    def instruction(self, index: int) -> str:
        """The instruction of episode `index`."""
        return str(self.episode_arrays(index)['instruction'])

    def frame(self, index: int, step: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB frame of one step."""
        arrays = self.episode_arrays(index)
        offsets = arrays['jpeg_offsets']
        return decode_jpeg(arrays['jpeg'][offsets[step] : offsets[step + 1]])

    def all_actions(self) -> np.ndarray:
        """(N, 7) actions of every step, episode by episode."""
        return np.concatenate([self.actions(i) for i in range(len(self))], axis=0)

    def steps(self) -> Iterator[tuple[int, int]]:
        """(episode, step) of every step, in order."""
        for index, entry in enumerate(self.entries):
            for step in range(int(entry['num_steps'])):
                yield index, step

    def statistics(self) -> dict[str, Any]:
        """The action statistics of every step (recomputed from the episode files)."""
        return compute_action_statistics(self.all_actions(), num_trajectories=len(self))
