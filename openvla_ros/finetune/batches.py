"""Dataset steps -> training samples with OpenVLA's training-side tokenization, and batches.

A sample is built as `RLDSBatchTransform` does: the prompt `In: What action should the robot take
to {instruction}?\\nOut:` (BOS first, the bare "▁" token 29871 last, exactly the ids inference
uses), then the 7 action tokens, then EOS. Actions are normalized with the dataset's q01/q99 and
mask (the gripper is not normalized), clipped to [-1, 1], digitized on 256 bins and mapped to
`vocab - bin`. Labels are IGNORE_INDEX everywhere but the action tokens and EOS, so the loss covers
only what the policy must predict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import math
from typing import Any

import numpy as np
import torch

from openvla_ros.data.dataset import Dataset
from openvla_ros.model import constants as const
from openvla_ros.model.action_tokenizer import ActionStats, ActionTokenizer, normalize

__all__ = [
    'IGNORE_INDEX',
    'Batch',
    'SampleBuilder',
    'augment_camera',
    'augment_image',
    'collate',
    'sample_seed',
    'split_steps',
]

#: HF / Llama-2 label value that the loss skips.
IGNORE_INDEX = -100
#: dlimp's augmentations in OpenVLA's RLDSDataset (image_aug=True).
CROP_AREA = 0.9
BRIGHTNESS_DELTA = 0.2
CONTRAST_RANGE = (0.8, 1.2)
SATURATION_RANGE = (0.8, 1.2)
HUE_DELTA = 0.05
#: 'camera' augmentation: largest shift as a share of the side, and milder colour jitter.
CAMERA_SHIFT = 0.04
CAMERA_BRIGHTNESS = 0.1
CAMERA_CONTRAST = (0.9, 1.1)
CAMERA_SATURATION = (0.9, 1.1)


def split_steps(
    dataset: Dataset, val_fraction: float, seed: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(episode, step) lists for training and held-out evaluation.

    Whole episodes are held out (steps of one episode are near-duplicates, so a step split would
    overstate held-out accuracy); with a single episode, its steps are split instead.

    Args:
        dataset: the opened dataset.
        val_fraction: share held out; 0 gives an empty held-out list.
        seed: seed of the choice.
    """
    steps = list(dataset.steps())
    if val_fraction <= 0:
        return steps, []
    rng = np.random.default_rng(seed)
    if len(dataset) >= 2:
        count = min(len(dataset) - 1, max(1, round(val_fraction * len(dataset))))
        held = set(rng.permutation(len(dataset))[:count].tolist())
        return [s for s in steps if s[0] not in held], [s for s in steps if s[0] in held]
    if len(steps) < 2:
        return steps, []
    count = min(len(steps) - 1, max(1, round(val_fraction * len(steps))))
    held_steps = set(rng.permutation(len(steps))[:count].tolist())
    train = [s for i, s in enumerate(steps) if i not in held_steps]
    return train, [s for i, s in enumerate(steps) if i in held_steps]


def sample_seed(seed: int, index: int) -> int:
    """A per-sample seed, so augmentation is the same after a resume."""
    return (seed * 1_000_003 + index * 7919 + 17) % (2**63 - 1)


