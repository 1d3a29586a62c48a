"""Wire protocol of the policy server: request/response models, limits and payload decoding.

Shared by the server and the client, so it imports neither torch nor FastAPI (the robot computer
only needs numpy, httpx and pydantic). Numpy arrays travel in the ``json_numpy`` layout
``{"__numpy__": base64, "dtype": descr, "shape": [...]}`` that OpenVLA's ``vla-scripts/deploy.py``
and its client use; the decoder here is stricter than ``json_numpy.loads`` (numeric dtypes only,
shape checked against the data, size checked before the base64 is decoded), because a server must
not trust its payloads.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
import io
import json
import math
import re
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    'ApiError',
    'ErrorResponse',
    'HealthResponse',
    'Latency',
    'Limits',
    'ModelInfo',
    'PolicyLike',
    'PredictRequest',
    'PredictResponse',
    'check_text',
    'decode_image',
    'encode_array',
    'loads_payload',
]

#: dtype kinds a client may send (bool, signed, unsigned, float): never objects or structs.
_NUMERIC_KINDS = frozenset('biuf')
#: Image formats accepted as base64 bytes (lossless PNG, or JPEG as a camera's own encoding).
IMAGE_FORMATS = ('PNG', 'JPEG')
#: Longest number literal accepted in a JSON body. The protocol's numbers are array sizes; this
#: keeps clear of Python's 4300-digit int-conversion limit (a ValueError, not a JSON error).
MAX_NUMBER_CHARS = 64
#: Most dimensions of a json_numpy array (an image has 3).
MAX_ARRAY_DIMS = 4
_ADDRESS = re.compile(r' at 0x[0-9a-fA-F]+')


class ApiError(Exception):
    """A request the server refuses: HTTP status, a short code and a message for the caller."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Limits:
    """Request size limits; anything larger is refused before it reaches the model.

    Defaults fit a 2048 x 2048 RGB frame sent raw (12 MiB, 16 MiB as base64) with room to spare;
    OpenVLA resizes every frame to 224 x 224, so larger frames only cost bandwidth.
    """

    max_body_bytes: int = 32 * 1024 * 1024
    max_image_pixels: int = 2048 * 2048
    max_instruction_chars: int = 1000
    max_key_chars: int = 200
    max_request_id_chars: int = 128


class PolicyLike(Protocol):
    """What the server needs from a policy (`OpenVLAPolicy` has it; tests may pass fakes)."""

    model_name: str
    unnorm_keys: tuple[str, ...]
    action_dim: int

    def resolve_unnorm_key(self, key: str | None) -> str: ...

    def predict_batch(
        self, images: Any, instructions: Any, unnorm_keys: Any = None
    ) -> list[Any]: ...


