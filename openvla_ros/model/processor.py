"""Image and prompt pre-processing, identical to the official `PrismaticProcessor` for OpenVLA.

Image: PIL RGB -> resize straight to 224x224 (torchvision functional resize on the PIL image,
    bicubic,
antialias) -> center-crop 224 (a no-op) -> to tensor in [0, 1] -> per-backbone normalize -> the
DINOv2 and SigLIP tensors stacked on channels, (6, 224, 224). The normalization constants come from
the checkpoint's `preprocessor_config.json` (`tvf_normalize_params`), as the official processor
does: the released `openvla-7b` stores bf16-rounded DINOv2 statistics there (e.g. mean 0.484375
rather than 0.485).

Prompt: `"In: What action should the robot take to {instruction.lower()}?\\nOut:"`, Llama-2
    tokenized with
BOS and without EOS, then 29871 appended when it is not the last id (as `predict_action` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image
import torch
import torchvision.transforms.functional as tvf

from openvla_ros.model import constants as const
from openvla_ros.model.errors import InvalidConfigError, InvalidInputError

ColorOrder = Literal['rgb', 'bgr']
#: torchvision/PIL code of bicubic interpolation, as stored in `tvf_resize_params`.
_PIL_BICUBIC = 3


@dataclass(frozen=True)
class ImageTransformConfig:
    """Per-backbone image transform parameters (two backbones for OpenVLA).

    Args:
        image_sizes: square output side per backbone.
        means: normalization mean per backbone (3 values each).
        stds: normalization std per backbone (3 values each).
    """

    image_sizes: tuple[int, ...] = const.IMAGE_SIZES
    means: tuple[tuple[float, float, float], ...] = const.CHECKPOINT_IMAGE_MEANS
    stds: tuple[tuple[float, float, float], ...] = const.CHECKPOINT_IMAGE_STDS

    def __post_init__(self) -> None:
        """Check one entry per backbone and positive stds."""
        if not (len(self.image_sizes) == len(self.means) == len(self.stds)):
            raise InvalidConfigError(
                f'image transform needs one size/mean/std per backbone: {self.image_sizes}, '
                f'{self.means}, {self.stds}'
            )
        for std in self.stds:
            if len(std) != 3 or min(std) <= 0:
                raise InvalidConfigError(f'normalization std must be 3 positive values, got {std}')

    @classmethod
    def from_preprocessor_config(cls, data: dict[str, Any]) -> ImageTransformConfig:
        """Read a `preprocessor_config.json` dict (the official `PrismaticImageProcessor` layout).

        Like the official processor (whose `ImageProcessingMixin.__init__` re-applies the saved
        `tvf_*` attributes), the saved `tvf_normalize_params` win over `means`/`stds`.

        Raises:
            InvalidConfigError: the strategy is not resize-naive, the interpolation is not bicubic,
                or the entries are inconsistent.
        """
        strategy = data.get('image_resize_strategy', const.IMAGE_RESIZE_STRATEGY)
        if strategy != const.IMAGE_RESIZE_STRATEGY or data.get('tvf_do_letterbox', False):
            raise InvalidConfigError(
                f'image_resize_strategy={strategy!r}: only '
                f'{const.IMAGE_RESIZE_STRATEGY!r} is supported'
            )
        if 'tvf_normalize_params' in data:
            params = data['tvf_normalize_params']
            means = tuple(tuple(float(v) for v in p['mean']) for p in params)
            stds = tuple(tuple(float(v) for v in p['std']) for p in params)
        else:
            means = tuple(
                tuple(float(v) for v in m) for m in data.get('means', const.CHECKPOINT_IMAGE_MEANS)
            )
            stds = tuple(
                tuple(float(v) for v in s) for s in data.get('stds', const.CHECKPOINT_IMAGE_STDS)
            )
        sizes: list[int] = []
        for index, size in enumerate(
            data.get('input_sizes', [[3, s, s] for s in const.IMAGE_SIZES])
        ):
            if len(size) != 3 or size[0] != 3 or size[1] != size[2]:
                raise InvalidConfigError(f'input_sizes[{index}]={size!r}: expected [3, S, S]')
            sizes.append(int(size[1]))
        for index, resize in enumerate(data.get('tvf_resize_params', [])):
            if resize.get('interpolation', _PIL_BICUBIC) != _PIL_BICUBIC:
                raise InvalidConfigError(
                    f'tvf_resize_params[{index}].interpolation={resize.get("interpolation")!r}: '
                    'only bicubic (3) is supported'
                )
        return cls(image_sizes=tuple(sizes), means=means, stds=stds)  # type: ignore[arg-type]

    @classmethod
    def from_checkpoint(cls, model_dir: str | Path) -> ImageTransformConfig:
        """Read a checkpoint's `preprocessor_config.json` (openvla-7b defaults without one)."""
        path = Path(model_dir) / const.PREPROCESSOR_CONFIG_NAME
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidConfigError(f'cannot read {path}: {exc}') from None
        return cls.from_preprocessor_config(data)

    def to_preprocessor_config(self) -> dict[str, Any]:
        """`preprocessor_config.json` content in the official `PrismaticImageProcessor` layout."""
        return {
            'image_processor_type': 'PrismaticImageProcessor',
            'processor_class': 'PrismaticProcessor',
            'image_resize_strategy': const.IMAGE_RESIZE_STRATEGY,
            'use_fused_vision_backbone': True,
            'input_sizes': [[3, s, s] for s in self.image_sizes],
            'interpolations': list(const.INTERPOLATIONS),
            'means': [list(m) for m in self.means],
            'stds': [list(s) for s in self.stds],
            'tvf_crop_params': [{'output_size': [s, s]} for s in self.image_sizes],
            'tvf_do_letterbox': False,
            'tvf_letterbox_fill': None,
            'tvf_normalize_params': [
                {'inplace': False, 'mean': list(m), 'std': list(s)}
                for m, s in zip(self.means, self.stds)
            ],
            'tvf_resize_params': [
                {
                    'antialias': True,
                    'interpolation': _PIL_BICUBIC,
                    'max_size': None,
                    'size': [s, s],
                }
                for s in self.image_sizes
            ],
        }


