"""`decode='graph'`: our own Llama forward against transformers; eager here, graphs on GPUs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from openvla_ros.model import OpenVLAPolicy
from openvla_ros.model.decoding import GraphedDecoder, llm_greedy, new_kv_cache

INSTRUCTIONS = ['put the spoon on the towel', 'pick up the red block and put it in the bowl',
                'open the drawer']


def _images(n: int, seed: int = 11) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(n)]


def test_own_forward_logits_equal_transformers_logits(policy: OpenVLAPolicy) -> None:
    core = policy._core
    images = _images(3)
    pixels = policy.processor.preprocess_images(images)
    prompts = [policy.processor.prompt_ids(t) for t in INSTRUCTIONS]  # ragged: left padding
    with torch.inference_mode():
        expected = core(prompts, pixels)[:, -1].float()  # transformers' LlamaForCausalLM
        inputs = core.build_inputs(prompts, pixels)
        steps: list[torch.Tensor] = []
        cache = new_kv_cache(core.language_model, 3, inputs.inputs_embeds.shape[1] + 1,
                             torch.float32, torch.device('cpu'))
        llm_greedy(core.language_model, inputs.inputs_embeds, inputs.position_ids,
                   inputs.attention_mask.bool(), 1, cache, logits_out=steps)
    torch.testing.assert_close(steps[0], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_graph_decoding_gives_the_reference_tokens_single_and_batched(tiny_dir, seed) -> None:
    graph = OpenVLAPolicy.load(str(tiny_dir), decode='graph')
    reference = OpenVLAPolicy.load(str(tiny_dir), decode='reference')
    images = _images(3, seed)
    for image, text in zip(images, INSTRUCTIONS):
        assert graph.predict(image, text, 'bridge_orig').tokens == \
            reference.predict(image, text, 'bridge_orig').tokens
    batched = graph.predict_batch(images, INSTRUCTIONS, 'bridge_orig')  # ragged prompts
    expected = reference.predict_batch(images, INSTRUCTIONS, 'bridge_orig')
    assert [p.tokens for p in batched] == [p.tokens for p in expected]


def test_cpu_decoder_runs_eagerly_and_warmup_reports_its_time(tiny_dir) -> None:
    graph = OpenVLAPolicy.load(str(tiny_dir), decode='graph', warmup=True)
    assert graph.warmup_s is not None and graph.warmup_s > 0
    stats = graph.graph_stats()
    assert stats is not None and stats['graphs'] is False and stats['captures'] == 0
    assert not graph.preprocess_on_device  # host (PIL) path on the CPU
    assert isinstance(graph._core.graph_decoder(), GraphedDecoder)


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason='CUDA graphs need a GPU; the eager path is tested above')
def test_cuda_graph_replays_give_the_eager_tokens() -> None:
    from openvla_ros.model.synthetic import random_policy

    graph = random_policy('tiny', device='cuda', dtype='float32', decode='graph')
    eager = random_policy('tiny', device='cuda', dtype='float32', decode='fast')
    graph.preprocess = 'host'  # the same pixels as the eager policy (tiny models are touchy)
    graph.warmup(batch_sizes=(1, 2), instructions=INSTRUCTIONS[:1])
    assert graph.graph_stats()['captures'] >= 2 and not graph.graph_stats()['failures']
    for image in _images(4):
        for _ in range(2):  # a replay after a replay reads the new inputs
            assert graph.predict(image, INSTRUCTIONS[0], 'bridge_orig').tokens == \
                eager.predict(image, INSTRUCTIONS[0], 'bridge_orig').tokens
