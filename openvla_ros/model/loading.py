"""Load an OpenVLA checkpoint (local directory or hub id) into our modules.

Steps: resolve the directory (hub ids through `huggingface_hub.snapshot_download`, which honours
`HF_HUB_OFFLINE` and the local cache); read `config.json` (`dataset_statistics.json`, when present,
replaces `norm_stats`, as in the official `experiments/robot` loader); build the model with its
parameters on the meta device; read the safetensors shards with a progress bar;
`load_state_dict(strict=True, assign=True)`; cast; optionally apply a LoRA adapter (and merge it);
optionally quantize with bitsandbytes; move to the device.

Quantization follows what the official `from_pretrained(..., load_in_4bit/8bit=True)` does with
transformers 4.40.1 (checked in its source): `replace_with_bnb_linear` swaps *every* `nn.Linear` --
the Llama layers, but also the timm ViT blocks, the SigLIP attention-pool head and the projector --
for bitsandbytes layers and keeps only `language_model.lm_head` (the output embedding) in the
compute dtype; embeddings, norms, the patch-embedding convolutions and the positional/register
tokens are never quantized. `quantize_vision=False` keeps the vision backbone and projector in the
compute dtype instead. 4-bit uses NF4 with the chosen compute dtype (HF's bare `load_in_4bit=True`
defaults to FP4 with a float32 compute dtype).

`int8` / `int4` are our weight-only paths on core PyTorch kernels
(`openvla_ros.model.quantization`: Llama decoder layers only, quantized layer by layer onto the
device); `auto` means int4 in bf16 on CUDA and float32 without quantization on the CPU
(`resolve_precision`, one log line).
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

from safetensors import safe_open, SafetensorError
import torch
from torch import nn

from openvla_ros.model import constants as const
from openvla_ros.model.choices import BNB_MODES, QUANTIZE_MODES
from openvla_ros.model.configuration import OpenVLAConfig
from openvla_ros.model.errors import (
    AdapterError,
    CorruptShardError,
    InvalidConfigError,
    MissingShardError,
    MissingTokenizerError,
    ModelNotFoundError,
    QuantizationError,
    StateDictMismatchError,
)
from openvla_ros.model.modeling import DEFAULT_ATTN_IMPLEMENTATION, OpenVLAForActionPrediction
from openvla_ros.model.processor import ImageTransformConfig
from openvla_ros.model.quantization import quantize_weight_only, WEIGHT_ONLY_MODES

logger = logging.getLogger(__name__)

DTypeName = Literal['float32', 'bfloat16', 'float16']
QuantizeMode = Literal['none', '8bit', '4bit', 'int8', 'int4', 'auto']
DTYPES: dict[str, torch.dtype] = {
    'float32': torch.float32,
    'bfloat16': torch.bfloat16,
    'float16': torch.float16,
}
#: Files fetched from the hub for a checkpoint (weights, configs, tokenizer; no remote code).
#: bitsandbytes' default 4-bit block size.
_BNB_BLOCKSIZE = 64
HUB_ALLOW_PATTERNS = ('*.json', '*.safetensors', 'tokenizer.model')


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """'float32' | 'bfloat16' | 'float16' (or a torch dtype) -> torch dtype.

    Raises:
        ValueError: any other value.
    """
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise ValueError(f'dtype must be one of {tuple(DTYPES)}, got {dtype!r}')


def resolve_precision(device: str, dtype: str, quantize: str) -> tuple[str, str, str]:
    """Turn 'auto' device, dtype and quantization into concrete ones.

    'auto' device is CUDA when present, else the CPU. On CUDA, 'auto' dtype is bfloat16 and 'auto'
    quantization int4 (the design card: a quantized policy on the GPU). On the CPU both fall back
    to float32 without quantization, announced by one log line (bf16 matmuls and the int4 CPU
    kernel are slower than float32 there).

    Raises:
        ValueError: an unknown dtype or quantization.
    """
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f'quantize must be one of {QUANTIZE_MODES}, got {quantize!r}')
    if dtype != 'auto':
        parse_dtype(dtype)
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if torch.device(device).type == 'cuda':
        return device, 'bfloat16' if dtype == 'auto' else dtype, (
            'int4' if quantize == 'auto' else quantize)
    if dtype == 'auto' or quantize == 'auto':
        logger.warning('no CUDA device: OpenVLA runs in float32 on the CPU without quantization '
                       '(asked for dtype=%s, quantize=%s)', dtype, quantize)
        return device, 'float32', 'none' if quantize == 'auto' else quantize
    return device, dtype, quantize


# --- locating a checkpoint --------------------------------------------------------------------
def resolve_model_dir(model: str | Path) -> Path:
    """A local checkpoint directory, or the snapshot directory of a hub id (downloaded or cached).

    Raises:
        ModelNotFoundError: not a directory, and not available from the hub (offline, unknown,
            network).
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    text = str(model)
    if path.exists():
        raise ModelNotFoundError(f'{text} is a file, not a checkpoint directory')
    if text.count('/') != 1 or text.startswith(('.', '/', '~')):
        raise ModelNotFoundError(
            f'no checkpoint directory {text!r} (and it is not a hub id like org/name)'
        )
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.utils import HFValidationError
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency of transformers
        raise ModelNotFoundError(
            f'{text!r} is not a directory and huggingface_hub is missing'
        ) from None
    offline = os.environ.get('HF_HUB_OFFLINE', '').lower() in ('1', 'true', 'yes', 'on')
    try:
        snapshot = snapshot_download(
            repo_id=text, allow_patterns=list(HUB_ALLOW_PATTERNS), local_files_only=offline
        )
    except HFValidationError as exc:
        raise ModelNotFoundError(
            f'{text!r} is neither a directory nor a valid hub id: {exc}'
        ) from None
    except Exception as exc:  # noqa: BLE001 - hub errors are many (HTTP, offline, cache); report one line
        mode = (
            'offline (HF_HUB_OFFLINE=1), not in the local cache' if offline else 'download failed'
        )
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelNotFoundError(f'cannot get {text!r} from the hub: {mode}: {reason}') from None
    return Path(snapshot)


