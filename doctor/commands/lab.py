"""The `mesh-doctor lab` subcommand: a mesh of real Envoy sidecars on 127.0.0.1 with injectable faults.

Usage:

    mesh-doctor lab up                 start the lab (a daemon keeps it running)
    mesh-doctor lab list               list the faults
    mesh-doctor lab inject FAULT       restart the sidecars with FAULT
    mesh-doctor lab capture DIR        send traffic, probe the lab, write a bundle to DIR
    mesh-doctor lab status             show the running lab
    mesh-doctor lab down               stop everything and check nothing is left
    mesh-doctor lab practice [FAULT]   reproduce a fault and open its diagnosis in the terminal UI
    mesh-doctor lab fix REMEDY         remediate the running lab: rotate-cert, policy, restart-app
                                       (--dry-run shows the change, --rollback undoes it)
    mesh-doctor lab probe PROBE        verify the running lab: request (exits 0 on a 2xx) or handshake

The state of a running lab (its pids, ports, fault, logs) lives in
--state-dir, by default $XDG_STATE_HOME/mesh-doctor/lab.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NAME = "lab"
HELP = "run a real Envoy mesh on 127.0.0.1, inject faults and capture bundles"
# `lab probe` exits with this status when the lab still shows the problem.
PROBE_FAILED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path,
                        help="folder for the running lab's state and logs "
                             "(default: $XDG_STATE_HOME/mesh-doctor/lab)")
    actions = parser.add_subparsers(dest="lab_action", metavar="ACTION")

    up = actions.add_parser("up", help="start the lab: upstream app, server and client sidecars")
    up.add_argument("--access-log-format", choices=("text", "json"), default="text",
                    help="access log format of both sidecars: Istio's default TEXT or its JSON (default: text)")
    up.add_argument("--envoy", metavar="PATH", help="Envoy binary to run (default: envoy on PATH)")

    actions.add_parser("down", help="stop the lab and check that none of its processes is left")
    actions.add_parser("list", help="list the faults the lab can inject")
    actions.add_parser("status", help="show the running lab's ports, pids and fault")

    inject = actions.add_parser("inject", help="restart the sidecars with a fault (see `lab list`)")
    inject.add_argument("fault", metavar="FAULT", help="name of the fault")

    capture = actions.add_parser("capture", help="send traffic through the lab, probe it and write a bundle")
    capture.add_argument("directory", type=Path, metavar="DIR", help="new or empty folder for the bundle")

    fix = actions.add_parser(
        "fix", help="remediate the running lab and report what changed: rotate-cert (new server "
                    "certificate), policy (add --allow-principal to the ALLOW policy), restart-app")
    fix.add_argument("remedy", choices=("rotate-cert", "policy", "restart-app"), metavar="REMEDY",
                     help="rotate-cert, policy or restart-app")
    fix.add_argument("--allow-principal", metavar="PRINCIPAL",
                     help="for policy: the principal to allow, such as cluster.local/ns/default/sa/sleep")
    fix.add_argument("--dry-run", action="store_true", help="print the change without making it")
    fix.add_argument("--rollback", action="store_true",
                     help="restore what the last applied REMEDY replaced")

    probe = actions.add_parser("probe", help="verify the running lab: send one request through both sidecars, "
                                             "or handshake with the server sidecar as the client workload")
    probe.add_argument("probe", choices=("request", "handshake"), metavar="PROBE", help="request or handshake")

    practice = actions.add_parser(
        "practice", help="reproduce a fault in a lab of its own and open the diagnosis of its capture in the "
                         "terminal UI; without FAULT, pick one in a list")
    practice.add_argument("fault", nargs="?", metavar="FAULT", help="name of the fault (see `lab list`)")
    practice.add_argument("--random", action="store_true",
                          help="pick a random fault and name it only after the terminal UI closes")
    practice.add_argument("--keep", type=Path, metavar="DIR",
                          help="write the bundle to this new folder and keep it (default: a temporary folder)")


def run(options: argparse.Namespace) -> int:
    from doctor.cli import ExitCode
    from doctor.lab import control

    state_dir = options.state_dir or control.default_state_dir()
    action = options.lab_action
    if action is None:
        print("mesh-doctor lab: choose an action: up, down, list, status, inject FAULT, capture DIR, "
              "fix REMEDY, probe PROBE or practice [FAULT]",
              file=sys.stderr)
        return ExitCode.USAGE
    if action == "list":
        return _list()
    if action == "practice":
        return _practice(options)

    try:
        if action == "up":
            state = control.start_daemon(state_dir, access_log_format=options.access_log_format,
                                         envoy=options.envoy)
            print(f"lab up: client sidecar 127.0.0.1:{state['client_listener']}, "
                  f"server sidecar 127.0.0.1:{state['server_listener']}, pids {state['pids']}")
            print(f"state in {state_dir}; inject a fault with `mesh-doctor lab inject FAULT`")
            return ExitCode.OK
        if action == "down":
            pids = control.stop_daemon(state_dir)
            print(f"lab down: processes {pids} stopped, none left")
            return ExitCode.OK
        if action == "status":
            reply = control.request(state_dir, {"op": "status"})
            print(json.dumps(reply["state"], indent=2))
            return ExitCode.OK
        if action == "inject":
            from doctor.lab.faults import FAULTS

            if options.fault not in FAULTS:
                print(f"mesh-doctor lab: unknown fault {options.fault!r}; known faults: {', '.join(FAULTS)}",
                      file=sys.stderr)
                return ExitCode.USAGE
            control.request(state_dir, {"op": "inject", "fault": options.fault})
            print(f"injected {options.fault}; capture it with `mesh-doctor lab capture DIR`")
            return ExitCode.OK
        if action == "fix":
            reply = control.request(state_dir, {
                "op": "fix", "remedy": options.remedy, "dry_run": options.dry_run,
                "rollback": options.rollback, "principal": options.allow_principal})
            print(reply["report"])
            return ExitCode.OK
        if action == "probe":
            reply = control.request(state_dir, {"op": "probe", "probe": options.probe})
            print(reply["report"])
            return ExitCode.OK if reply["passed"] else PROBE_FAILED
        if action == "capture":
            directory = options.directory.resolve()
            if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
                print(f"mesh-doctor lab: {directory} exists and is not an empty folder; "
                      "pass a new folder for the bundle", file=sys.stderr)
                return ExitCode.USAGE
            reply = control.request(state_dir, {"op": "capture", "dir": str(directory)})
            print(f"wrote {reply['bundle']}; diagnose it with `mesh-doctor scan {reply['bundle']}`")
            return ExitCode.OK
    except control.ControlError as error:
        print(f"mesh-doctor lab {action}: {error}", file=sys.stderr)
        return ExitCode.INTERNAL_ERROR
    return ExitCode.USAGE


def _list() -> int:
    from doctor.cli import ExitCode
    from doctor.lab.faults import FAULTS

    width = max(len(name) for name in FAULTS)
    for fault in FAULTS.values():
        root = " (needs root)" if fault.needs_root else ""
        print(f"{fault.group:>3}  {fault.name:<{width}}  {fault.title}{root}")
    return ExitCode.OK


def _practice(options: argparse.Namespace) -> int:
    import random
    import tempfile

    from doctor.bundle import BundleError, write_bundle
    from doctor.cli import ExitCode
    from doctor.lab.faults import FAULTS, reproduce
    from doctor.lab.mesh import LabError, MeshLab

    name = options.fault
    if name is not None and name not in FAULTS:
        print(f"mesh-doctor lab: unknown fault {name!r}; known faults: {', '.join(FAULTS)}", file=sys.stderr)
        return ExitCode.USAGE
    keep = options.keep
    if keep is not None and keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
        print(f"mesh-doctor lab: {keep} exists and is not an empty folder; pass a new folder", file=sys.stderr)
        return ExitCode.USAGE
    hidden = options.random
    if name is None and not hidden:
        from doctor.tui.lab_picker import RANDOM, LabPickerApp

        name = LabPickerApp([(fault.name, fault.group, fault.title) for fault in FAULTS.values()]).run()
        if name is None:
            return ExitCode.OK
        hidden = name == RANDOM
    if hidden:
        name = random.choice(list(FAULTS))
    fault = FAULTS[name]

    with tempfile.TemporaryDirectory(prefix="mesh-lab-practice-") as folder:
        root = Path(folder)
        print("reproducing " + ("a hidden fault" if hidden else fault.name) + " on a real Envoy mesh ...",
              file=sys.stderr)
        try:
            with MeshLab(root / "work") as lab:
                capture = reproduce(lab, fault, root)
            description = "Mesh lab practice incident" if hidden else f"Mesh lab fault {fault.name}: {fault.title}"
            bundle = write_bundle(options.keep or root / "bundle", capture.observations, capture.files,
                                  description=description)
        except (LabError, BundleError) as error:
            print(f"mesh-doctor lab practice: {error}", file=sys.stderr)
            return ExitCode.INTERNAL_ERROR

        # The lab is stopped by now: the diagnosis reads only the capture, as for a real incident.
        from doctor.tui.app import build_app

        build_app([bundle]).run()
    if hidden:
        print(f"The injected fault was {fault.name}: {fault.title}. "
              f"Mesh Doctor's expected diagnosis: {' -> '.join(fault.chain)}.")
    if options.keep is not None:
        print(f"the bundle is in {options.keep}")
    return ExitCode.OK
