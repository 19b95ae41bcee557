"""The benchmark harness works end to end on a tiny scenario (it measures nothing here)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.scenarios import expected_remaining
from bench.wire import classify, phase_rate, sustained_rate, tally

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("method", "path", "status", "kind"),
    [
        ("DELETE", "/v2/{name}/manifests/{reference}", 202, "delete_manifest"),
        ("DELETE", "/v2/team/app/manifests/sha256:ab", 404, "delete_manifest"),
        ("DELETE", "/v2/{name}/manifests/{reference}", 401, "challenge_401"),
        ("DELETE", "/v2/{name}/manifests/{reference}", 429, "throttled_429"),
        ("POST", "/oauth2/exchange", 200, "auth"),
        ("POST", "/oauth2/token", 200, "auth"),
        ("GET", "/acr/v1/_catalog", 200, "list"),
        ("GET", "/acr/v1/{name}/_manifests", 200, "list"),
        ("GET", "/acr/v1/{name}/_tags", 200, "list"),
        ("GET", "/acr/v1/{name}/_manifests/{digest}", 200, "read"),
        ("GET", "/v2/{name}/manifests/{reference}", 200, "read"),
        ("PATCH", "/acr/v1/{name}/_tags/{tag}", 200, "write_other"),
        ("DELETE", "/acr/v1/{name}/_tags/{tag}", 202, "write_other"),
    ],
)
def test_classify_sorts_each_request_into_its_kind(method, path, status, kind):
    """A request's kind follows from its method, path and status."""
    assert classify(method, path, status) == kind


def test_tally_adds_counts_per_kind():
    """Counts of several endpoints of one kind are summed under that kind."""
    counts = {
        ("GET", "/acr/v1/_catalog", 200): 2,
        ("GET", "/acr/v1/{name}/_manifests", 200): 3,
        ("DELETE", "/v2/{name}/manifests/{reference}", 202): 7,
    }
    kinds = tally(counts)
    assert kinds["list"] == 5
    assert kinds["delete_manifest"] == 7
    assert sum(kinds.values()) == 12


def test_sustained_rate_leaves_out_the_burst_credit():
    """A burst of deletes does not raise the sustained rate."""
    burst = [0.0] * 100  # a full bucket spent at once
    steady = [(i + 1) / 50 for i in range(100)]  # then 50 per second for two seconds
    assert sustained_rate(burst + steady, 100) == pytest.approx(50.0)


def test_phase_rate_counts_every_delete_from_first_to_last():
    """Eleven deletes a tenth of a second apart are ten per second."""
    assert phase_rate([i / 10 for i in range(11)]) == pytest.approx(10.0)


def test_sustained_rate_is_unknown_for_short_runs():
    """Too few deletes after the burst give no sustained rate at all."""
    assert sustained_rate([i / 10 for i in range(120)], 100) is None


def _state(repositories: int, images: int) -> dict[str, dict[str, datetime]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        f"repo{r}": {f"sha256:{r}{n:063d}": start + timedelta(minutes=n) for n in range(images)}
        for r in range(repositories)
    }


def test_expected_state_keeps_the_three_newest_per_repository():
    """Exactly the three newest images of every repository must remain."""
    state = _state(2, 5)
    remaining = expected_remaining(state, None, pushed_counts_toward_keep=True)
    assert remaining == {
        (repo, digest)
        for repo, manifests in state.items()
        for digest in sorted(manifests, key=manifests.__getitem__)[-3:]
    }


def test_a_protected_push_does_not_use_up_keep_latest():
    """For ours the pushed image is kept beside three older ones; for the baselines it is one of
    the three."""
    state = _state(1, 6)
    pushed = ("repo0", "sha256:" + "f" * 64)
    ours = expected_remaining(state, pushed, pushed_counts_toward_keep=False)
    baseline = expected_remaining(state, pushed, pushed_counts_toward_keep=True)
    assert pushed in ours
    assert pushed in baseline
    assert (len(ours), len(baseline)) == (4, 3)
    assert baseline - {pushed} < ours - {pushed}


def _importable(*modules: str) -> bool:
    try:
        return all(importlib.util.find_spec(m) is not None for m in modules)
    except ModuleNotFoundError:
        return False


@pytest.mark.skipif(
    not _importable("acr_emulator.__main__", "acr_emulator.testing", "acr_core.run.service"),
    reason="the emulator or the service is not there yet",
)
@pytest.mark.slow
# Six emulator and side processes start one after another: on a machine shared with other work
# that can pass the suite's 120 s default (a bound on a hang, not a timing).
@pytest.mark.timeout(300)
def test_harness_runs_every_side_and_writes_results_document_and_chart(tmp_path):
    """A tiny push-triggered run leaves every side's registry in the expected state and writes
    the results, the document and the chart."""
    doc = tmp_path / "benchmarks.md"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--tiny",
            "--scenario",
            "push",
            "--latency-ms",
            "0",
            "--deadline",
            "60",
            "--results",
            str(tmp_path / "results"),
            "--doc",
            str(doc),
            "--planning-manifests",
            "1000",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "results" / "push.json").read_text())
    for side in ("quickstart", "careful", "ours"):
        outcome = result["sides"][side]
        assert outcome.get("error") is None, outcome
        assert outcome["state_correct"] is True, outcome
        assert outcome["deleted"] == outcome["expected_deleted"] > 0
        assert outcome["requests"]["delete_manifest"] >= outcome["deleted"]
    planning = json.loads((tmp_path / "results" / "planning.json").read_text())
    assert planning["result"]["manifests"] >= 1000
    text = doc.read_text()
    assert "quickstart ÷ ours" in text
    if _importable("matplotlib"):  # bench/requirements.txt, installed by `make bench`
        assert (tmp_path / "benchmarks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_issue11_report_judges_each_target_from_the_results():
    """The push-cost targets are judged at the sizes the issue names and only there."""
    from bench import report11

    def run(manifests: int, requests: int) -> dict[str, object]:
        push = {"requests_total": requests, "requests": {"read": requests}, "wall_s": 0.5}
        first = {"requests_total": 900, "wall_s": 2.0, "summary": {"deleted": 40}}
        return {"manifests": manifests, "push": {**push, "plan_s": 0.2}, "first": first}

    found = {"push-cost": {"runs": [run(500, 12), run(50_000, 30)]}}
    text = report11.render(found, "- meta")
    assert "| push run at 500 manifests: <= 15 requests | 12 | met |" in text
    assert "| push run at 50,000 manifests: <= 25 requests | 30 | **missed** |" in text
    assert "30" in report11.push_chart(found["push-cost"])
