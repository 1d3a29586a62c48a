"""`OpenVLAPolicy`: image + instruction -> robot action.

The one API that the ROS node, the server and the benchmark use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import logging
import threading
import time
from typing import Any

import numpy as np
from torch import nn

from openvla_ros.model.action_tokenizer import (
    ActionStats,
    ActionTokenizer,
    resolve_unnorm_key,
    unnormalize,
)
from openvla_ros.model.choices import DECODE_MODES
from openvla_ros.model.configuration import OpenVLAConfig
from openvla_ros.model.errors import InvalidInputError, NonFiniteActionError
from openvla_ros.model.loading import load_model
from openvla_ros.model.modeling import OpenVLAForActionPrediction
from openvla_ros.model.processor import ColorOrder, OpenVLAProcessor

logger = logging.getLogger(__name__)
#: What `OpenVLAPolicy.warmup` predicts on by default (a Bridge-style instruction).
WARMUP_INSTRUCTION = 'put the spoon on the towel'


@dataclass(frozen=True)
class Prediction:
    """One policy output.

    Attributes:
        action: (action_dim,) float64, un-normalized with the chosen dataset statistics.
        normalized_action: (action_dim,) float64 in [-1, 1].
        tokens: the generated token ids.
        latency_s: wall time of preprocess + model + decode (for a batch: the whole batch).
    """

    action: np.ndarray
    normalized_action: np.ndarray
    tokens: tuple[int, ...]
    latency_s: float


class OpenVLAPolicy:
    """A loaded OpenVLA model with its processor, action tokenizer and dataset statistics.

    Build it with `OpenVLAPolicy.load(...)`. `predict` and `predict_batch` are thread-safe (one
    lock:
    a model runs one forward at a time).

    Args:
        model: the model (possibly wrapped by peft).
        config: its configuration (with the dataset statistics to use).
        processor: image and prompt pre-processing.
        model_name: how the model was named when loading (directory or hub id).
        decode: 'fast' (static-cache greedy loop), 'reference' (transformers generate) or
            'graph' (own Llama forward in CUDA graphs; eager on the CPU).
    """

    def __init__(
        self,
        model: nn.Module,
        config: OpenVLAConfig,
        processor: OpenVLAProcessor,
        *,
        model_name: str = '',
        decode: str = 'fast',
    ) -> None:
        if decode not in DECODE_MODES:
            raise ValueError(f'decode must be one of {DECODE_MODES}, got {decode!r}')
        self._model = model
        self._core: OpenVLAForActionPrediction = (
            model.get_base_model() if hasattr(model, 'get_base_model') else model  # type: ignore[assignment]
        )
        self.config = config
        self.processor = processor
        self.model_name = model_name
        self.decode = decode
        self.action_tokenizer = ActionTokenizer(config.action_vocab_size, config.n_action_bins)
        self._norm_stats: dict[str, Any] = dict(config.norm_stats or {})
        self._stats: dict[str, ActionStats] = {
            key: ActionStats.from_dict(value.get('action', {}), key=key)
            for key, value in self._norm_stats.items()
        }
        self.unnorm_keys: tuple[str, ...] = tuple(sorted(self._stats))
        dims = {s.action_dim for s in self._stats.values()}
        if len(dims) > 1:
            raise ValueError(
                f'dataset statistics disagree on the action dimension: {sorted(dims)}'
            )
        self.action_dim: int = dims.pop() if dims else 7
        self._lock = threading.Lock()
        #: Where frames are resized and normalized: 'auto' (on the GPU for the 'graph' path,
        #: else on the host, the official PIL path), 'host' or 'device'.
        self.preprocess = 'auto'
        #: Seconds spent in `warmup` (CUDA graph capture), None before it ran.
        self.warmup_s: float | None = None

    def warmup(
        self,
        batch_sizes: Sequence[int] = (1,),
        instructions: Sequence[str] = (WARMUP_INSTRUCTION,),
        image_shape: tuple[int, int] = (480, 640),
    ) -> float:
        """Run each (batch size, instruction) once so that later calls start warm; seconds.

        With `decode='graph'` on CUDA this captures the CUDA graphs of those shapes (the prompt
        length is part of a graph's shape: pass the instructions the robot will use). It is what
        a node calls right after loading, so the first action of a run pays no capture.
        """
        start = time.perf_counter()
        image = np.zeros((*image_shape, 3), dtype=np.uint8)
        key = self.unnorm_keys[0] if self.unnorm_keys else None
        for batch in batch_sizes:
            for text in instructions:
                self.predict_batch([image] * batch, [text] * batch, key)
        self.warmup_s = time.perf_counter() - start
        stats = self.graph_stats()
        logger.info('warm-up of %s for batch sizes %s and %d instruction(s): %.2f s%s',
                    self.decode, list(batch_sizes), len(instructions), self.warmup_s,
                    f' ({stats})' if stats else '')
        return self.warmup_s

    @property
    def preprocess_on_device(self) -> bool:
        """Whether `predict_batch` preprocesses on the model's device (see `preprocess`)."""
        if self.preprocess == 'auto':
            return self.decode == 'graph' and self._core.device.type == 'cuda'
        return self.preprocess == 'device'

    def graph_stats(self) -> dict[str, Any] | None:
        """CUDA-graph counters of the 'graph' path (captures, seconds, failures), else None."""
        decoder = self._core.__dict__.get('_graph_decoder')
        return None if decoder is None else decoder.stats()

    @classmethod
    def load(
        cls,
        model: str,
        *,
        device: str = 'cpu',
        dtype: str = 'float32',
        quantize: str = 'none',
        adapter: str | None = None,
        merge_adapter: bool = False,
        center_crop: bool = False,
        decode: str = 'fast',
        warmup: bool | None = None,
    ) -> OpenVLAPolicy:
        """Load a checkpoint directory or hub id.

        Args:
            model: local directory or hub id.
            device: 'cpu', 'cuda[:N]' or 'auto'.
            dtype: 'float32' | 'bfloat16' | 'float16' | 'auto'.
            quantize: 'none' | '8bit' | '4bit' (bitsandbytes) | 'int8' | 'int4' | 'auto'.
            adapter: optional LoRA adapter directory.
            merge_adapter: merge the adapter into the weights.
            center_crop: 90 %-area center crop before resizing (models fine-tuned with crop
                augmentation).
            decode: 'fast', 'reference' or 'graph'.
            warmup: run `warmup()` (batch 1) before returning; default: with 'graph' on CUDA,
                so that the graphs are captured at load, not at the first action.

        Raises:
            OpenVLAError subclasses for checkpoint problems; ValueError for bad arguments.
        """
        if decode not in DECODE_MODES:
            raise ValueError(f'decode must be one of {DECODE_MODES}, got {decode!r}')
        loaded = load_model(
            model,
            device=device,
            dtype=dtype,
            quantize=quantize,
            adapter=adapter,
            merge_adapter=merge_adapter,
        )
        processor = OpenVLAProcessor(
            loaded.tokenizer, loaded.image_config, center_crop=center_crop
        )
        policy = cls(loaded.model, loaded.config, processor, model_name=str(model), decode=decode)
        if warmup or (warmup is None and policy.preprocess_on_device):
            policy.warmup()
        return policy

    @property
    def model(self) -> nn.Module:
        """The underlying torch module (peft-wrapped when an unmerged adapter is loaded)."""
        return self._model

    def resolve_unnorm_key(self, key: str | None) -> str:
        """The dataset key to un-normalize with.

        Raises:
            UnnormKeyError: unknown key, or None with several datasets (the message lists the
                keys).
        """
        return resolve_unnorm_key(self._norm_stats, key)

    def predict(
        self,
        image: Any,
        instruction: str,
        unnorm_key: str | None = None,
        *,
        color_order: ColorOrder = 'rgb',
    ) -> Prediction:
        """Predict one action.

        Args:
            image: PIL image or (H, W, 3) uint8 numpy array.
            instruction: task in natural language (lower-cased into the prompt).
            unnorm_key: dataset statistics key; None when the model has exactly one.
            color_order: channel order of a numpy image, 'rgb' or 'bgr'.

        Raises:
            InvalidInputError: bad image or empty instruction.
            UnnormKeyError: unknown or missing key.
            NonFiniteActionError: the action is not finite.
        """
        return self.predict_batch([image], [instruction], [unnorm_key], color_order=color_order)[0]

    def predict_batch(
        self,
        images: Sequence[Any],
        instructions: Sequence[str],
        unnorm_keys: Sequence[str | None] | str | None = None,
        *,
        color_order: ColorOrder = 'rgb',
    ) -> list[Prediction]:
        """Predict one action per (image, instruction) in one batched forward (prompts
        left-padded).

        Args:
            images: PIL images or (H, W, 3) uint8 arrays.
            instructions: one per image.
            unnorm_keys: one per image, or a single key (or None) for all.
            color_order: channel order of numpy images.

        Raises:
            InvalidInputError: empty batch, length mismatch, bad image or instruction.
            UnnormKeyError: unknown or missing key.
            NonFiniteActionError: an action is not finite.
        """
        start = time.perf_counter()
        if isinstance(images, (np.ndarray, str)) or not isinstance(images, Sequence):
            raise InvalidInputError(
                f'images must be a sequence of images, got {type(images).__name__}'
            )
        if isinstance(instructions, str) or not isinstance(instructions, Sequence):
            raise InvalidInputError(
                f'instructions must be a sequence of strings, got {type(instructions).__name__}'
            )
        if len(images) == 0:
            raise InvalidInputError('empty batch: no images')
        if len(images) != len(instructions):
            raise InvalidInputError(f'{len(images)} images but {len(instructions)} instructions')
        if unnorm_keys is None or isinstance(unnorm_keys, str):
            keys = [unnorm_keys] * len(images)
        else:
            keys = list(unnorm_keys)
        if len(keys) != len(images):
            raise InvalidInputError(f'{len(images)} images but {len(keys)} unnorm_keys')
        resolved = [self.resolve_unnorm_key(k) for k in keys]
        prompts = [self.processor.prompt_ids(text) for text in instructions]
        if self.preprocess_on_device:
            pixels = self.processor.preprocess_images_on(images, self._core.device, color_order)
        else:
            pixels = self.processor.preprocess_images(images, color_order)  # (B, 6, 224, 224)
        with self._lock:
            tokens = self._core.generate_action_tokens(
                prompts,
                pixels,
                self.action_dim,
                decode=self.decode,  # type: ignore[arg-type]
            )  # (B, action_dim)
        ids = tokens.numpy()
        normalized = self.action_tokenizer.decode(ids)  # (B, action_dim)
        latency = time.perf_counter() - start
        predictions = []
        for row, key in enumerate(resolved):
            action = unnormalize(normalized[row], self._stats[key])
            if not np.all(np.isfinite(action)):
                raise NonFiniteActionError(f'non-finite action {action.tolist()} for key {key!r}')
            predictions.append(
                Prediction(
                    action=action.astype(np.float64),
                    normalized_action=normalized[row].astype(np.float64),
                    tokens=tuple(int(t) for t in ids[row]),
                    latency_s=latency,
                )
            )
        return predictions

    def __repr__(self) -> str:
        return (
            f'OpenVLAPolicy(model={self.model_name!r}, action_dim={self.action_dim}, '
            f'unnorm_keys={self.unnorm_keys}, decode={self.decode!r})'
        )
