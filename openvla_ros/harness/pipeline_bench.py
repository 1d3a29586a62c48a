"""What the ROS path adds to the model's own latency: image message in -> ActionChunk out.

A probe publishes one camera frame at a time to a real policy node (real rclpy, DDS on this
machine)
and waits for its chunk. The chunk carries the model's own latency (``inference_latency``, measured
inside the backend around preprocess + model + decode). Two overheads are reported:

- in the node: from the image callback to the chunk's publication, minus the model (the worker
  hand-off, decoding the message, building and publishing the chunk);
- round trip: from the probe's publish to its receipt of the chunk, minus the model; it adds the
  DDS transport of the frame (about 1 MB for 640x480 rgb8) and of the chunk.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String

from openvla_ros.harness.runner import private_domain_id
from openvla_ros.msg import ActionChunk, PolicyStatus
from openvla_ros.msgio.topics import ACTION_CHUNK, INSTRUCTION
from openvla_ros.nodes._common import spinning, wait_until
from openvla_ros.nodes.policy_node import PolicyNode

__all__ = ['measure_pipeline_overhead']


def measure_pipeline_overhead(
    model: str,
    *,
    unnorm_key: str = '',
    n: int = 30,
    warmup: int = 3,
    device: str = 'cpu',
    dtype: str = 'float32',
    image_size: tuple[int, int] = (480, 640),
    timeout: float = 60.0,
) -> dict:
    """Round trips through a policy node; returns p50/p90 of round trip, model and overhead [s].

    Raises:
        RuntimeError: the model did not load, or a chunk did not come back within timeout.
    """
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=private_domain_id())
    executor = SingleThreadedExecutor(context=context)
    policy = PolicyNode(
        context=context,
        cli_args=['--ros-args', '-r', 'image:=/bench/image'],
        parameter_overrides=[
            rclpy.parameter.Parameter('model', value=model),
            rclpy.parameter.Parameter('unnorm_key', value=unnorm_key),
            rclpy.parameter.Parameter('device', value=device),
            rclpy.parameter.Parameter('dtype', value=dtype),
            rclpy.parameter.Parameter('policy_rate', value=100.0),
            rclpy.parameter.Parameter('max_image_age', value=10.0),
        ],
    )
    probe = Node('pipeline_probe', context=context)
    got = threading.Event()
    chunks: list[tuple[float, ActionChunk]] = []

    def on_chunk(msg: ActionChunk) -> None:
        chunks.append((time.perf_counter(), msg))
        got.set()

    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    probe.create_subscription(ActionChunk, ACTION_CHUNK, on_chunk, reliable)
    image_pub = probe.create_publisher(Image, '/bench/image', qos_profile_sensor_data)
    instruction_pub = probe.create_publisher(String, INSTRUCTION, reliable)
    for node in (policy, probe):
        executor.add_node(node)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (*image_size, 3), dtype=np.uint8)
    try:
        with spinning(executor, period=0.01):
            try:

                def loaded_or_failed() -> bool:
                    return policy.ready or policy.load_failed

                if not wait_until(loaded_or_failed, timeout) or not policy.ready:
                    raise RuntimeError(f'policy did not load: {policy.message}')
                def matched() -> bool:
                    return (instruction_pub.get_subscription_count() > 0
                            and image_pub.get_subscription_count() > 0)

                if not wait_until(matched, timeout, period=0.01):
                    raise RuntimeError(f'the policy node did not subscribe within {timeout} s')
                instruction_pub.publish(String(data='put the spoon on the towel'))
                running = PolicyStatus.STATE_RUNNING
                if not wait_until(lambda: policy.state == running, timeout, period=0.01):
                    raise RuntimeError(f'the policy did not start running within {timeout} s')
                round_trips, model_times = [], []
                for i in range(warmup + n):
                    got.clear()
                    msg = Image()
                    msg.header.stamp = probe.get_clock().now().to_msg()
                    msg.height, msg.width = image_size
                    msg.encoding, msg.step = 'rgb8', image_size[1] * 3
                    msg.data = frame.tobytes()
                    sent = time.perf_counter()
                    image_pub.publish(msg)
                    if not got.wait(timeout):
                        raise RuntimeError(f'no ActionChunk within {timeout} s of frame {i}')
                    received, chunk = chunks[-1]
                    if i >= warmup:
                        round_trips.append(received - sent)
                        model_times.append(chunk.inference_latency)
                    time.sleep(0.02)  # let the worker go back to waiting
                rt, mt = np.asarray(round_trips), np.asarray(model_times)
                overhead = rt - mt
                in_node = np.asarray(
                    [path - model for path, model in list(policy.path_latencies)[warmup:]]
                )
                return {
                    'n': n,
                    'image': f'{image_size[1]}x{image_size[0]} rgb8',
                    'node_overhead_p50_s': float(np.median(in_node)),
                    'node_overhead_p90_s': float(np.percentile(in_node, 90)),
                    'round_trip_p50_s': float(np.median(rt)),
                    'round_trip_p90_s': float(np.percentile(rt, 90)),
                    'model_p50_s': float(np.median(mt)),
                    'model_p90_s': float(np.percentile(mt, 90)),
                    'overhead_p50_s': float(np.median(overhead)),
                    'overhead_p90_s': float(np.percentile(overhead, 90)),
                }
            finally:
                policy.close()
    finally:
        executor.shutdown()
        policy.destroy_node()
        probe.destroy_node()
        rclpy.try_shutdown(context=context)
