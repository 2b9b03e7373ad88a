"""Start the replay API server with the recorded sidecar OOM incident, for demos (`make replay`).

Writes a kubeconfig, prints how to point kubectl and Mesh Doctor at it, and
serves until interrupted. The server binds to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from tests.replay.scenario import NAMESPACE, oom_incident
from tests.replay.server import ReplayServer


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.replay", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free port)")
    parser.add_argument("--kubeconfig", type=Path, default=Path(".replay-kubeconfig"),
                        help="where to write the kubeconfig (default: .replay-kubeconfig)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to hold back every answer")
    options = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ReplayServer(oom_incident(), port=options.port, delay_s=options.delay) as server:
        kubeconfig = server.write_kubeconfig(options.kubeconfig, namespace=NAMESPACE)
        print(f"replay API server on {server.url}; kubeconfig written to {kubeconfig}")
        print(f"  KUBECONFIG={kubeconfig} kubectl get pods")
        print(f"  KUBECONFIG={kubeconfig} .venv/bin/mesh-doctor scan --live --symptom 503 "
              f"--from frontend --to checkout -n {NAMESPACE}")
        print("press Ctrl-C to stop", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        print(f"{len(server.requests)} requests served, {len(server.writes())} of them writes")


if __name__ == "__main__":
    main()
