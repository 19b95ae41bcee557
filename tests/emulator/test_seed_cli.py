"""Bulk seeding, the realistic-registry generator, and `python -m acr_emulator`."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from acr_emulator import Emulator
from acr_emulator.cli import parser
from acr_emulator.content import sha256_digest
from acr_emulator.generate import generate
from acr_emulator.seed import FixtureError

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def test_seeded_manifests_are_real_oci_json_under_their_sha256():
    """Every seeded manifest's digest is the sha256 of its stored bytes."""
    emu = Emulator()
    emu.seed(generate("demo", now=NOW))
    manifests = [m for r in emu.registry.repositories.values() for m in r.manifests.values()]
    assert len(manifests) >= 240
    assert all(sha256_digest(m.body) == m.digest for m in manifests)
    assert all(json.loads(m.body)["schemaVersion"] == 2 for m in manifests)


def test_a_fixture_builds_indexes_referrers_locks_and_times():
    """Ids wire children and subjects; tags, locks and timestamps land as written."""
    emu = Emulator()
    emu.seed(
        {
            "repositories": [
                {
                    "name": "app",
                    "attributes": {"deleteEnabled": False},
                    "manifests": [
                        {"id": "amd", "pushed": "2025-01-01T00:00:00Z"},
                        {"id": "arm", "architecture": "arm64", "pushed": "2025-01-01T00:00:00Z"},
                        {
                            "id": "idx",
                            "kind": "index",
                            "pushed": "2025-01-02T00:00:00Z",
                            "manifests": ["amd", "arm"],
                            "tags": [
                                {
                                    "name": "1.0",
                                    "attributes": {"writeEnabled": False},
                                    "updated": "2025-03-01T00:00:00Z",
                                }
                            ],
                        },
                        {
                            "id": "sig",
                            "kind": "artifact",
                            "subject": "idx",
                            "artifactType": "application/x-sig",
                        },
                    ],
                }
            ]
        }
    )
    repo = emu.registry.repositories["app"]
    index = repo.manifests[repo.tags["1.0"].digest]
    assert [c.architecture for c in index.children] == ["amd64", "arm64"]
    assert index.created == datetime(2025, 1, 2, tzinfo=UTC)
    assert index.updated == datetime(2025, 3, 1, tzinfo=UTC)
    assert repo.tags["1.0"].attributes.write_enabled is False
    assert repo.attributes.delete_enabled is False
    [signature] = repo.referrers[index.digest]
    assert repo.manifests[signature].artifact_type == "application/x-sig"


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ({"repositories": {}}, "'repositories' must be a list"),
        ({"repositories": [{"name": "Bad Name", "manifests": [{}]}]}, "repositories[0].name"),
        (
            {"repositories": [{"name": "a", "manifests": [{"kind": "index", "manifests": ["x"]}]}]},
            "repositories[0].manifests[0]: unknown manifest reference 'x'",
        ),
        ({"repositories": [{"name": "a", "manifests": [{"kind": "blob"}]}]}, "kind must be one of"),
    ],
)
def test_fixture_errors_name_the_place(fixture, message):
    """A bad fixture raises FixtureError naming where and what."""
    with pytest.raises(FixtureError) as error:
        Emulator().seed(fixture)
    assert message in str(error.value)


def test_the_generator_makes_a_realistic_registry():
    """Indexes with attestation children, signed images, locked tags, untagged leftovers, months."""
    emu = Emulator()
    emu.seed(generate("demo", now=NOW))
    manifests = [m for r in emu.registry.repositories.values() for m in r.manifests.values()]
    tags = [t for r in emu.registry.repositories.values() for t in r.tags.values()]
    indexes = [m for m in manifests if m.children]
    attestations = [c for m in indexes for c in m.children if c.architecture == "unknown"]
    referrers = [m for m in manifests if m.subject]
    children = {c.digest for m in indexes for c in m.children}
    untagged_leftovers = [
        m
        for m in manifests
        if not m.tags and not m.subject and not m.children and m.digest not in children
    ]
    locked = [t for t in tags if not t.attributes.write_enabled]
    times = sorted(m.created for m in manifests)
    assert indexes
    assert attestations
    assert {m.artifact_type for m in referrers} >= {
        "application/vnd.dev.cosign.artifact.sig.v1+json"
    }
    assert locked
    assert untagged_leftovers
    assert times[-1] - times[0] > timedelta(days=120)
    assert {t.name for t in tags} >= {"latest", "main"}


def test_the_generator_is_deterministic_and_sized():
    """The same seed gives the same registry; a number asks for that many manifests."""
    first, second = Emulator(), Emulator()
    first.seed(generate("5000", seed=3, now=NOW))
    second.seed(generate("5000", seed=3, now=NOW))
    digests = [sorted(r.manifests) for r in first.registry.repositories.values()]
    assert digests == [sorted(r.manifests) for r in second.registry.repositories.values()]
    assert 5000 <= sum(len(d) for d in digests) < 5100


def test_help_documents_every_option():
    """--help mentions every option the parser accepts, each with a help text."""
    cli = parser()
    text = cli.format_help()
    for action in cli._actions:
        for option in action.option_strings:
            assert option in text
        assert action.help