class PredictRequest(BaseModel):
    """Body of ``POST /v1/predict``."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra='forbid')

    image: Any = Field(
        description=(
            'uint8 H x W x 3 RGB image: a json_numpy array {"__numpy__": base64, "dtype": "|u1", '
            '"shape": [H, W, 3]}, or a base64 string of PNG/JPEG bytes (a data: URL is accepted)'
        )
    )
    instruction: str = Field(description='task in natural language, e.g. "pick up the cup"')
    unnorm_key: str | None = Field(
        default=None,
        description="dataset statistics key; null = the server's default (--unnorm-key, or the "
        "model's only key)",
    )
    request_id: str | None = Field(
        default=None, description='echoed in the answer, so a client can match answers'
    )


class Latency(BaseModel):
    """Where the time went, in seconds, measured on the server."""

    queue_s: float = Field(description='waiting for a batch slot')
    model_s: float = Field(description='the batched model call (pre-process + model + decode)')
    total_s: float = Field(description='request received -> answer ready')


class ModelInfo(BaseModel):
    """The model a server runs."""

    name: str
    action_dim: int
    unnorm_keys: list[str]
    default_unnorm_key: str | None = Field(
        description='used when a request names none (null: every request must name one)'
    )
    max_batch: int


class PredictResponse(BaseModel):
    """Answer of ``POST /v1/predict``."""

    request_id: str | None
    action: list[float] = Field(description='un-normalized action (action_dim,)')
    normalized_action: list[float] = Field(description='action in [-1, 1] before un-normalizing')
    tokens: list[int]
    unnorm_key: str
    batch_size: int = Field(description='how many requests shared the model call')
    latency: Latency
    model: ModelInfo


class HealthResponse(BaseModel):
    """Answer of ``GET /health``: 200 when ready, 503 while loading or after a failed load."""

    status: str = Field(description="'ready', 'loading' or 'failed'")
    model: str | None = None
    detail: str | None = None
    uptime_s: float


class ErrorResponse(BaseModel):
    """Body of every error of /v1/*, /metrics and /health (``/act`` answers like deploy.py)."""

    error: str = Field(description='short code, e.g. unauthorized, payload_too_large')
    detail: str


def encode_array(array: np.ndarray) -> dict[str, Any]:
    """The json_numpy layout of an array (what ``json_numpy.dumps`` writes for it)."""
    array = np.ascontiguousarray(array)
    return {
        '__numpy__': base64.b64encode(array.tobytes()).decode('ascii'),
        'dtype': np.lib.format.dtype_to_descr(array.dtype),
        'shape': list(array.shape),
    }


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: error messages echo client data, bounded."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + '...'


def _decode_array(obj: dict[str, Any], max_elements: int) -> np.ndarray:
    data, descr, shape = obj.get('__numpy__'), obj.get('dtype'), obj.get('shape')
    if not isinstance(data, str) or not isinstance(shape, list):
        raise ApiError(400, 'bad_array', 'a json_numpy array needs "__numpy__" (str) and "shape"')
    # Each size on its own, not only the product: [0, 10**30] has 0 elements, and numpy refuses it
    # (ValueError) after a product check passed.
    if len(shape) > MAX_ARRAY_DIMS or not all(
        type(n) is int and 1 <= n <= max_elements for n in shape
    ):
        raise ApiError(
            400,
            'bad_array',
            f'array shape {_short(shape)} must be at most {MAX_ARRAY_DIMS} sizes, each '
            f'1..{max_elements}',
        )
    if not isinstance(descr, str):
        raise ApiError(400, 'bad_array', f'array dtype {_short(descr)} is not a type string')
    try:
        dtype = np.lib.format.descr_to_dtype(descr)
    except Exception:  # noqa: BLE001 - numpy raises TypeError, ValueError, SyntaxError, ...
        raise ApiError(400, 'bad_array', f'array dtype {_short(descr)} is not valid') from None
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.shape:
        raise ApiError(400, 'bad_array', f'array dtype {_short(descr)} is not numeric')
    count = math.prod(shape)
    if count > max_elements:
        raise ApiError(
            413, 'payload_too_large', f'array of shape {shape} is over {max_elements} elements'
        )
    if len(data) > 4 * (count * dtype.itemsize + 2) // 3 + 4:
        raise ApiError(400, 'bad_array', f'array data is longer than shape {shape} needs')
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, 'bad_array', 'array data is not valid base64') from None
    if len(raw) != count * dtype.itemsize:
        raise ApiError(
            400,
            'bad_array',
            f'array data has {len(raw)} bytes, shape {shape} of {dtype} needs '
            f'{count * dtype.itemsize}',
        )
    array = np.frombuffer(raw, dtype=dtype)
    return array.reshape(shape) if shape else array[0]


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise ApiError(
            400, 'bad_json', f'a number has {len(text)} digits, over the limit {MAX_NUMBER_CHARS}'
        )
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text) if len(text) <= MAX_NUMBER_CHARS else math.inf
    if not math.isfinite(value):
        raise ApiError(400, 'bad_json', f'number {_short(text, 40)} is out of range')
    return value


def _parse_constant(name: str) -> float:
    raise ApiError(400, 'bad_json', f'{name} is not JSON (non-finite numbers are refused)')


def loads_payload(body: bytes, limits: Limits) -> Any:
    """Parse a JSON body, turning json_numpy arrays into numpy arrays (checked, size-bounded).

    Numbers are bounded (at most ``MAX_NUMBER_CHARS`` characters, finite; NaN and Infinity are
    refused), so no literal reaches Python's int-conversion limit.

    Raises:
        ApiError: 400 for text that is not JSON or a bad array, 413 for an oversize array.
    """
    max_elements = limits.max_image_pixels * 4

    def hook(obj: dict[str, Any]) -> Any:
        return _decode_array(obj, max_elements) if '__numpy__' in obj else obj

    try:
        return json.loads(
            body,
            object_hook=hook,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, 'bad_json', f'body is not valid JSON: {exc}') from None
    except RecursionError:
        raise ApiError(400, 'bad_json', 'body is nested too deeply') from None


def _check_rgb(array: Any, limits: Limits) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise ApiError(422, 'bad_image', f'image must be an array, got {type(array).__name__}')
    if array.ndim != 3 or array.shape[2] != 3:
        raise ApiError(422, 'bad_image', f'image must be H x W x 3 (RGB), got {array.shape}')
    if array.dtype != np.uint8:
        raise ApiError(422, 'bad_image', f'image must be uint8, got {array.dtype}')
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise ApiError(422, 'bad_image', f'image is empty ({array.shape})')
    if height * width > limits.max_image_pixels:
        raise ApiError(
            413,
            'payload_too_large',
            f'image {width}x{height} has {height * width} pixels, over the limit '
            f'{limits.max_image_pixels}',
        )
    return array


def decode_image(value: Any, limits: Limits) -> np.ndarray:
    """A request's image (json_numpy array or base64 PNG/JPEG) as a checked uint8 RGB array.

    Raises:
        ApiError: 400 bad base64, 413 too many pixels, 422 not an RGB uint8 image / unreadable.
    """
    if not isinstance(value, str):
        return _check_rgb(value, limits)
    text = value
    if text.startswith('data:'):
        _, _, text = text.partition(',')
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, 'bad_image', 'image string is not valid base64') from None
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415 - only for encoded images

    try:
        with Image.open(io.BytesIO(raw), formats=IMAGE_FORMATS) as handle:
            if handle.format not in IMAGE_FORMATS:
                raise ApiError(
                    422, 'bad_image', f'image format {handle.format} is not one of {IMAGE_FORMATS}'
                )
            width, height = handle.size
            # Checked before decoding the pixels: a small PNG may expand to gigabytes.
            if width * height > limits.max_image_pixels:
                raise ApiError(
                    413,
                    'payload_too_large',
                    f'image {width}x{height} has {width * height} pixels, over the limit '
                    f'{limits.max_image_pixels}',
                )
            array = np.asarray(handle.convert('RGB'), dtype=np.uint8)
    except UnidentifiedImageError:  # its message names a BytesIO and its memory address
        raise ApiError(422, 'bad_image', 'image bytes are not a PNG or JPEG') from None
    except ApiError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, ...
        reason = _ADDRESS.sub('', str(exc))[:200] or type(exc).__name__
        raise ApiError(
            422, 'bad_image', f'image bytes are not a readable PNG/JPEG: {reason}'
        ) from None
    return _check_rgb(array, limits)


def check_text(value: Any, name: str, max_chars: int, *, required: bool) -> str | None:
    """A string field: None/absent allowed unless required; 422 when wrong or too long."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ApiError(422, f'bad_{name}', f'{name} must be a string, got {type(value).__name__}')
    if len(value) > max_chars:
        raise ApiError(
            422, f'bad_{name}', f'{name} has {len(value)} characters, over the limit {max_chars}'
        )
    try:
        value.encode('utf-8')
    except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800") is not valid text
        raise ApiError(422, f'bad_{name}', f'{name} is not valid Unicode text') from None
    if required and not value.strip():
        raise ApiError(422, f'bad_{name}', f'{name} is empty')
    return value
