"""Fast DDS shared memory large enough for a camera frame, for the node processes that publish one.

Fast DDS (the default RMW from Humble to Kilted) carries a message between processes on one
machine through a shared-memory segment of 512 KiB by default. A 640x480 rgb8 Image is 0.9 MB:
it does not fit, goes out as UDP fragments into a 208 KiB socket buffer, and with the camera's
best-effort QoS most frames are lost whole (measured: 2 of 178 frames arrived at 10 Hz on the
2-core test VM, idle or loaded). The safety monitor then holds for a stale camera and the policy
starves. Only the publisher's segment matters, so the processes that publish frames (the
simulator) get a profile with a larger segment; subscribers, and a user's own DDS configuration,
are left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
import os
from pathlib import Path
import tempfile

__all__ = ['FASTDDS_PROFILE_VARIABLES', 'SEGMENT_BYTES', 'large_frame_env', 'profile_xml']

# Fast DDS 2.x reads the first, 3.x the second name; either one set means the user chose.
FASTDDS_PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')
_FASTDDS_RMWS = ('', 'rmw_fastrtps_cpp', 'rmw_fastrtps_dynamic_cpp')
_FASTDDS2_DISTROS = ('humble', 'iron', 'jazzy')
# [B] segment: a few 1920x1080 rgb8 frames (6.2 MB each, the simulator's largest) in flight.
SEGMENT_BYTES = 32 * 1024 * 1024
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def profile_xml(segment_bytes: int = SEGMENT_BYTES, max_message: int = MAX_MESSAGE_BYTES) -> str:
    """A default participant profile: the built-in transports plus a larger shared memory."""
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>openvla_ros_large_frames_shm</transport_id>
        <type>SHM</type>
        <segment_size>{int(segment_bytes)}</segment_size>
        <maxMessageSize>{int(max_message)}</maxMessageSize>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="openvla_ros_large_frames" is_default_profile="true">
      <rtps>
        <userTransports><transport_id>openvla_ros_large_frames_shm</transport_id></userTransports>
        <useBuiltinTransports>true</useBuiltinTransports>
      </rtps>
    </participant>
  </profiles>
</dds>
"""


def large_frame_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Extra environment for a process that publishes camera frames: the Fast DDS profile
    variable set to a profile written once under the temporary directory; {} when the RMW is not
    Fast DDS or the user already set a Fast DDS profile file."""
    env = os.environ if environ is None else environ
    if env.get('RMW_IMPLEMENTATION', '') not in _FASTDDS_RMWS:
        return {}
    if any(env.get(name) for name in FASTDDS_PROFILE_VARIABLES):
        return {}
    text = profile_xml()
    path = Path(tempfile.gettempdir()) / f'openvla_ros_fastdds_large_frames_{os.getuid()}.xml'
    if not path.is_file() or path.read_text() != text:
        tmp = path.with_suffix(f'.{os.getpid()}.tmp')
        tmp.write_text(text)
        tmp.replace(path)
    # Fast DDS 2.x (Humble, Jazzy) reads only the old name; 3.x warns that it is deprecated
    names = (
        FASTDDS_PROFILE_VARIABLES
        if env.get('ROS_DISTRO') in _FASTDDS2_DISTROS
        else ('FASTDDS_DEFAULT_PROFILES_FILE',)
    )
    return {name: str(path) for name in names}
