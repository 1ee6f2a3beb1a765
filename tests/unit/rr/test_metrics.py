"""Issue 18: GET /metrics in the Prometheus text format: bounded labels, HELP/TYPE, every family."""

import pytest
from test_rr_keys import service

from boma_mesh_utils.sam.rr import metrics
from support import prometheus_text


def test_the_formatter_writes_help_type_and_escaped_labels():
    text = metrics.render([
        ("x_total", "counter", "Line one\nline two \\.", [({"a": 'q"uo\\te\nnl'}, 3), ({}, 1.5)]),
        ("y", "gauge", "Y.", [({"peer": "unix:/p"}, float("nan"))])]).decode()
    assert text.startswith("# HELP x_total Line one\\nline two \\\\.\n# TYPE x_total counter\n")
    found = prometheus_text.parse(text)
    assert prometheus_text.value(found, "x_total", a='q"uo\\te\nnl') == 3
    assert prometheus_text.value(found, "x_total") == 1.5 and found["y"]["type"] == "gauge"


def test_the_parser_is_strict():
    for bad in ("x 1\n", "# HELP x h\n# TYPE x bogus\nx 1\n", "# HELP x h\n# TYPE x gauge\nx{a=b} 1\n",
                "# HELP x h\n# TYPE x gauge\nx 1", "# HELP x h\n# TYPE x gauge\nx 1\n# HELP x h\n"):
        with pytest.raises(ValueError):
            prometheus_text.parse(bad)


def test_submission_rules_are_a_bounded_label_set():
    counter = metrics.Metrics()
    counter.submission(200)
    counter.submission(409, "nonce-replay")
    counter.submission(422, "join-hmac")
    counter.submission(422, "join-hmac")
    counter.submission(503, "syncing")
    counter.submission(400, 'leaf-0"} 1\nboma_sam_claims{state="active')   # never a client string
    counter.submission(400, None)
    samples = {tuple(sorted(labels.items())): n for labels, n in counter.submission_samples()}
    assert samples == {(("result", "accepted"),): 1, (("result", "refused"), ("rule", "nonce-replay")): 1,
                       (("result", "refused"), ("rule", "join-hmac")): 2,
                       (("result", "unavailable"), ("rule", "syncing")): 1,
                       (("result", "refused"), ("rule", "other")): 2}
    for index in range(200):
        counter.submission(422, "rule-%d" % index)
    assert len(counter.submission_samples()) <= metrics.MAX_RULES + 1


def test_peer_labels_never_carry_credentials():
    assert metrics.peer_label("https://user:pw@rr-b:8443/x") == "https://rr-b:8443/x"
    assert metrics.peer_label("unix:/run/boma/sam.sock") == "unix:/run/boma/sam.sock"


class FakeReconciler:
    runs, failures, last_duration, last_success = 4, 1, 0.25, 1700000000.5


class FakeReplicator:
    peers, pulled, pushed, dropped = ["https://rr-b:8443"], {"https://rr-b:8443": 1700000001.0}, 7, 0

    def backlog(self, peer):
        return 3


def test_the_service_families(tmp_path):
    svc = service(tmp_path)
    try:
        found = prometheus_text.parse(metrics.exposition(svc).decode())
        assert {s: prometheus_text.value(found, "boma_sam_claims", state=s) for s in metrics.STATES} == dict.fromkeys(
            metrics.STATES, 0)
        assert "boma_sam_reconcile_duration_seconds" not in found and "boma_sam_replication_backlog" not in found
        svc.reconciler, svc.replicator = FakeReconciler(), FakeReplicator()
        found = prometheus_text.parse(metrics.exposition(svc).decode())
        assert prometheus_text.value(found, "boma_sam_reconcile_last_success_timestamp_seconds") == 1700000000.5
        assert prometheus_text.value(found, "boma_sam_reconcile_duration_seconds") == 0.25
        assert prometheus_text.value(found, "boma_sam_replication_backlog", peer="https://rr-b:8443") == 3
        assert prometheus_text.value(found, "boma_sam_replication_last_success_timestamp_seconds",
                                     peer="https://rr-b:8443") == 1700000001.0
        assert prometheus_text.value(found, "boma_sam_info", node="rr-a") == 1
        assert all(f["help"] and f["type"] for f in found.values())
    finally:
        svc.close()
