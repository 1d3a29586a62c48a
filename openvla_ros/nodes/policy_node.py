"""policy_node: camera + instruction -> OpenVLA -> ActionChunk.

Keeps only the newest frame, runs inference on a worker thread (the executor never blocks), refuses
frames older than ``max_image_age``, and stamps every chunk with the time of the image it came
from. A bad frame, a model error or a non-finite action costs one step (logged, counted, in the
status), never the node.
"""

from __future__ import annotations

from collections import deque
import math
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from openvla_ros.backends import BackendConfig, BACKENDS, make_backend, PolicyBackend
from openvla_ros.control.rate_limiter import SLOT_FRACTION
from openvla_ros.metrics.latency import LatencyStats
from openvla_ros.model.choices import DECODE_MODES, DTYPE_NAMES, QUANTIZE_MODES
from openvla_ros.msg import ActionChunk, PolicyStatus
from openvla_ros.msgio.images import (
    compressed_to_rgb,
    ImageDecodeError,
    jpeg_roundtrip,
    raw_to_rgb,
)
from openvla_ros.msgio.topics import (
    ACTION_CHUNK,
    DIAGNOSTICS,
    IMAGE,
    IMAGE_COMPRESSED,
    INSTRUCTION,
    POLICY_STATUS,
)
from openvla_ros.nodes._common import declare_params, diagnostic, Param, run_node, stamp_to_sec

PARAMS = (
    Param(
        'backend',
        'local',
        'Where actions come from: this process or an openvla-ros serve server.',
        choices=BACKENDS,
    ),
    Param('model', 'openvla/openvla-7b', 'Checkpoint directory or hub id (local backend).'),
    Param('device', 'cuda', 'Torch device for the local backend (cpu, cuda, cuda:1, ...).'),
    Param('dtype', 'bfloat16', 'Compute precision (auto: bfloat16 on CUDA, float32 on the CPU).',
          choices=(*DTYPE_NAMES, 'auto')),
    Param(
        'quantize',
        'none',
        'Weight quantization of the language model: int8/int4 weight-only (core PyTorch), '
        '8bit/4bit (bitsandbytes), auto (int4 on CUDA, none on the CPU).',
        choices=QUANTIZE_MODES,
    ),
    Param('adapter', '', 'LoRA adapter directory to load on top of the model ("" = none).'),
    Param('merge_adapter', True, 'Merge the LoRA adapter into the weights (faster inference).'),
    Param(
        'unnorm_key',
        '',
        'Dataset statistics key used to un-normalize actions ("" = the only one).',
    ),
    Param(
        'center_crop',
        False,
        'Center-crop 90 % of the area first (models trained with random crops).',
    ),
    Param(
        'decode',
        'fast',
        'Decoding path: static-cache loop (fast), plain HF generate (reference), or CUDA graphs '
        '(graph; eager on the CPU).',
        choices=DECODE_MODES,
    ),
    Param('server_url', 'http://127.0.0.1:8000', 'Policy server URL (remote backend).'),
    Param('server_token', '', 'Bearer token for the policy server ("" = none).'),
    Param('server_timeout', 1.0, 'Timeout of one remote request [s].', low=0.01, high=60.0),
    Param(
        'server_retries',
        1,
        'Retries of a failed remote request before the step is dropped.',
        low=0,
        high=10,
    ),
    Param(
        'policy_rate',
        5.0,
        'Maximum prediction rate [Hz]; also sets the chunk dt = 1/rate.',
        low=0.1,
        high=100.0,
    ),
    Param(
        'max_image_age',
        0.5,
        'Frames older than this are refused, not acted on [s].',
        low=0.01,
        high=10.0,
    ),
    Param(
        'jpeg_roundtrip',
        False,
        'JPEG-encode/decode each frame first (the BridgeData evaluation does).',
    ),
    Param(
        'image_transport',
        'raw',
        'Subscribe to sensor_msgs/Image or CompressedImage on ~/image.',
        choices=('raw', 'compressed'),
    ),
    Param('action_space', 'bridge_orig', 'Action semantics written into each chunk.'),
    Param(
        'gripper_convention', 0, 'ActionChunk GRIPPER_CONVENTION_* of the model.', low=0, high=2
    ),
    Param('base_frame', 'base_link', 'frame_id of the chunks (the arm base frame).'),
    Param(
        'status_period', 1.0, 'Period of PolicyStatus and diagnostics [s].', low=0.05, high=60.0
    ),
)


