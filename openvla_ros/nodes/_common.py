"""Small helpers shared by the nodes: parameter declaration, time conversion, diagnostics."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, MISSING
import threading
import time
from typing import Any, TypeVar

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from openvla_ros.control.config import field_descriptions

__all__ = [
    'ESTOP_QOS',
    'Param',
    'declare_dataclass',
    'declare_params',
    'diagnostic',
    'run_node',
    'shutting_down',
    'spinning',
    'spun_node',
    'stamp_to_sec',
    'wait_until',
]

# The e-stop subscription: reliable, so that no e-stop message is dropped, and volatile, so that
# every reliable publisher matches it: `ros2 topic pub` (volatile) and latched e-stop buttons
# (transient local) alike. A transient-local subscription would refuse volatile publishers.
ESTOP_QOS = QoSProfile(
    depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE
)

_TYPES = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
}


@dataclass(frozen=True)
class Param:
    """One ROS parameter: name, default (its type is the parameter's type) and what it means."""

    name: str
    default: Any
    description: str
    choices: Sequence[str] = ()
    low: float | None = None
    high: float | None = None
    read_only: bool = True


def _descriptor(p: Param) -> ParameterDescriptor:
    text = p.description + (f' One of: {", ".join(p.choices)}.' if p.choices else '')
    desc = ParameterDescriptor(name=p.name, description=text, read_only=p.read_only)
    if isinstance(p.default, list):
        desc.type = ParameterType.PARAMETER_DOUBLE_ARRAY
    else:
        desc.type = _TYPES[type(p.default)]
    if p.low is not None and p.high is not None:
        if isinstance(p.default, float):
            desc.floating_point_range = [
                FloatingPointRange(from_value=float(p.low), to_value=float(p.high))
            ]
        elif isinstance(p.default, int) and not isinstance(p.default, bool):
            desc.integer_range = [
                IntegerRange(from_value=int(p.low), to_value=int(p.high), step=1)
            ]
    return desc


def declare_params(node: Node, params: Iterable[Param]) -> dict[str, Any]:
    """Declares each parameter with its descriptor and returns the values, checking choices.

    Raises:
        ValueError: a value outside its choices (the node cannot start with it).
    """
    values: dict[str, Any] = {}
    for p in params:
        value = node.declare_parameter(p.name, p.default, _descriptor(p)).value
        if p.choices and value not in p.choices:
            raise ValueError(f'parameter {p.name}={value!r} is not one of {list(p.choices)}')
        values[p.name] = value
    return values


def declare_dataclass(
    node: Node,
    prefix: str,
    cls: type,
    *,
    exclude: tuple[str, ...] = (),
    only: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Declares one parameter per field of a config dataclass (``prefix.field``, or ``field``
    when ``prefix`` is empty; only the fields in ``only`` when given) and returns a dict of them.

    The dataclass stays the one source of truth for names, defaults and validation; the comment
    beside each field (units first) becomes the parameter description. A field without a default
    (e.g. the workspace box) is declared without one: the profile must set it, or the node refuses
    to start.
    """
    out: dict[str, Any] = {}
    comments = field_descriptions(cls)
    for f in fields(cls):
        if not f.init or f.name in exclude or (only is not None and f.name not in only):
            continue
        name = f'{prefix}.{f.name}' if prefix else f.name
        text = comments.get(f.name) or f.name.replace('_', ' ')
        if f.default is MISSING and f.default_factory is MISSING:
            if 'tuple' not in str(f.type):
                raise TypeError(f'{cls.__name__}.{f.name}: only tuple fields may lack a default')
            desc = ParameterDescriptor(
                name=name,
                description=text,
                read_only=True,
                type=ParameterType.PARAMETER_DOUBLE_ARRAY,
            )
            value = node.declare_parameter(name, Parameter.Type.DOUBLE_ARRAY, desc).value
            if value is None:
                raise ValueError(
                    f'parameter {name} has no default and is not set: '
                    'give it in the profile YAML'
                )
            out[f.name] = list(value)
            continue
        if f.default is not MISSING:
            default = f.default
        elif f.default_factory is not MISSING:
            default = f.default_factory()
        else:
            continue
        if isinstance(default, tuple):
            default = [float(x) for x in default]
        if default is None or not (isinstance(default, (bool, int, float, str, list))):
            continue
        value = node.declare_parameter(
            name, default, _descriptor(Param(name, default, text))
        ).value
        out[f.name] = list(value) if isinstance(default, list) else value
    return out


def stamp_to_sec(stamp) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def diagnostic(
    node: Node, name: str, level: bytes | int, message: str, values: dict[str, Any]
) -> DiagnosticArray:
    """One DiagnosticArray with one status, stamped now."""
    array = DiagnosticArray()
    array.header.stamp = node.get_clock().now().to_msg()
    status = DiagnosticStatus(
        level=level if isinstance(level, bytes) else bytes([level]),
        name=name,
        message=message,
        hardware_id=node.get_fully_qualified_name(),
    )
    status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    array.status = [status]
    return array


def shutting_down(context: Any = None, wait: float = 1.0) -> bool:
    """Whether ``context`` (default: the global one) is shut down, or goes down within
    ``wait`` seconds (a shutdown started by SIGINT still in progress)."""
    deadline = time.monotonic() + wait
    while rclpy.ok(context=context):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """Standard main(): init, spin, and always clean up (Humble to Kilted)."""
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # SIGINT shuts the context down from rclpy's signal handler; a message taken in that
        # instant fails to convert ("Unable to convert call argument '0' to Python object"),
        # sometimes while rclpy.ok() is still true. That is the shutdown, not a fault: raise only
        # if the context is still up a moment later.
        if not shutting_down():
            raise
    finally:
        if node is not None:
            close = getattr(node, 'close', None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def wait_until(predicate: Callable[[], bool], timeout: float, period: float = 0.05) -> bool:
    """Polls predicate every `period` [s] (the nodes spin elsewhere) until it is true or `timeout`
    [s] has passed; returns its last value. A predicate may raise to give up early (a process
    died, a model failed to load)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return predicate()


@contextmanager
def spinning(executor: Executor, period: float = 0.05) -> Iterator[Executor]:
    """Spins executor on a daemon thread for the body (spin_once, `period` [s] at most each), so
    that the caller's thread may wait on what its nodes receive; stops and joins it on exit."""
    stop = threading.Event()
    thread = threading.Thread(
        target=lambda: [executor.spin_once(timeout_sec=period) for _ in iter(stop.is_set, True)],
        daemon=True,
    )
    thread.start()
    try:
        yield executor
    finally:
        stop.set()
        thread.join(5)


_N = TypeVar('_N', bound=Node)


@contextmanager
def spun_node(make: Callable[..., _N], period: float = 0.05, **init_kwargs: Any) -> Iterator[_N]:
    """One node, ``make(context=context)`` (e.g. a ``functools.partial`` of a Node class), in its
    own rclpy Context, spun on a background thread for the body (a probe next to node processes,
    tests, benchmarks); then the executor, the node and the context are shut down. init_kwargs go
    to ``rclpy.init`` (e.g. ``domain_id``)."""
    context = rclpy.Context()
    rclpy.init(context=context, **init_kwargs)
    executor = SingleThreadedExecutor(context=context)
    node = None
    try:
        node = make(context=context)
        executor.add_node(node)
        with spinning(executor, period):
            yield node
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)