def test_the_command_prints_one_json_line_then_serves(tmp_path):
    """The command prints url, ca_file and admin credentials, then answers over HTTPS."""
    fixture = tmp_path / "fixture.json"
    fixture.write_text(
        json.dumps({"repositories": [{"name": "seeded/app", "manifests": [{"tags": ["v1"]}]}]})
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "acr_emulator", "--port", "0", "--fixture", str(fixture)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = json.loads(process.stdout.readline())
        context = ssl.create_default_context(cafile=line["ca_file"])
        token = httpx.get(
            f"{line['url']}/oauth2/token",
            params={"service": line["url"].split("://")[1], "scope": "registry:catalog:*"},
            auth=(line["admin_username"], line["admin_password"]),
            verify=context,
        ).json()["access_token"]
        catalog = httpx.get(
            f"{line['url']}/acr/v1/_catalog",
            headers={"authorization": f"Bearer {token}"},
            verify=context,
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert set(line) == {"url", "ca_file", "admin_username", "admin_password"}
    assert line["url"].startswith("https://127.0.0.1:")
    assert catalog.json() == {"repositories": ["seeded/app"]}
    assert process.returncode == 0


def test_the_command_rejects_a_bad_profile():
    """--generate nonsense exits 2 with a message naming the option."""
    result = subprocess.run(
        [sys.executable, "-m", "acr_emulator", "--port", "0", "--generate", "huge"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--generate" in result.stderr
    assert result.stdout == ""


def test_command_line_options_reach_the_emulator():
    """Throttling, faults, webhooks, auth and clock options configure the emulator they build."""
    from acr_emulator.cli import build

    args = parser().parse_args(
        [
            "--sku",
            "Premium",
            "--time-scale",
            "5",
            "--burst-seconds",
            "2",
            "--latency-ms",
            "20",
            "--error-rate",
            "0.1",
            "--drop-rate",
            "0.01",
            "--webhook",
            "http://127.0.0.1:9/eg",
            "--cloudevents-webhook",
            "http://[::1]:9/ce",
            "--token-lifetime",
            "30",
            "--anonymous-pull",
            "--abac",
            "--no-admin",
            "--now",
            "2024-01-01T00:00:00Z",
            "--frozen-clock",
            "--login-server",
            "myacr.azurecr.io",
            "--generate",
            "demo",
        ]
    )
    emu = build(args)
    config = emu.config
    assert emu.throttle.config is not None
    assert (emu.throttle.config.read_per_minute, emu.throttle.config.time_scale) == (10_000, 5)
    assert (emu.faults.latency, emu.faults.error_rate, emu.faults.drop_rate) == (0.02, 0.1, 0.01)
    assert [(w.url, w.schema) for w in config.webhooks] == [
        ("http://127.0.0.1:9/eg", "eventgrid"),
        ("http://[::1]:9/ce", "cloudevents"),
    ]
    assert (config.access_token_lifetime, config.anonymous_pull, config.abac) == (30, True, True)
    assert config.admin_enabled is False
    # Frozen, the clock moves only 1 µs per reading (seeding took some).
    assert emu.clock.peek() - datetime(2024, 1, 1, tzinfo=UTC) < timedelta(seconds=1)
    assert config.login_server == "myacr.azurecr.io"
    assert len(emu.registry.repositories) == 6


def test_the_env_file_holds_what_the_json_line_says_for_a_shell_to_source(tmp_path):
    """--env-file writes export lines for ACR_REGISTRY, ACR_USERNAME, ACR_PASSWORD and
    ACR_CA_FILE that a shell can source, readable by the owner only."""
    env_file = tmp_path / ".emulator.env"
    env_file.write_text("export ACR_PASSWORD=stale\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "acr_emulator", "--port", "0", "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = json.loads(process.stdout.readline())
        sourced = subprocess.run(
            [
                "bash",
                "-c",
                f"source {env_file} && printf '%s\\n' "
                '"$ACR_REGISTRY" "$ACR_USERNAME" "$ACR_PASSWORD" "$ACR_CA_FILE"',
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert sourced.stdout.splitlines() == [
        line["url"],
        line["admin_username"],
        line["admin_password"],
        line["ca_file"],
    ]
    assert env_file.stat().st_mode & 0o777 == 0o600


def test_make_emulator_prints_the_json_line_first_on_the_port_asked_for(tmp_path):
    """`make emulator PORT=0` echoes no command: its first line is the JSON, on a free port,
    and the env file it names is written."""
    root = Path(__file__).resolve().parents[2]
    env_file = tmp_path / "emulator.env"
    process = subprocess.Popen(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(root),
            "-o",
            ".venv/.stamp",  # the venv running this test is the one to use, as it is
            "emulator",
            "PORT=0",
            f"PY={sys.executable}",
            f"EMULATOR_ENV={env_file}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = json.loads(process.stdout.readline())
        written = env_file.read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    assert not line["url"].endswith(":5000")
    assert f"export ACR_REGISTRY={line['url']}\n" in written