class PolicyNode(Node):
    """Runs the policy on the newest camera frame for the current instruction."""

    def __init__(
        self,
        *,
        node_name: str = 'policy_node',
        backend: PolicyBackend | None = None,
        **node_kwargs,
    ) -> None:
        super().__init__(node_name, **node_kwargs)
        self.p = declare_params(self, PARAMS)
        self._lock = threading.Condition()
        self._frame = None  # newest (stamp_sec, msg) not yet used
        self._last_stamp = -math.inf  # image time of the last frame used
        self._instruction = ''
        self._backend: PolicyBackend | None = backend
        self._stop = False
        self._state = PolicyStatus.STATE_LOADING if backend is None else PolicyStatus.STATE_IDLE
        self._message = 'loading model' if backend is None else 'ready'
        self._counts = {'predictions': 0, 'refused': 0, 'failed': 0}
        self._stats = LatencyStats()
        # (frame received -> chunk published [s], model latency [s]) of recent predictions
        self.path_latencies: deque[tuple[float, float]] = deque(maxlen=1000)

        if self.p['image_transport'] == 'raw':
            self.create_subscription(Image, IMAGE, self.on_image, qos_profile_sensor_data)
        else:
            self.create_subscription(
                CompressedImage, IMAGE_COMPRESSED, self.on_image, qos_profile_sensor_data
            )
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(String, INSTRUCTION, self.on_instruction, reliable)
        self._chunk_pub = self.create_publisher(ActionChunk, ACTION_CHUNK, reliable)
        self._status_pub = self.create_publisher(PolicyStatus, POLICY_STATUS, reliable)
        self._diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS, 10)
        self.create_timer(self.p['status_period'], self.on_status_timer)
        self._worker = threading.Thread(target=self._run, name='policy_worker', daemon=True)
        self._worker.start()

    @property
    def ready(self) -> bool:
        """True once the backend is loaded and predictions can run."""
        return self._backend is not None

    @property
    def state(self) -> int:
        """The PolicyStatus STATE_* of the node."""
        return self._state

    @property
    def load_failed(self) -> bool:
        """True once loading the backend failed (STATE_LOAD_FAILED; final, see message)."""
        return self._state == PolicyStatus.STATE_LOAD_FAILED

    @property
    def message(self) -> str:
        """The last status message (e.g. why loading failed)."""
        return self._message

    # --- callbacks (short: they only hand data to the worker) ---
    def on_image(self, msg: Image | CompressedImage) -> None:
        with self._lock:
            self._frame = (stamp_to_sec(msg.header.stamp), msg, time.perf_counter())
            self._lock.notify()

    def on_instruction(self, msg: String) -> None:
        text = msg.data.strip()
        with self._lock:
            changed = text != self._instruction
            self._instruction = text
            self._lock.notify()
        if changed:
            self.get_logger().info(
                f'instruction: {text!r}' if text else 'empty instruction: stopping'
            )
            self._set_state(
                PolicyStatus.STATE_RUNNING if text else PolicyStatus.STATE_IDLE,
                f'instruction {text!r}' if text else 'stopped by an empty instruction',
            )

    def on_status_timer(self) -> None:
        self._publish_status()

    # --- worker thread ---
    def _run(self) -> None:
        if self._backend is None and not self._load_backend():
            return
        period = 1.0 / self.p['policy_rate']
        next_time = 0.0
        while True:
            with self._lock:
                while not self._stop and not self._next_frame_ready(period):
                    self._lock.wait(timeout=0.1)
                if self._stop:
                    return
                stamp, msg, received = self._frame
                self._frame = None
                instruction = self._instruction
            self._sleep_until(next_time)
            next_time = self._pacing_now() + period
            self._step(stamp, msg, instruction, received)

    def _pacing_now(self) -> float:
        """[s] The clock that paces predictions: simulated time under use_sim_time (sim:=true),
        else time.monotonic() as on the robot. Latencies stay wall-clock either way."""
        clock = self.get_clock()
        if clock.ros_time_is_active:
            return clock.now().nanoseconds * 1e-9
        return time.monotonic()

    def _sleep_until(self, when: float) -> None:
        if not self.get_clock().ros_time_is_active:
            wait = when - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            return
        while not self._stop and self._pacing_now() < when:
            time.sleep(0.005)  # simulated time advances at the simulator's pace

    def _next_frame_ready(self, period: float) -> bool:
        """An instruction and a frame at least one action slot newer than the last one used: a
        prediction from an older frame would land in a time slot the limiter already executed."""
        if not self._instruction or self._frame is None:
            return False
        return self._frame[0] >= self._last_stamp + SLOT_FRACTION * period

    def _load_backend(self) -> bool:
        p = self.p
        config = BackendConfig(
            kind=p['backend'],
            model=p['model'],
            device=p['device'],
            dtype=p['dtype'],
            quantize=p['quantize'],
            adapter=p['adapter'],
            merge_adapter=p['merge_adapter'],
            center_crop=p['center_crop'],
            decode=p['decode'],
            unnorm_key=p['unnorm_key'],
            server_url=p['server_url'],
            server_token=p['server_token'],
            timeout_s=p['server_timeout'],
            retries=p['server_retries'],
        )
        if config.kind == 'remote':
            self.get_logger().info(f'connecting to the policy server {config.server_url}')
        else:
            self.get_logger().info(
                f'loading policy {config.model!r} '
                f'({config.dtype}, quantize={config.quantize}, device={config.device})'
            )
        try:
            self._backend = make_backend(config)
        except Exception as exc:  # noqa: BLE001 - any load failure is reported, the node stays up
            self.get_logger().error(f'could not load the policy: {exc}')
            self._set_state(PolicyStatus.STATE_LOAD_FAILED, f'could not load the policy: {exc}')
            return False
        self.get_logger().info(f'policy ready (unnorm_key={self._backend.unnorm_key!r})')
        with self._lock:
            running = bool(self._instruction)
        self._set_state(
            PolicyStatus.STATE_RUNNING if running else PolicyStatus.STATE_IDLE, 'ready'
        )
        return True

    def _step(self, stamp: float, msg, instruction: str, received: float) -> None:
        age = self.get_clock().now().nanoseconds * 1e-9 - stamp
        if age > self.p['max_image_age']:
            self._refuse(f'frame is {age:.3f} s old (max_image_age {self.p["max_image_age"]} s)')
            return
        try:
            rgb = self._decode(msg)
        except ImageDecodeError as exc:
            self._refuse(f'cannot use frame: {exc}')
            return
        try:
            result = self._backend.predict(rgb, instruction)
        except Exception as exc:  # noqa: BLE001 - a model error costs this step only
            self._fail(f'policy error: {type(exc).__name__}: {exc}')
            return
        actions = np.asarray(result.actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[0] < 1 or not np.all(np.isfinite(actions)):
            self._fail(
                f'policy returned unusable actions (shape {actions.shape}, '
                f'finite={bool(np.all(np.isfinite(actions)))}): no action published'
            )
            return
        with self._lock:
            still_current = self._instruction == instruction
        if not still_current:
            return  # the instruction changed (or stopped) while we were thinking
        self._publish_chunk(msg.header.stamp, instruction, actions, result)
        # In-node path: frame callback -> chunk published, and the model's share of it.
        self.path_latencies.append((time.perf_counter() - received, float(result.latency_s)))
        self._last_stamp = stamp  # frames refused or failed on do not use up a time slot
        if self._state != PolicyStatus.STATE_RUNNING:
            self._set_state(PolicyStatus.STATE_RUNNING, 'predicting')

    def _decode(self, msg) -> np.ndarray:
        if isinstance(msg, CompressedImage):
            rgb = compressed_to_rgb(msg.format, bytes(msg.data))
        else:
            rgb = self._raw_to_rgb(msg)
        return jpeg_roundtrip(rgb) if self.p['jpeg_roundtrip'] else rgb

    @staticmethod
    def _raw_to_rgb(msg: Image) -> np.ndarray:
        try:
            from cv_bridge import CvBridge  # noqa: PLC0415 - optional on ROS machines
        except ImportError:
            return raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data)
        try:
            return CvBridge().imgmsg_to_cv2(msg, desired_encoding='rgb8')
        except Exception as exc:  # noqa: BLE001 - cv_bridge raises its own error types
            raise ImageDecodeError(str(exc)) from None

    def _publish_chunk(self, stamp, instruction: str, actions: np.ndarray, result) -> None:
        chunk = ActionChunk()
        chunk.header.stamp = stamp
        chunk.header.frame_id = self.p['base_frame']
        chunk.instruction = instruction
        chunk.model = self._backend.model_name
        chunk.unnorm_key = result.unnorm_key
        chunk.action_space = self.p['action_space']
        chunk.dt = 1.0 / self.p['policy_rate']
        chunk.num_actions, chunk.action_dim = (int(n) for n in actions.shape)
        chunk.actions = actions.ravel().tolist()
        chunk.gripper_convention = self.p['gripper_convention']
        chunk.tokens = [int(t) for t in result.tokens]
        chunk.inference_latency = float(result.latency_s)
        self._chunk_pub.publish(chunk)
        self._stats.add(result.latency_s, time.monotonic())
        self._counts['predictions'] += 1

    def _refuse(self, reason: str) -> None:
        self._counts['refused'] += 1
        self.get_logger().warning(reason, throttle_duration_sec=2.0)
        self._set_state(PolicyStatus.STATE_RUNNING, reason)

    def _fail(self, reason: str) -> None:
        self._counts['failed'] += 1
        self.get_logger().error(reason, throttle_duration_sec=2.0)
        self._set_state(PolicyStatus.STATE_ERROR, reason)

    def _set_state(self, state: int, message: str) -> None:
        with self._lock:
            if self._state == PolicyStatus.STATE_LOAD_FAILED:
                return  # final: an instruction after a failed load must not report RUNNING
            self._state, self._message = state, message
        self._publish_status()

    def _publish_status(self) -> None:
        if not rclpy.ok(context=self.context):
            return
        s = PolicyStatus()
        s.header.stamp = self.get_clock().now().to_msg()
        s.state = self._state
        s.model = self.p['model']
        s.backend = self.p['backend']
        s.instruction = self._instruction
        s.message = self._message
        s.predictions = self._counts['predictions']
        s.refused = self._counts['refused']
        s.failed = self._counts['failed']
        s.latency_p50 = self._stats.percentile(50)
        s.latency_p90 = self._stats.percentile(90)
        s.rate_hz = self._stats.rate_hz()
        self._status_pub.publish(s)
        level = {
            PolicyStatus.STATE_ERROR: DiagnosticStatus.ERROR,
            PolicyStatus.STATE_LOAD_FAILED: DiagnosticStatus.ERROR,
            PolicyStatus.STATE_LOADING: DiagnosticStatus.WARN,
        }.get(s.state, DiagnosticStatus.OK)
        self._diag_pub.publish(
            diagnostic(
                self,
                'openvla_ros: policy',
                level,
                s.message,
                {
                    'model': s.model,
                    'backend': s.backend,
                    'instruction': s.instruction,
                    'predictions': s.predictions,
                    'refused': s.refused,
                    'failed': s.failed,
                    'latency_p50 [s]': _fmt(s.latency_p50),
                    'latency_p90 [s]': _fmt(s.latency_p90),
                    'rate [Hz]': _fmt(s.rate_hz),
                },
            )
        )

    def close(self) -> None:
        """Stops the worker thread and releases the model (idempotent)."""
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join(timeout=5.0)
        if self._backend is not None:
            self._backend.close()


def _fmt(x: float) -> str:
    return 'n/a' if math.isnan(x) else f'{x:.4f}'


def main(args: list[str] | None = None) -> int:
    return run_node(PolicyNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
