"""policy_node, real rclpy: frames and instructions in, ActionChunks out; bad input is harmless."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from ros_helpers import Probe, RELIABLE, wait_for
from std_msgs.msg import String

from openvla_ros.backends import BackendResult
from openvla_ros.harness.runner import to_parameters
from openvla_ros.msg import ActionChunk, PolicyStatus
from openvla_ros.nodes.policy_node import PolicyNode

FRAME = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)


class FakeBackend:
    """A backend whose behaviour a test sets: fixed actions, an exception, or NaN."""

    model_name = 'fake'
    unnorm_key = 'bridge_orig'

    def __init__(self, actions=None, error: Exception | None = None) -> None:
        self.actions = np.array([[0.01, 0, 0, 0, 0, 0, 1.0]]) if actions is None else actions
        self.error = error
        self.images: list[np.ndarray] = []

    def predict(self, image_rgb, instruction):
        self.images.append(image_rgb)
        if self.error is not None:
            raise self.error
        return BackendResult(
            np.asarray(self.actions, dtype=float), (1, 2, 3), 0.001, 'bridge_orig'
        )

    def close(self) -> None:
        pass


@pytest.fixture
def graph():
    """Starts a policy node (given a backend, or the tiny model) and a probe; yields a builder."""
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    nodes = []
    stop = {'flag': False}

    def spin():
        while not stop['flag'] and rclpy.ok(context=context):
            executor.spin_once(timeout_sec=0.02)

    thread = threading.Thread(target=spin, daemon=True)

    def build(backend=None, **params):
        node = PolicyNode(
            context=context,
            backend=backend,
            cli_args=['--ros-args', '-r', 'image:=/camera/image_raw'],
            parameter_overrides=to_parameters({'policy_rate': 20.0, **params}),
        )
        probe = Probe(context=context)
        probe.listen(ActionChunk, '/openvla/action_chunk')
        probe.listen(PolicyStatus, '/openvla/policy_status')
        for n in (node, probe):
            executor.add_node(n)
            nodes.append(n)
        thread.start()
        return node, probe

    yield build
    for n in nodes:
        getattr(n, 'close', lambda: None)()
    stop['flag'] = True
    thread.join(timeout=5)
    executor.shutdown()
    for n in nodes:
        n.destroy_node()
    rclpy.try_shutdown(context=context)


def instruct(probe: Probe, text: str) -> None:
    probe.publish(String, '/instruction', String(data=text), RELIABLE)


def feed_until(
    probe: Probe, topic: str, count: int, timeout: float = 20.0, **image_kwargs
) -> None:
    """Publishes frames until `count` messages arrived on topic."""

    def enough():
        probe.image(FRAME, **image_kwargs)
        return len(probe.messages(topic)) >= count

    wait_for(enough, timeout, f'{count} messages on {topic}', period=0.05)


def test_instruction_and_frames_produce_action_chunks_stamped_with_the_image_time(graph):
    node, probe = graph(FakeBackend(), base_frame='wx250s/base_link')
    instruct(probe, 'put the spoon on the towel')
    feed_until(probe, '/openvla/action_chunk', 2)
    chunk = probe.messages('/openvla/action_chunk')[0]
    assert chunk.instruction == 'put the spoon on the towel'
    assert chunk.num_actions == 1 and chunk.action_dim == 7
    assert list(chunk.actions) == pytest.approx([0.01, 0, 0, 0, 0, 0, 1.0])
    assert chunk.dt == pytest.approx(1 / 20.0)
    assert chunk.header.frame_id == 'wx250s/base_link'
    assert list(chunk.tokens) == [1, 2, 3]
    # stamped with a frame's capture time, which is in the past of the publication
    assert chunk.header.stamp.sec > 0


def test_empty_instruction_stops_the_chunks(graph):
    node, probe = graph(FakeBackend())
    instruct(probe, 'lift the block')
    feed_until(probe, '/openvla/action_chunk', 1)
    instruct(probe, '')
    wait_for(lambda: node._instruction == '', 5, 'the empty instruction')
    time.sleep(0.3)  # a step that started before the empty instruction may still finish
    probe.clear('/openvla/action_chunk')
    for _ in range(20):  # one second of frames at 20 Hz
        probe.image(FRAME)
        time.sleep(0.05)
    assert probe.messages('/openvla/action_chunk') == []


def test_stale_frames_are_refused_not_acted_on(graph):
    node, probe = graph(FakeBackend(), max_image_age=0.2)
    instruct(probe, 'lift the block')
    old = node.get_clock().now() - rclpy.duration.Duration(seconds=5)
    feed_until(probe, '/openvla/policy_status', 1, stamp=old.to_msg())
    wait_for(lambda: node._counts['refused'] >= 2, 10, 'refused stale frames')
    assert probe.messages('/openvla/action_chunk') == []
    assert 'old' in node._message


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8'])
def test_bgr_and_rgb_frames_reach_the_model_as_the_same_rgb_pixels(graph, encoding):
    backend = FakeBackend()
    node, probe = graph(backend)
    instruct(probe, 'lift the block')
    pixels = FRAME if encoding == 'rgb8' else FRAME[:, :, ::-1].copy()

    def enough():
        probe.image(pixels, encoding=encoding)
        return len(backend.images) >= 1

    wait_for(enough, 10, 'a frame at the model')
    np.testing.assert_array_equal(backend.images[0], FRAME)


def test_malformed_images_are_counted_and_the_node_keeps_running(graph):
    backend = FakeBackend()
    node, probe = graph(backend)
    instruct(probe, 'lift the block')

    def bad_frames():
        probe.image(FRAME, encoding='32FC1')  # unsupported encoding
        return node._counts['refused'] >= 2

    wait_for(bad_frames, 10, 'refused bad frames')
    assert backend.images == []
    assert 'unsupported image encoding' in node._message
    feed_until(probe, '/openvla/action_chunk', 1)  # still alive and acting on good frames


def test_a_throwing_model_costs_a_step_not_the_node(graph):
    backend = FakeBackend(error=RuntimeError('CUDA out of memory'))
    node, probe = graph(backend)
    instruct(probe, 'lift the block')

    def failures():
        probe.image(FRAME)
        return node._counts['failed'] >= 2

    wait_for(failures, 10, 'counted model failures')
    assert probe.messages('/openvla/action_chunk') == []
    wait_for(
        lambda: any(
            s.state == PolicyStatus.STATE_ERROR for s in probe.messages('/openvla/policy_status')
        ),
        5,
        'an ERROR status',
    )
    assert any('CUDA out of memory' in s.message for s in probe.messages('/openvla/policy_status'))
    backend.error = None
    feed_until(probe, '/openvla/action_chunk', 1)  # recovers once the model does


def test_nan_actions_are_never_published(graph):
    backend = FakeBackend(actions=np.array([[np.nan, 0, 0, 0, 0, 0, 1.0]]))
    node, probe = graph(backend)
    instruct(probe, 'lift the block')

    def failures():
        probe.image(FRAME)
        return node._counts['failed'] >= 2

    wait_for(failures, 10, 'NaN actions refused')
    assert probe.messages('/openvla/action_chunk') == []
    assert 'unusable actions' in node._message


def test_the_tiny_openvla_model_drives_the_node_end_to_end(graph, tiny_model_dir):
    node, probe = graph(
        None,
        model=str(tiny_model_dir),
        device='cpu',
        dtype='float32',
        unnorm_key='bridge_orig',
        max_image_age=5.0,
    )
    wait_for(lambda: node._backend is not None, 60, 'the tiny model to load')
    instruct(probe, 'put the spoon on the towel')
    feed_until(probe, '/openvla/action_chunk', 1, timeout=60)
    chunk = probe.messages('/openvla/action_chunk')[0]
    assert chunk.unnorm_key == 'bridge_orig'
    assert len(chunk.tokens) == 7 and all(0 <= t < 32064 for t in chunk.tokens)
    assert np.all(np.isfinite(chunk.actions)) and len(chunk.actions) == 7
    assert chunk.inference_latency > 0


def test_an_unknown_unnorm_key_reports_the_known_keys_and_keeps_the_node_up(graph, tiny_model_dir):
    node, probe = graph(
        None, model=str(tiny_model_dir), device='cpu', dtype='float32', unnorm_key='not_a_dataset'
    )
    wait_for(lambda: node._state == PolicyStatus.STATE_LOAD_FAILED, 60, 'the load error')
    assert 'not_a_dataset' in node._message and 'bridge_orig' in node._message
