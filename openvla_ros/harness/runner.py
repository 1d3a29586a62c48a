"""Runs the node graph of a profile inside this process (tests, ``openvla-ros demo``,
``evaluate``).

The same ``openvla_ros.bringup.graph.build_graph`` the launch files use decides which nodes run,
with which parameters (the profile YAML, then the graph's overrides, then the caller's) and
remappings. All
nodes share one private rclpy Context and one single-threaded executor spun on a background thread;
the policy's inference has its own worker thread, so the executor never waits on the model.
"""

from __future__ import annotations

from collections.abc import Callable
import importlib
import os
import threading
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from openvla_ros.bringup.graph import build_graph, GraphArgs, NodeSpec
from openvla_ros.bringup.profiles import load_profile, Profile

__all__ = ['GraphRunner', 'private_domain_id', 'to_parameters']


def private_domain_id() -> int:
    """A DDS domain for a self-contained run (1-100, from the process id): a demo's /instruction
    must never reach a robot on the default domain, nor a second demo on this machine."""
    return 1 + os.getpid() % 100


def to_parameters(values: dict[str, Any]) -> list[Parameter]:
    """Python values -> rclpy Parameters with the types a YAML parameter file would give."""
    out = []
    for name, value in values.items():
        if isinstance(value, (list, tuple)):
            if all(isinstance(v, bool) for v in value):
                value = [bool(v) for v in value]
            elif all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                value = [int(v) for v in value]
            elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                value = [float(v) for v in value]
            else:
                value = [str(v) for v in value]
        out.append(Parameter(name, value=value))
    return out


class GraphRunner:
    """Starts the graph's nodes in this process; a context manager.

    Args:
        args: the launch arguments.
        overrides: per node name, parameters applied on top of the profile and the graph.
        node_kwargs: per node name, extra constructor arguments (e.g. ``backend=`` for the policy
        node).
        profile: an already loaded profile (default: ``load_profile(args.profile)``).
        domain_id: the DDS domain of this graph (default: ``ROS_DOMAIN_ID``, else 0); a demo
            uses a private one so that it never meets a real robot's topics.
    """

    def __init__(
        self,
        args: GraphArgs,
        *,
        overrides: dict[str, dict[str, Any]] | None = None,
        node_kwargs: dict[str, dict[str, Any]] | None = None,
        profile: Profile | None = None,
        domain_id: int | None = None,
    ) -> None:
        self.args = args
        self.profile = profile or load_profile(args.profile)
        self.specs: list[NodeSpec] = build_graph(args, self.profile)
        self._overrides = overrides or {}
        self._node_kwargs = node_kwargs or {}
        self.context = rclpy.Context()
        self.domain_id = domain_id
        self.nodes: dict[str, Node] = {}
        self.executor: SingleThreadedExecutor | None = None
        self._stopping = threading.Event()
        self._spinners: list[_Spinner] = []

    def parameters_of(self, spec: NodeSpec) -> dict[str, Any]:
        """A node's parameters: profile YAML, then the graph's, then the caller's overrides."""
        return {
            **self.profile.node_params(spec.name),
            **spec.parameters,
            **self._overrides.get(spec.name, {}),
        }

    def start(self) -> GraphRunner:
        if self.domain_id is None:
            rclpy.init(context=self.context)
        else:
            rclpy.init(context=self.context, domain_id=self.domain_id)
        try:
            for spec in self.specs:
                self.nodes[spec.name] = self._create(spec)
            self.executor = SingleThreadedExecutor(context=self.context)
            for name, node in self.nodes.items():
                if name != 'sim':
                    self.executor.add_node(node)
            self._spinners.append(_Spinner(self.executor, self._stopping, 'graph_runner'))
            if 'sim' in self.nodes:
                # The simulator steps physics on its own executor thread, so that a slow callback
                # elsewhere never delays the simulated robot's joint states.
                sim_executor = SingleThreadedExecutor(context=self.context)
                sim_executor.add_node(self.nodes['sim'])
                self._spinners.append(_Spinner(sim_executor, self._stopping, 'sim_runner'))
        except BaseException:
            self.stop()
            raise
        return self

    def add_node(self, factory: Callable[..., Node], name: str, **kwargs: Any) -> Node:
        """Adds a helper node (a test probe, the demo's recorder) to the running executor.

        ``factory(name, context=..., **kwargs)`` must build the node.
        """
        node = factory(name, context=self.context, **kwargs)
        self.nodes[name] = node
        if self.executor is not None:
            self.executor.add_node(node)
        return node

    def _create(self, spec: NodeSpec) -> Node:
        cls = getattr(importlib.import_module(spec.module), spec.class_name)
        cli_args = ['--ros-args']
        for src, dst in spec.remappings:
            cli_args += ['-r', f'{src}:={dst}']
        return cls(
            node_name=spec.name,
            context=self.context,
            cli_args=cli_args,
            parameter_overrides=to_parameters(self.parameters_of(spec)),
            **self._node_kwargs.get(spec.name, {}),
        )

    def stop(self) -> None:
        """Stops every node (closed on the thread that spins it), then the context; idempotent."""
        self._stopping.set()
        for spinner in self._spinners:
            spinner.join()
        self._spinners.clear()
        self.executor = None
        for node in self.nodes.values():
            close = getattr(node, 'close', None)
            if close is not None:
                close()  # nodes that were never spun (start failed); a second close is a no-op
            node.destroy_node()
        self.nodes.clear()
        rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> GraphRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Spinner:
    """Spins one executor on its own thread; on stop, closes that executor's nodes on that thread
    (a node's resources, e.g. a GL context, may belong to the thread that made them)."""

    def __init__(
        self, executor: SingleThreadedExecutor, stopping: threading.Event, name: str
    ) -> None:
        self.executor = executor
        self._stopping = stopping
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopping.is_set() and rclpy.ok(context=self.executor.context):
                self.executor.spin_once(timeout_sec=0.05)
        finally:
            for node in self.executor.get_nodes():
                close = getattr(node, 'close', None)
                if close is not None:
                    close()

    def join(self) -> None:
        self._thread.join(timeout=15.0)
        self.executor.shutdown()
