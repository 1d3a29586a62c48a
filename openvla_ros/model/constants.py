"""Every OpenVLA model fact in one place (prompt, token ids, bins, image statistics, checkpoint
layout).

Sources: openvla/openvla `prismatic/extern/hf/*.py`, `prismatic/vla/action_tokenizer.py`,
`experiments/robot/openvla_utils.py`, and the HF checkpoint `openvla/openvla-7b`.
"""

from __future__ import annotations

from pathlib import Path

# --- prompt ---------------------------------------------------------------------------------
#: The OpenVLA (v1) prompt; callers lower-case the instruction before formatting it in.
PROMPT_TEMPLATE = 'In: What action should the robot take to {instruction}?\nOut:'
#: The bare SentencePiece "▁" token that training saw after "Out:"; appended when missing.
EMPTY_TOKEN_ID = 29871
BOS_TOKEN_ID = 1
EOS_TOKEN_ID = 2
#: OpenVLA's added `<PAD>` token (the Llama-2 vocabulary has 32000 pieces).
PAD_TOKEN_ID = 32000
#: The embedding table is padded to a multiple of this (32001 -> 32064).
PAD_TO_MULTIPLE_OF = 64
LLAMA2_VOCAB_SIZE = 32000
PADDED_VOCAB_SIZE = 32064

# --- actions ----------------------------------------------------------------------------------
N_ACTION_BINS = 256
MIN_ACTION = -1.0
MAX_ACTION = 1.0
#: `[dx, dy, dz, droll, dpitch, dyaw, gripper]` for every released checkpoint.
DEFAULT_ACTION_DIM = 7

# --- vision -----------------------------------------------------------------------------------
VISION_BACKBONE_ID = 'dinosiglip-vit-so-224px'
LLM_BACKBONE_ID = 'llama2-7b-pure'
ARCH_SPECIFIER = 'no-align+fused-gelu-mlp'
IMAGE_RESIZE_STRATEGY = 'resize-naive'
TIMM_MODEL_IDS = ('vit_large_patch14_reg4_dinov2.lvd142m', 'vit_so400m_patch14_siglip_224')
TIMM_OVERRIDE_ACT_LAYERS: tuple[str | None, ...] = (None, None)
IMAGE_SIZE = 224
IMAGE_SIZES = (IMAGE_SIZE, IMAGE_SIZE)
PATCH_SIZE = 14
NUM_PATCHES = (IMAGE_SIZE // PATCH_SIZE) ** 2  # 256
#: Per-backbone normalisation (timm data configs of the two backbones).
DINOV2_MEAN = (0.485, 0.456, 0.406)
DINOV2_STD = (0.229, 0.224, 0.225)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
IMAGE_MEANS = (DINOV2_MEAN, SIGLIP_MEAN)
IMAGE_STDS = (DINOV2_STD, SIGLIP_STD)
INTERPOLATIONS = ('bicubic', 'bicubic')
#: `experiments/robot`: crop 90 % of the area (side scale sqrt(0.9)) then resize back to 224.
CENTER_CROP_SCALE = 0.9

# --- Llama-2-7B text config (as in openvla-7b's config.json) -----------------------------------
LLAMA2_7B_TEXT_CONFIG: dict[str, object] = {
    'model_type': 'llama',
    'hidden_size': 4096,
    'intermediate_size': 11008,
    'num_hidden_layers': 32,
    'num_attention_heads': 32,
    'num_key_value_heads': 32,
    'max_position_embeddings': 2048,
    'rms_norm_eps': 1e-6,
    'vocab_size': PADDED_VOCAB_SIZE,
    'pad_token_id': PAD_TOKEN_ID,
    'bos_token_id': BOS_TOKEN_ID,
    'eos_token_id': EOS_TOKEN_ID,
    'torch_dtype': 'bfloat16',
}

# --- checkpoint layout ------------------------------------------------------------------------
CONFIG_NAME = 'config.json'
PREPROCESSOR_CONFIG_NAME = 'preprocessor_config.json'
DATASET_STATISTICS_NAME = 'dataset_statistics.json'
SAFETENSORS_INDEX_NAME = 'model.safetensors.index.json'
SAFETENSORS_SINGLE_NAME = 'model.safetensors'
TOKENIZER_FILES = ('tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json')
#: HF checkpoints keep the output embedding (lm_head) out of bitsandbytes quantization.
QUANT_SKIP_MODULES = ('language_model.lm_head',)

# --- package assets ---------------------------------------------------------------------------
ASSETS_DIR = Path(__file__).resolve().parent / 'assets'
TOKENIZER_DIR = ASSETS_DIR / 'llama2_tokenizer'
NORM_STATS_SAMPLE = ASSETS_DIR / 'norm_stats_sample.json'

#: What the released `openvla-7b` `preprocessor_config.json` stores in `tvf_normalize_params` (and
#: so what
#: the official processor uses): the DINOv2 statistics rounded to bfloat16 when the checkpoint was
#: exported.
DINOV2_MEAN_CHECKPOINT = (0.484375, 0.455078125, 0.40625)
DINOV2_STD_CHECKPOINT = (0.228515625, 0.2236328125, 0.224609375)
CHECKPOINT_IMAGE_MEANS = (DINOV2_MEAN_CHECKPOINT, SIGLIP_MEAN)
CHECKPOINT_IMAGE_STDS = (DINOV2_STD_CHECKPOINT, SIGLIP_STD)
