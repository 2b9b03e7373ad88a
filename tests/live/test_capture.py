"""The packet-capture probe: nothing runs without confirmation; a confirmed capture is bounded and cleaned up."""

from __future__ import annotations

from doctor.model import ProbeStatus
from tests.replay.harness import collect
from tests.replay.scenario import CHECKOUT_POD, NAMESPACE


def capture_observations(result):
    return [o for o in result.observations if o.probe_id == "capture.tcpdump"]


def test_capture_left_out_headless(replay, engine):
    server = replay()

    result = collect(server, engine, symptom="503", destination_service="checkout")

    assert capture_observations(result) == []
    assert any("capture.tcpdump left out" in note for note in result.plan.notes)
    assert not any("ephemeralcontainers" in request.path for request in server.requests)


def test_capture_declined_runs_nothing(replay, engine):
    server = replay()
    questions = []

    def decline(description):
        questions.append(description)
        return False

    result = collect(server, engine, symptom="503", destination_service="checkout",
                     confirm=decline, capture_possible=True)

    [capture] = capture_observations(result)
    assert capture.status is ProbeStatus.UNAVAILABLE
    assert "not confirmed" in capture.reason
    assert len(questions) == 1
    assert f"pod {NAMESPACE}/{CHECKOUT_POD} targeting container checkout" in questions[0]
    assert server.writes() == []


def test_capture_allowed_is_bounded_and_verified(replay, engine):
    server = replay()

    result = collect(server, engine, symptom="503", destination_service="checkout",
                     allow_capture=True, capture_possible=True)

    [capture] = capture_observations(result)
    assert capture.status is ProbeStatus.OK, capture.reason
    assert "Flags [S]" in capture.output
    assert capture.reason.startswith("clean-up verified: debug container mesh-doctor-capture-")
    argv = list(capture.argv)
    assert argv[argv.index("--") + 1:] == ["timeout", "10", "tcpdump", "-nn", "-l", "-i", "any", "-c", "200",
                                           "-s", "128"]
    assert "--target=checkout" in argv
    writes = [(r.method, r.path) for r in server.writes()]
    assert writes == [("PATCH", f"/api/v1/namespaces/{NAMESPACE}/pods/{CHECKOUT_POD}/ephemeralcontainers")]
