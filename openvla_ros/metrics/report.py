"""Episode reports: the camera video and a plot of commanded vs reached positions and latencies."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ['tracking_error', 'write_plot', 'write_video']


def write_video(frames: list[np.ndarray], path: str | Path, fps: float) -> Path:
    """Writes frames as MP4 (imageio-ffmpeg); falls back to GIF if no encoder works.

    Raises:
        ValueError: no frames.
    """
    import imageio.v2 as imageio  # noqa: PLC0415

    if not frames:
        raise ValueError('no camera frames to write: did the camera publish?')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        imageio.mimsave(path.with_suffix('.mp4'), frames, fps=fps, macro_block_size=1)
        return path.with_suffix('.mp4')
    except (ImportError, OSError, RuntimeError, ValueError):
        imageio.mimsave(path.with_suffix('.gif'), frames, duration=1.0 / fps, loop=0)
        return path.with_suffix('.gif')


def _series(samples: list[tuple[float, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not samples:
        return np.zeros(0), np.zeros((0, 3))
    times = np.array([t for t, _ in samples])
    values = np.array([v for _, v in samples])
    return times, values


def tracking_error(
    commanded: list[tuple[float, np.ndarray]], reached: list[tuple[float, np.ndarray]]
) -> np.ndarray:
    """Distance [m] between each reached position and the commanded one at that time."""
    tc, vc = _series(commanded)
    tr, vr = _series(reached)
    if len(tc) == 0 or len(tr) == 0:
        return np.zeros(0)
    idx = np.clip(np.searchsorted(tc, tr, side='right') - 1, 0, len(tc) - 1)
    return np.linalg.norm(vr - vc[idx], axis=1)


def write_plot(
    commanded: list[tuple[float, np.ndarray]],
    reached: list[tuple[float, np.ndarray]],
    latencies: list[float],
    path: str | Path,
    title: str,
) -> Path:
    """Plots x, y, z commanded vs reached over time, and the policy latencies, into a PNG."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # noqa: PLC0415

    tc, vc = _series(commanded)
    tr, vr = _series(reached)
    fig, axes = plt.subplots(4, 1, figsize=(8, 9), sharex=False)
    for i, axis in enumerate('xyz'):
        ax = axes[i]
        ax.plot(tc, vc[:, i] if len(vc) else [], label='commanded (safe target)', lw=1.5)
        ax.plot(
            tr, vr[:, i] if len(vr) else [], label='reached (FK of joint states)', lw=1.0, ls='--'
        )
        ax.set_ylabel(f'{axis} [m]')
        ax.grid(alpha=0.3)
    axes[0].legend(loc='best', fontsize=8)
    axes[0].set_title(title)
    axes[2].set_xlabel('time [s]')
    ax = axes[3]
    if latencies:
        ax.plot(np.arange(len(latencies)), np.asarray(latencies) * 1e3, marker='.', lw=0.8)
        ax.set_xlabel('prediction #')
        ax.set_ylabel('policy latency [ms]')
    else:
        ax.text(0.5, 0.5, 'no model latencies (scripted expert)', ha='center', va='center')
        ax.set_axis_off()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