def read_dataset_statistics(directory: str | Path) -> dict[str, Any] | None:
    """``dataset_statistics.json`` of a checkpoint or adapter directory, or None if it has none.

    Raises:
        InvalidConfigError: the file exists but is not a readable JSON object.
    """
    stats_path = Path(directory) / const.DATASET_STATISTICS_NAME
    if not stats_path.is_file():
        return None
    try:
        stats = json.loads(stats_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidConfigError(f'cannot read {stats_path}: {exc}') from None
    if not isinstance(stats, dict):
        raise InvalidConfigError(f'{stats_path} does not hold a JSON object')
    return stats


def load_config(model_dir: str | Path) -> OpenVLAConfig:
    """`config.json`, with `norm_stats` replaced by `dataset_statistics.json` when that file
    exists.

    Raises:
        MissingConfigError: no readable config.json.
        InvalidConfigError: unsupported fields or an unreadable dataset_statistics.json.
    """
    model_dir = Path(model_dir)
    config = OpenVLAConfig.from_json_file(model_dir / const.CONFIG_NAME)
    stats = read_dataset_statistics(model_dir)
    if stats is not None:
        config.norm_stats = stats
    return config


def load_tokenizer(model_dir: str | Path) -> Any:
    """The checkpoint's Llama-2 tokenizer (transformers `LlamaTokenizer`, local files only).

    Raises:
        MissingTokenizerError: no tokenizer files, or they cannot be parsed.
    """
    model_dir = Path(model_dir)
    if not ((model_dir / 'tokenizer.json').is_file() or (model_dir / 'tokenizer.model').is_file()):
        raise MissingTokenizerError(f'no tokenizer.json or tokenizer.model in {model_dir}')
    # LlamaTokenizer directly: AutoTokenizer reads config.json and warns about model_type openvla
    from transformers import LlamaTokenizer

    try:
        return LlamaTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types for broken files
        raise MissingTokenizerError(f'cannot load the tokenizer in {model_dir}: {exc}') from None


# --- weights ----------------------------------------------------------------------------------
def shard_files(model_dir: str | Path) -> list[Path]:
    """The safetensors files of a checkpoint, from the index or the single-file layout.

    Raises:
        MissingShardError: no weights, or a shard named by the index is missing.
        CorruptShardError: the index is not valid JSON.
    """
    model_dir = Path(model_dir)
    index_path = model_dir / const.SAFETENSORS_INDEX_NAME
    if index_path.is_file():
        try:
            weight_map = json.loads(index_path.read_text())['weight_map']
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CorruptShardError(f'cannot read {index_path}: {exc}') from None
        files = [model_dir / name for name in sorted(set(weight_map.values()))]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise MissingShardError(
                f'{model_dir} lacks shard(s) named in the index: {", ".join(missing)}'
            )
        return files
    single = model_dir / const.SAFETENSORS_SINGLE_NAME
    if single.is_file():
        return [single]
    raise MissingShardError(
        f'no {const.SAFETENSORS_INDEX_NAME} or {const.SAFETENSORS_SINGLE_NAME} in {model_dir}'
    )


def read_state_dict(model_dir: str | Path, *, progress: bool = True) -> dict[str, torch.Tensor]:
    """Read every tensor of the checkpoint onto the CPU (tqdm bar over shards).

    Raises:
        MissingShardError: a shard is missing.
        CorruptShardError: a shard cannot be parsed (truncated, not safetensors).
    """
    from tqdm.auto import tqdm

    state: dict[str, torch.Tensor] = {}
    files = shard_files(model_dir)
    for path in tqdm(files, desc='Loading shards', unit='shard', disable=not progress):
        try:
            with safe_open(str(path), framework='pt', device='cpu') as handle:
                for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                    state[key] = handle.get_tensor(key)
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CorruptShardError(f'cannot read shard {path.name}: {exc}') from None
    return state


def _check_keys(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Raise one readable error listing missing / unexpected / mis-shaped keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f'{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}'
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if not (missing or unexpected or shapes):
        return

    def head(items: list[str]) -> str:
        return ', '.join(items[:5]) + (f' (+{len(items) - 5} more)' if len(items) > 5 else '')

    parts = []
    if missing:
        parts.append(f'{len(missing)} missing key(s): {head(missing)}')
    if unexpected:
        parts.append(f'{len(unexpected)} unexpected key(s): {head(unexpected)}')
    if shapes:
        parts.append(f'{len(shapes)} shape mismatch(es): {head(shapes)}')
    raise StateDictMismatchError('checkpoint does not match the model: ' + '; '.join(parts))


def build_model(
    config: OpenVLAConfig,
    state: dict[str, torch.Tensor],
    *,
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = DEFAULT_ATTN_IMPLEMENTATION,
) -> OpenVLAForActionPrediction:
    """Create the model without allocating random weights and load `state` strictly.

    Raises:
        StateDictMismatchError: missing, unexpected or mis-shaped keys.
    """
    from accelerate import init_empty_weights

    rng = torch.random.get_rng_state()
    with init_empty_weights(include_buffers=False):
        model = OpenVLAForActionPrediction(config, attn_implementation=attn_implementation)
    torch.random.set_rng_state(rng)
    _check_keys(model, state)
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(dtype).eval()


def param_bytes(model: nn.Module) -> int:
    """Bytes held by parameters and buffers (quantized weights count at their packed size)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


# --- quantization -----------------------------------------------------------------------------
def _bnb() -> Any:
    try:
        import bitsandbytes as bnb
    except Exception as exc:  # noqa: BLE001 - a broken native library raises anything
        raise QuantizationError(f'bitsandbytes is not usable here: {exc}') from None
    return bnb


def quantize_linear_layers(
    model: nn.Module,
    mode: QuantizeMode,
    *,
    compute_dtype: torch.dtype,
    device: torch.device,
    skip: tuple[str, ...] = const.QUANT_SKIP_MODULES,
    include_vision: bool = True,
) -> int:
    """Replace `nn.Linear` layers by bitsandbytes 8-bit (LLM.int8) or 4-bit (NF4) layers on
    `device`.

    Args:
        model: the model, in `compute_dtype`, on the CPU.
        mode: '8bit' or '4bit'.
        compute_dtype: dtype of activations of the 4-bit layers.
        device: where the quantized weights go (quantization happens on that move).
        skip: qualified module names kept unquantized (and their children).
        include_vision: also quantize the vision backbone and projector (what HF does).

    Returns:
        The number of layers replaced.

    Raises:
        QuantizationError: bitsandbytes is missing or fails on this device.
    """
    bnb = _bnb()
    excluded = tuple(skip) + (() if include_vision else ('vision_backbone', 'projector'))
    replaced = 0
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Linear) or any(
            name == s or name.startswith(s + '.') for s in excluded
        ):
            continue
        if mode == '4bit' and device.type == 'cpu' and module.in_features % _BNB_BLOCKSIZE:
            # bitsandbytes' CPU 4-bit kernel repacks absmax per row and needs in_features to be a
            # multiple of its blocksize (64); such layers (SigLIP's MLP fc2, 4304 inputs; the tiny
            # ViTs) stay in the compute dtype on CPU. CUDA has no such limit.
            logger.warning(
                '4bit on cpu: keeping %s (in_features=%d) unquantized', name, module.in_features
            )
            continue
        weight = module.weight.data
        bias = None if module.bias is None else module.bias.data
        try:
            if mode == '4bit':
                new = bnb.nn.Linear4bit(
                    module.in_features,
                    module.out_features,
                    bias=bias is not None,
                    compute_dtype=compute_dtype,
                    quant_type='nf4',
                    device='meta',
                )
                new.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type='nf4')
            else:
                new = bnb.nn.Linear8bitLt(
                    module.in_features,
                    module.out_features,
                    bias=bias is not None,
                    has_fp16_weights=False,
                    threshold=6.0,
                    device='meta',
                )
                new.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
            if bias is not None:
                new.bias = nn.Parameter(bias, requires_grad=False)
            new = new.to(device)
        except Exception as exc:  # noqa: BLE001 - bitsandbytes backends raise many types
            raise QuantizationError(
                f'{mode} quantization of {name} failed on {device}: {exc}'
            ) from None
        parent_name, _, child = name.rpartition('.')
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
        replaced += 1
    return replaced


# --- LoRA ---------------------------------------------------------------------------------------
def apply_adapter(model: nn.Module, adapter: str | Path, *, merge: bool) -> nn.Module:
    """Load a peft LoRA adapter directory onto `model`; with `merge`, fold it into the weights.

    Raises:
        AdapterError: peft is missing, the directory has no adapter, or its modules do not match.
    """
    adapter_dir = resolve_model_dir(adapter) if not Path(adapter).is_dir() else Path(adapter)
    if not (adapter_dir / 'adapter_config.json').is_file():
        raise AdapterError(f'no adapter_config.json in {adapter_dir}')
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise AdapterError(f'peft is needed for LoRA adapters: {exc}') from None
    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    except Exception as exc:  # noqa: BLE001 - peft raises many types for a mismatched adapter
        raise AdapterError(f'cannot apply the adapter in {adapter_dir}: {exc}') from None
    if merge:
        return peft_model.merge_and_unload()
    return peft_model


# --- everything ---------------------------------------------------------------------------------
@dataclass
class LoadedModel:
    """A loaded checkpoint: the model and what pre/post-processing needs from the directory."""

    model: nn.Module
    config: OpenVLAConfig
    tokenizer: Any
    image_config: ImageTransformConfig
    model_dir: Path


def load_model(
    model: str | Path,
    *,
    device: str | torch.device = 'cpu',
    dtype: str | torch.dtype = 'float32',
    quantize: str = 'none',
    adapter: str | Path | None = None,
    merge_adapter: bool = False,
    quantize_vision: bool = True,
    attn_implementation: str = DEFAULT_ATTN_IMPLEMENTATION,
    progress: bool = True,
) -> LoadedModel:
    """Load a checkpoint (directory or hub id) ready for inference.

    Args:
        model: local directory or hub id (`openvla/openvla-7b`).
        device: 'cpu', 'cuda', 'cuda:1', ..., or 'auto'.
        dtype: compute dtype, 'float32' | 'bfloat16' | 'float16' | 'auto'.
        quantize: 'none' | '8bit' | '4bit' (bitsandbytes; NF4 for 4-bit) | 'int8' | 'int4'
            (weight-only, core PyTorch kernels) | 'auto' (int4 on CUDA, none on the CPU).
        adapter: optional peft LoRA adapter directory.
        merge_adapter: merge the adapter into the weights (deployment) instead of keeping it
            separate.
        quantize_vision: with quantization, also quantize the vision backbone and projector (HF's
            behaviour); False keeps them in `dtype`.
        attn_implementation: Llama attention kernel ('sdpa' or 'eager').
        progress: show a tqdm bar over the shards.

    Raises:
        ModelNotFoundError, MissingConfigError, InvalidConfigError, MissingShardError,
        CorruptShardError,
        MissingTokenizerError, StateDictMismatchError, AdapterError, QuantizationError: see
            errors.py.
        ValueError: unknown dtype or quantize mode.
    """
    if isinstance(dtype, torch.dtype):
        dtype = next(name for name, value in DTYPES.items() if value == dtype)
    device, dtype, quantize = resolve_precision(str(device), dtype, quantize)
    torch_dtype = parse_dtype(dtype)
    torch_device = torch.device(device)
    if torch_device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {device!r} requested but CUDA is not available')
    model_dir = resolve_model_dir(model)
    config = load_config(model_dir)
    tokenizer = load_tokenizer(model_dir)
    image_config = ImageTransformConfig.from_checkpoint(model_dir)
    state = read_state_dict(model_dir, progress=progress)
    net: nn.Module = build_model(
        config, state, dtype=torch_dtype, attn_implementation=attn_implementation
    )
    del state
    if adapter is not None:
        net = apply_adapter(net, adapter, merge=merge_adapter)
        # A fine-tune saves its dataset's statistics (a new unnorm key) beside the adapter.
        adapter_stats = read_dataset_statistics(adapter)
        if adapter_stats is not None:
            config.norm_stats = {**(config.norm_stats or {}), **adapter_stats}
    if quantize in BNB_MODES:
        count = quantize_linear_layers(
            net,
            quantize,
            compute_dtype=torch_dtype,
            device=torch_device,
            include_vision=quantize_vision,
        )
        logger.info('quantized %d linear layers to %s', count, quantize)
    elif quantize in WEIGHT_ONLY_MODES:
        count = quantize_weight_only(net, quantize, device=torch_device)
        logger.info('quantized %d language-model linear layers to %s weight-only', count,
                    quantize)
    net = net.to(torch_device).eval()
    logger.info(
        'loaded %s: %.1f MB of parameters (%s, quantize=%s, adapter=%s) on %s',
        model_dir,
        param_bytes(net) / 2**20,
        torch_dtype,
        quantize,
        adapter,
        torch_device,
    )
    return LoadedModel(net, config, tokenizer, image_config, model_dir)
