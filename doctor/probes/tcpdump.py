"""Bounded packet captures with tcpdump, on the loopback interface or a lab's own veth.

A capture runs in the background while traffic flows: `start_capture`
starts tcpdump with a packet count (`-c`) on the given TCP ports of `lo`,
and the caller stops it after at most a few seconds. `read_capture` then
decodes the pcap file into text through the runner, and that text is the
observation. tcpdump needs CAP_NET_RAW; without it the capture fails, and
the failure is what the observation reports.
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

from doctor.model import Observation
from doctor.runner import BackgroundProcess, Runner

logger = logging.getLogger(__name__)

PROBE_ID = "tcpdump.loopback"
DEFAULT_MAX_PACKETS = 2000
# Headers only: enough for flags, sequence numbers and the TLS record type.
SNAPSHOT_BYTES = 128
LOOPBACK_INTERFACE = "lo"


def port_filter(ports: Sequence[int]) -> str:
    """Return the BPF filter for TCP traffic on `ports`; raises ValueError for no port or a bad one."""
    if not ports:
        raise ValueError("a capture needs at least one port to filter on")
    for port in ports:
        if not 0 < int(port) < 65536:
            raise ValueError(f"port {port!r} is invalid; use 1-65535")
    return "tcp and (" + " or ".join(f"port {int(port)}" for port in sorted(set(ports))) + ")"


def start_capture(
    pcap_path: str | os.PathLike[str],
    ports: Sequence[int],
    *,
    log_path: str | os.PathLike[str],
    max_packets: int = DEFAULT_MAX_PACKETS,
    interface: str = LOOPBACK_INTERFACE,
    runner: Runner | None = None,
) -> BackgroundProcess:
    """Start tcpdump on `interface` (the loopback by default) writing at most `max_packets` packets to `pcap_path`.

    The caller must `stop()` the returned process. Raises FileNotFoundError
    when tcpdump is not installed.
    """
    if max_packets <= 0:
        raise ValueError(f"max_packets must be positive, not {max_packets!r}")
    argv = ["tcpdump", "-i", interface, "-nn", "-U", "-s", str(SNAPSHOT_BYTES),
            "-c", str(max_packets), "-w", os.fspath(pcap_path), port_filter(ports)]
    runner = runner or Runner.from_environment()
    return runner.start(argv, name="tcpdump", log_path=log_path)


def read_capture(
    pcap_path: str | os.PathLike[str],
    *,
    target: str = "",
    timeout: float = 10.0,
    runner: Runner | None = None,
) -> Observation:
    """Decode a pcap file as text, one packet a line with absolute times."""
    argv = ["tcpdump", "-nn", "-tttt", "-r", os.fspath(pcap_path)]
    runner = runner or Runner.from_environment()
    return runner.run(argv, probe_id=PROBE_ID, timeout=timeout, target=target or LOOPBACK_INTERFACE)