def augment_image(image: Any, generator: torch.Generator, size: int = 224) -> Any:
    """OpenVLA's training augmentation on a PIL image; returns a PIL image of `size` x `size`.

    As dlimp's `augment_image` in the order OpenVLA lists: resize to `size` (the RLDS frames are
    224 px), random crop of 90 % area with aspect 1 resized back, brightness +-0.2 (additive),
    contrast x[0.8, 1.2], saturation x[0.8, 1.2], hue +-0.05, each clipped to [0, 1].
    """
    from PIL import Image
    import torchvision.transforms.functional as tvf

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    resized = tvf.resize(
        image, [size, size], interpolation=tvf.InterpolationMode.BICUBIC, antialias=True
    )
    x = tvf.to_tensor(resized)  # (3, S, S) in [0, 1]
    side = max(1, round(size * math.sqrt(CROP_AREA)))
    top = int(torch.randint(0, size - side + 1, (), generator=generator))
    left = int(torch.randint(0, size - side + 1, (), generator=generator))
    x = x[:, top : top + side, left : left + side]
    x = tvf.resize(x, [size, size], interpolation=tvf.InterpolationMode.BILINEAR, antialias=False)
    x = (x + uniform(-BRIGHTNESS_DELTA, BRIGHTNESS_DELTA)).clamp(0, 1)
    mean = x.mean(dim=(1, 2), keepdim=True)  # per channel, as tf.image.adjust_contrast
    x = ((x - mean) * uniform(*CONTRAST_RANGE) + mean).clamp(0, 1)
    x = tvf.adjust_saturation(x, uniform(*SATURATION_RANGE)).clamp(0, 1)
    x = tvf.adjust_hue(x, uniform(-HUE_DELTA, HUE_DELTA)).clamp(0, 1)
    pixels = (x.permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    return Image.fromarray(pixels, mode='RGB')


def augment_camera(image: Any, generator: torch.Generator, size: int = 224) -> Any:
    """Augmentation for a fixed third-person camera; returns a PIL image of `size` x `size`.

    A fixed camera sees the scene at one scale, so a 90 % crop (which deployment must undo with
    a center crop) teaches nothing it will meet; small shifts (up to 4 % of the side, edges
    replicated, as a slightly bumped camera) and mild colour jitter keep the scale of inference,
    so the policy runs on the plain resized frame.
    """
    from PIL import Image
    import torchvision.transforms.functional as tvf

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    resized = tvf.resize(
        image, [size, size], interpolation=tvf.InterpolationMode.BICUBIC, antialias=True
    )
    x = tvf.to_tensor(resized)  # (3, S, S) in [0, 1]
    pad = max(1, round(size * CAMERA_SHIFT))
    padded = torch.nn.functional.pad(x[None], (pad, pad, pad, pad), mode='replicate')[0]
    top = int(torch.randint(0, 2 * pad + 1, (), generator=generator))
    left = int(torch.randint(0, 2 * pad + 1, (), generator=generator))
    x = padded[:, top : top + size, left : left + size]
    x = (x + uniform(-CAMERA_BRIGHTNESS, CAMERA_BRIGHTNESS)).clamp(0, 1)
    mean = x.mean(dim=(1, 2), keepdim=True)
    x = ((x - mean) * uniform(*CAMERA_CONTRAST) + mean).clamp(0, 1)
    x = tvf.adjust_saturation(x, uniform(*CAMERA_SATURATION)).clamp(0, 1)
    pixels = (x.permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    return Image.fromarray(pixels, mode='RGB')


@dataclass
class Batch:
    """A right-padded batch (as OpenVLA's PaddedCollatorForActionPrediction).

    Attributes:
        input_ids: (B, L) long, padded with the pad id.
        attention_mask: (B, L) long, 0 on padding.
        labels: (B, L) long, IGNORE_INDEX except the action tokens and EOS.
        pixel_values: (B, 6, 224, 224) float32.
        actions: (B, 7) float64 normalized target actions (for the L1 metric).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    pixel_values: torch.Tensor
    actions: torch.Tensor


class SampleBuilder:
    """Builds training samples from dataset steps.

    Args:
        dataset: the opened dataset.
        processor: an `OpenVLAProcessor` (prompt ids and image pre-processing of inference).
        stats: the dataset's action statistics (q01, q99, mask).
        tokenizer: the action tokenizer of the model.
        augment: 'none', 'openvla' (`augment_image`) or 'camera' (`augment_camera`); a bool
            means 'openvla' / 'none'.
        seed: base seed of the augmentation.
    """

    def __init__(
        self,
        dataset: Dataset,
        processor: Any,
        stats: ActionStats,
        tokenizer: ActionTokenizer,
        *,
        augment: str | bool = 'none',
        seed: int = 0,
    ) -> None:
        self.dataset = dataset
        self.processor = processor
        self.stats = stats
        self.tokenizer = tokenizer
        if isinstance(augment, bool):
            augment = 'openvla' if augment else 'none'
        self.augment = augment
        self.seed = seed
        self._prompts: dict[str, list[int]] = {}

    def token_ids(self, instruction: str, action: np.ndarray) -> tuple[list[int], list[int]]:
        """(input_ids, labels) of one sample."""
        if instruction not in self._prompts:
            self._prompts[instruction] = self.processor.prompt_ids(instruction)
        prompt = self._prompts[instruction]
        action_ids = self.tokenizer.encode(normalize(action, self.stats)).tolist()
        input_ids = [*prompt, *action_ids, const.EOS_TOKEN_ID]
        labels = [IGNORE_INDEX] * len(prompt) + [*action_ids, const.EOS_TOKEN_ID]
        return input_ids, labels

    def build(self, episode: int, step: int, sample_index: int = 0) -> dict[str, Any]:
        """One sample: input_ids, labels, pixel_values (6, 224, 224), normalized action."""
        from PIL import Image

        action = self.dataset.actions(episode)[step]
        instruction = self.dataset.instruction(episode)
        input_ids, labels = self.token_ids(instruction, action)
        image = Image.fromarray(self.dataset.frame(episode, step), mode='RGB')
        if self.augment != 'none':
            generator = torch.Generator().manual_seed(sample_seed(self.seed, sample_index))
            function = augment_camera if self.augment == 'camera' else augment_image
            image = function(image, generator, self.processor.image_config.image_sizes[0])
        return {
            'input_ids': input_ids,
            'labels': labels,
            'pixel_values': self.processor.preprocess_image(image),
            'action': normalize(action, self.stats),
        }


def collate(samples: Sequence[dict[str, Any]], pad_token_id: int = const.PAD_TOKEN_ID) -> Batch:
    """Right-pad samples into a `Batch`."""
    length = max(len(s['input_ids']) for s in samples)
    batch = len(samples)
    input_ids = torch.full((batch, length), pad_token_id, dtype=torch.long)
    labels = torch.full((batch, length), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((batch, length), dtype=torch.long)
    for row, sample in enumerate(samples):
        n = len(sample['input_ids'])
        input_ids[row, :n] = torch.as_tensor(sample['input_ids'])
        labels[row, :n] = torch.as_tensor(sample['labels'])
        mask[row, :n] = 1
    return Batch(
        input_ids=input_ids,
        attention_mask=mask,
        labels=labels,
        pixel_values=torch.stack([s['pixel_values'] for s in samples]),
        actions=torch.as_tensor(np.stack([s['action'] for s in samples])),
    )