def to_pil_rgb(image: Any, color_order: ColorOrder = 'rgb') -> Image.Image:
    """Turn a PIL image or an HxWx3 uint8 numpy array into a PIL RGB image.

    Args:
        image: `PIL.Image.Image` (any mode; converted to RGB like the official processor) or a
            numpy
            array of shape (H, W, 3) and dtype uint8.
        color_order: channel order of a numpy array, 'rgb' or 'bgr' (OpenCV); ignored for PIL
            images.

    Raises:
        InvalidInputError: wrong type, dtype, shape, channel count, or color order.
    """
    if color_order not in ('rgb', 'bgr'):
        raise InvalidInputError(f"color_order must be 'rgb' or 'bgr', got {color_order!r}")
    if isinstance(image, Image.Image):
        if image.width < 1 or image.height < 1:
            raise InvalidInputError(f'empty image of size {image.size}')
        return image.convert('RGB')
    check_array_image(image)
    if color_order == 'bgr':
        image = image[:, :, ::-1]
    return Image.fromarray(np.ascontiguousarray(image), mode='RGB')


def check_array_image(image: Any) -> None:
    """Raise `InvalidInputError` unless `image` is a non-empty (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(
            f'image must be a PIL image or a numpy uint8 array, got {type(image).__name__}'
        )
    if image.dtype != np.uint8:
        raise InvalidInputError(f'image dtype must be uint8, got {image.dtype}')
    if image.ndim != 3:
        raise InvalidInputError(f'image must have shape (H, W, 3), got {image.shape}')
    if image.shape[2] != 3:
        raise InvalidInputError(f'image must have 3 channels, got shape {image.shape}')
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InvalidInputError(f'empty image of shape {image.shape}')


def center_crop_resize(
    image: Image.Image, crop_scale: float = const.CENTER_CROP_SCALE, size: int = const.IMAGE_SIZE
) -> Image.Image:
    """Center-crop `crop_scale` of the area and resize back to `size` x `size`.

    A torch port of `experiments/robot`'s `crop_and_resize`, which runs `tf.image.crop_and_resize`
    (bilinear, box `[(1 - s) / 2, (1 - s) / 2, (1 + s) / 2, (1 + s) / 2]` with side `s =
    sqrt(crop_scale)`) on the image converted to float32 in [0, 1] (`x * (1 / 255)`), then converts
    back to uint8 with `tf.image.convert_image_dtype(saturate=True)` (`trunc(clip(x, 0, 1) *
    255.5)`). Everything is computed in float32 in the order of TF's CPU kernel
    (`crop_and_resize_op.cc`).

    Raises:
        InvalidInputError: `crop_scale` is not in (0, 1].
    """
    if not 0.0 < crop_scale <= 1.0:
        raise InvalidInputError(f'crop_scale must be in (0, 1], got {crop_scale}')
    f32 = torch.float32
    pixels = torch.from_numpy(np.asarray(image.convert('RGB'), dtype=np.uint8).copy())  # (H, W, 3)
    height, width = pixels.shape[:2]
    pixels = pixels.to(f32) * torch.tensor(1.0 / 255.0, dtype=f32)
    # correctly rounded float32 sqrt, like tf.sqrt (torch's CPU sqrt can differ by one ulp here)
    side = torch.tensor(np.sqrt(np.float32(crop_scale)), dtype=f32).clamp(0, 1)
    offset = (1 - side) / 2
    y1, x1 = offset, offset
    y2, x2 = offset + side, offset + side
    steps = torch.arange(size, dtype=f32)  # (S,)
    if size > 1:
        height_scale = (y2 - y1) * (height - 1) / (size - 1)
        width_scale = (x2 - x1) * (width - 1) / (size - 1)
        in_y = y1 * (height - 1) + steps * height_scale  # (S,)
        in_x = x1 * (width - 1) + steps * width_scale  # (S,)
    else:
        in_y = (0.5 * (y1 + y2) * (height - 1)).expand(1)
        in_x = (0.5 * (x1 + x2) * (width - 1)).expand(1)
    top = torch.floor(in_y).long().clamp(0, height - 1)
    bottom = torch.ceil(in_y).long().clamp(0, height - 1)
    y_lerp = (in_y - torch.floor(in_y))[:, None, None]  # (S, 1, 1)
    left = torch.floor(in_x).long().clamp(0, width - 1)
    right = torch.ceil(in_x).long().clamp(0, width - 1)
    x_lerp = (in_x - torch.floor(in_x))[None, :, None]  # (1, S, 1)
    top_left = pixels[top][:, left]  # (S, S, 3)
    top_right = pixels[top][:, right]
    bottom_left = pixels[bottom][:, left]
    bottom_right = pixels[bottom][:, right]
    top_row = top_left + (top_right - top_left) * x_lerp
    bottom_row = bottom_left + (bottom_right - bottom_left) * x_lerp
    out = top_row + (bottom_row - top_row) * y_lerp  # (S, S, 3) float32
    out = (out.clamp(0, 1) * torch.tensor(255.5, dtype=f32)).clamp(0, 255).to(torch.uint8)
    return Image.fromarray(out.numpy(), mode='RGB')


def _frame_side(image: Any) -> int:
    """Shorter side of a PIL image or (H, W, ...) array (0 for anything else: host path)."""
    if isinstance(image, Image.Image):
        return min(image.size)
    if isinstance(image, np.ndarray) and image.ndim >= 2:
        return int(min(image.shape[:2]))
    return 0


class OpenVLAProcessor:
    """Turns (image, instruction) into the model's `pixel_values` and prompt token ids.

    Args:
        tokenizer: the checkpoint's Llama-2 tokenizer (a transformers tokenizer).
        image_config: normalization and sizes, usually from `preprocessor_config.json`.
        center_crop: crop 90 % of the area and resize back first (models fine-tuned with random
            crops).
    """

    def __init__(
        self,
        tokenizer: Any,
        image_config: ImageTransformConfig | None = None,
        *,
        center_crop: bool = False,
    ) -> None:
        self.tokenizer = tokenizer
        self.image_config = image_config or ImageTransformConfig()
        self.center_crop = center_crop

    # --- images -----------------------------------------------------------------------------
    def preprocess_image(self, image: Any, color_order: ColorOrder = 'rgb') -> torch.Tensor:
        """One image -> `pixel_values` of shape (2 * 3, 224, 224), float32.

        Raises:
            InvalidInputError: the image is not a PIL image or an (H, W, 3) uint8 array.
        """
        pil = to_pil_rgb(image, color_order)
        if self.center_crop:
            pil = center_crop_resize(
                pil, const.CENTER_CROP_SCALE, self.image_config.image_sizes[0]
            )
        tensors = []
        for size, mean, std in zip(
            self.image_config.image_sizes, self.image_config.means, self.image_config.stds
        ):
            resized = tvf.resize(
                pil, [size, size], interpolation=tvf.InterpolationMode.BICUBIC, antialias=True
            )
            resized = tvf.center_crop(resized, [size, size])  # no-op after resize-naive
            tensor = tvf.to_tensor(resized)  # (3, S, S) in [0, 1]
            tensors.append(tvf.normalize(tensor, list(mean), list(std)))
        return torch.cat(tensors, dim=0)  # (6, S, S)

    def preprocess_images(
        self, images: Sequence[Any], color_order: ColorOrder = 'rgb'
    ) -> torch.Tensor:
        """Several images -> (B, 6, 224, 224)."""
        return torch.stack([self.preprocess_image(img, color_order) for img in images])

    def preprocess_images_on(
        self, images: Sequence[Any], device: str | torch.device, color_order: ColorOrder = 'rgb'
    ) -> torch.Tensor:
        """`preprocess_images` computed on `device` (a GPU): (B, 6, 224, 224) float32 there.

        The uint8 frames travel as they are (one copy per frame) and are resized there with
        torchvision's tensor resize (bicubic, antialias, rounded back to uint8 like the PIL path),
        then scaled and normalized. Against the PIL path a pixel differs by at most a few uint8
        levels where the two bicubic implementations round differently (tested). Frames smaller
        than the model input (upscaling, where PIL clips between its two passes and the results
        differ more) and the center crop (a TF-exact port) take the host path.

        Raises:
            InvalidInputError: as `preprocess_image`.
        """
        smallest = min(self.image_config.image_sizes)
        if self.center_crop or any(_frame_side(image) < smallest for image in images):
            return self.preprocess_images(images, color_order).to(device)
        frames = []
        for image in images:
            if isinstance(image, np.ndarray):
                if color_order not in ('rgb', 'bgr'):
                    raise InvalidInputError(
                        f"color_order must be 'rgb' or 'bgr', got {color_order!r}"
                    )
                check_array_image(image)
                array = image[:, :, ::-1] if color_order == 'bgr' else image
            else:
                array = np.asarray(to_pil_rgb(image, color_order))
            frame = torch.from_numpy(np.ascontiguousarray(array))  # (H, W, 3) uint8
            frames.append(frame.to(device, non_blocking=True).permute(2, 0, 1))  # (3, H, W)
        tensors = []
        for size, mean, std in zip(
            self.image_config.image_sizes, self.image_config.means, self.image_config.stds
        ):
            def resize(x: torch.Tensor, size: int = size) -> torch.Tensor:
                return tvf.resize(x, [size, size], interpolation=tvf.InterpolationMode.BICUBIC,
                                  antialias=True)

            if len({f.shape for f in frames}) == 1:  # one camera: one batched resize
                resized = resize(torch.stack(frames))
            else:
                resized = torch.stack([resize(f) for f in frames])
            batch = resized.float().div_(255.0)  # (B, 3, S, S)
            mean_t = torch.tensor(mean, device=batch.device).view(1, 3, 1, 1)
            std_t = torch.tensor(std, device=batch.device).view(1, 3, 1, 1)
            tensors.append((batch - mean_t) / std_t)
        return torch.cat(tensors, dim=1)  # (B, 6, S, S)

    # --- prompts ----------------------------------------------------------------------------
    @staticmethod
    def build_prompt(instruction: str) -> str:
        """The OpenVLA prompt for `instruction` (lower-cased as the official callers do).

        Raises:
            InvalidInputError: the instruction is not a string or is empty / whitespace only.
        """
        if not isinstance(instruction, str):
            raise InvalidInputError(
                f'instruction must be a string, got {type(instruction).__name__}'
            )
        if not instruction.strip():
            raise InvalidInputError(f'instruction is empty: {instruction!r}')
        return const.PROMPT_TEMPLATE.format(instruction=instruction.lower())

    def prompt_ids(self, instruction: str) -> list[int]:
        """Token ids of the prompt: BOS first, no EOS, 29871 last.

        Raises:
            InvalidInputError: the instruction is empty or not a string.
        """
        ids = list(
            self.tokenizer(self.build_prompt(instruction), add_special_tokens=True)['input_ids']
        )
        if not ids or ids[0] != const.BOS_TOKEN_ID:
            ids = [const.BOS_TOKEN_ID, *ids]
        if ids[-1] != const.EMPTY_TOKEN_ID:
            ids.append(const.EMPTY_TOKEN_ID)
        return ids
