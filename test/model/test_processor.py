"""Image pre-processing and prompts vs independent computations and the real tokenizer."""

from __future__ import annotations

import numpy as np
from PIL import Image
import pytest
import torch

from openvla_ros.model import constants as const
from openvla_ros.model.errors import InvalidConfigError, InvalidInputError
from openvla_ros.model.processor import (
    center_crop_resize,
    ImageTransformConfig,
    OpenVLAProcessor,
    to_pil_rgb,
)

SPOON_IDS = [1, 512, 29901, 1724, 3158, 881, 278, 19964, 2125, 304, 1925, 278, 805, 6150, 373, 278,
             304, 20466, 29973, 13, 3744, 29901]  # fmt: skip


def _image(height: int = 60, width: int = 80, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_prompt_ids_match_the_official_tokens(tokenizer) -> None:
    processor = OpenVLAProcessor(tokenizer)
    assert processor.prompt_ids('put the spoon on the towel') == [*SPOON_IDS, 29871]


def test_prompt_lower_cases_the_instruction() -> None:
    prompt = OpenVLAProcessor.build_prompt('Put The Spoon')
    assert prompt == 'In: What action should the robot take to put the spoon?\nOut:'


def test_pixel_values_match_an_independent_pil_numpy_computation() -> None:
    image = _image()
    processor = OpenVLAProcessor(None)
    pixels = processor.preprocess_image(image)
    resized = np.asarray(
        Image.fromarray(image).resize((224, 224), Image.Resampling.BICUBIC), dtype=np.float32
    )
    expected = []
    for mean, std in zip(const.CHECKPOINT_IMAGE_MEANS, const.CHECKPOINT_IMAGE_STDS):
        scaled = resized / np.float32(255.0)
        expected.append((scaled - np.float32(mean)) / np.float32(std))
    expected_t = torch.from_numpy(np.concatenate(expected, axis=-1).transpose(2, 0, 1).copy())
    assert pixels.shape == (6, 224, 224)
    assert pixels.dtype == torch.float32
    torch.testing.assert_close(pixels, expected_t, atol=1e-5, rtol=0)


def test_bgr_arrays_are_flipped_to_rgb() -> None:
    image = _image()
    processor = OpenVLAProcessor(None)
    rgb = processor.preprocess_image(image, 'rgb')
    bgr = processor.preprocess_image(np.ascontiguousarray(image[:, :, ::-1]), 'bgr')
    torch.testing.assert_close(rgb, bgr, atol=0, rtol=0)


def test_pil_images_of_any_mode_are_converted_to_rgb() -> None:
    gray = Image.fromarray(_image()[:, :, 0], mode='L')
    assert to_pil_rgb(gray).mode == 'RGB'


def test_center_crop_takes_the_middle_and_keeps_the_size() -> None:
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    image[:2] = 255  # a border stripe that a 90 %-area crop removes
    cropped = np.asarray(center_crop_resize(Image.fromarray(image)))
    assert cropped.shape == (224, 224, 3)
    assert cropped.max() == 0


def test_center_crop_changes_pixel_values_only_when_enabled() -> None:
    image = _image(seed=3)
    plain = OpenVLAProcessor(None).preprocess_image(image)
    cropped = OpenVLAProcessor(None, center_crop=True).preprocess_image(image)
    assert not torch.equal(plain, cropped)


@pytest.mark.parametrize(
    ('bad', 'match'),
    [
        (np.zeros((8, 8, 3), dtype=np.float32), 'dtype must be uint8, got float32'),
        (np.zeros((8, 8), dtype=np.uint8), r'shape \(H, W, 3\), got \(8, 8\)'),
        (np.zeros((8, 8, 4), dtype=np.uint8), r'3 channels, got shape \(8, 8, 4\)'),
        (np.zeros((0, 8, 3), dtype=np.uint8), r'empty image of shape \(0, 8, 3\)'),
        ('frame.png', 'PIL image or a numpy uint8 array, got str'),
    ],
)
def test_preprocess_raises_for_bad_images(bad, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        OpenVLAProcessor(None).preprocess_image(bad)


def test_preprocess_raises_for_unknown_color_order() -> None:
    with pytest.raises(InvalidInputError, match="'rgb' or 'bgr', got 'rgba'"):
        OpenVLAProcessor(None).preprocess_image(_image(), 'rgba')  # type: ignore[arg-type]


@pytest.mark.parametrize('instruction', ['', '   '])
def test_prompt_raises_for_empty_instruction(instruction: str) -> None:
    with pytest.raises(InvalidInputError, match='instruction is empty'):
        OpenVLAProcessor.build_prompt(instruction)


def test_preprocessor_config_normalize_params_win_over_means() -> None:
    data = ImageTransformConfig().to_preprocessor_config()
    data['means'] = [[0.485, 0.456, 0.406], [0.5, 0.5, 0.5]]
    config = ImageTransformConfig.from_preprocessor_config(data)
    assert config.means[0] == const.DINOV2_MEAN_CHECKPOINT


def test_preprocessor_config_raises_for_letterbox() -> None:
    data = ImageTransformConfig().to_preprocessor_config()
    data['image_resize_strategy'] = 'letterbox'
    with pytest.raises(InvalidConfigError, match="'letterbox': only 'resize-naive'"):
        ImageTransformConfig.from_preprocessor_config(data)


def test_device_preprocessing_is_within_a_few_levels_of_the_pil_path() -> None:
    from openvla_ros.model.processor import OpenVLAProcessor

    processor = OpenVLAProcessor(None)
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(3)]
    for order in ('rgb', 'bgr'):
        host = processor.preprocess_images(frames, order)
        device = processor.preprocess_images_on(frames, 'cpu', order)  # same code as on a GPU
        assert device.shape == host.shape == (3, 6, 224, 224) and device.dtype == torch.float32
        # in uint8 levels: the two bicubic implementations (PIL rounds between its two passes)
        # differ by at most 4 on random noise, the worst case, and rarely
        stds = torch.tensor([s for std in processor.image_config.stds for s in std])
        levels = (device - host).abs() * stds.view(1, 6, 1, 1) * 255
        assert float(levels.max()) <= 4.01 and float(levels.mean()) < 0.2
    # frames of different sizes in one batch, and PIL images, take the same path
    mixed = [frames[0], frames[1][:400, :500], Image.fromarray(frames[2])]
    levels = (processor.preprocess_images_on(mixed, 'cpu')
              - processor.preprocess_images(mixed)).abs() * stds.view(1, 6, 1, 1) * 255
    assert float(levels.max()) <= 4.01 and float(levels.mean()) < 0.2


def test_device_preprocessing_leaves_small_frames_and_center_crop_to_the_host_path() -> None:
    from openvla_ros.model.processor import OpenVLAProcessor

    rng = np.random.default_rng(6)
    small = [rng.integers(0, 256, (100, 90, 3), dtype=np.uint8)]
    processor = OpenVLAProcessor(None)
    torch.testing.assert_close(processor.preprocess_images_on(small, 'cpu'),
                               processor.preprocess_images(small), atol=0, rtol=0)
    crop = OpenVLAProcessor(None, center_crop=True)
    big = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)]
    torch.testing.assert_close(crop.preprocess_images_on(big, 'cpu'),
                               crop.preprocess_images(big), atol=0, rtol=0)
    with pytest.raises(InvalidInputError):
        processor.preprocess_images_on([np.zeros((300, 300), dtype=np.uint8)], 'cpu')
