"""Event parsing: Azure's documented ImagePushed samples are accepted, everything else ignored."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from acr_core.app.events import (
    Envelope,
    Ignored,
    ImagePushed,
    envelope_from_json,
    read_image_pushed,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "events"
# The documented samples' topic and host (docs/acr-facts.md section 5).
RESOURCE_ID = (
    "/subscriptions/<subscription-id>/resourceGroups/<resource-group-name>"
    "/providers/Microsoft.ContainerRegistry/registries/<name>"
)
LOGIN_SERVER = "demo.azurecr.io"
DIGEST = "sha256:213bbc182920ab41e18edc2001e06abcca6735d87782d9cef68abd83941cf0e5"


def sample(schema: str) -> dict[str, Any]:
    name = "eventgrid" if schema == "eventgrid" else "cloudevents"
    events = json.loads((FIXTURES / f"{name}-image-pushed.json").read_text())
    assert len(events) == 1
    event: dict[str, Any] = events[0]
    return event


def read(body: object) -> ImagePushed | Ignored:
    envelope = envelope_from_json(body)
    if isinstance(envelope, Ignored):
        return envelope
    return read_image_pushed(envelope, resource_id=RESOURCE_ID, login_server=LOGIN_SERVER)


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_documented_sample_is_accepted(schema: str) -> None:
    """Azure's documented ImagePushed sample yields its repository, digest, tag and media type."""
    assert read(sample(schema)) == ImagePushed(
        event_id="831e1650-001e-001b-66ab-eeb76e069631",
        repository="aci-helloworld",
        digest=DIGEST,
        tag="v1",
        media_type="application/vnd.docker.distribution.manifest.v2+json",
    )


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_schema_is_detected(schema: str) -> None:
    """A body with specversion is read as a CloudEvent, any other as an Event Grid event."""
    envelope = envelope_from_json(sample(schema))
    assert isinstance(envelope, Envelope)
    assert envelope.schema == schema
    assert envelope.type == "Microsoft.ContainerRegistry.ImagePushed"
    assert envelope.source == RESOURCE_ID


def test_resource_id_and_host_compare_case_insensitively() -> None:
    """ARM ids and host names differ only in case still match."""
    body = sample("eventgrid")
    body["topic"] = RESOURCE_ID.upper()
    body["data"]["request"]["host"] = "DEMO.azurecr.io"
    assert isinstance(read(body), ImagePushed)


KUBE_ID = RESOURCE_ID.replace("<name>", "kube")


# (event topic, configured ACR_RESOURCE_ID, event host, configured ACR_LOGIN_SERVER, reason word)
# U+017F LATIN SMALL LETTER LONG S casefolds to "s"; U+212A KELVIN SIGN lowercases to "k".
LOOK_ALIKES = [
    pytest.param(
        RESOURCE_ID.replace("/subscriptions/", "/\u017fubscriptions/"),
        RESOURCE_ID,
        LOGIN_SERVER,
        LOGIN_SERVER,
        "topic",
        id="long s in the topic",
    ),
    pytest.param(
        KUBE_ID.replace("/kube", "/\u212aube"),
        KUBE_ID,
        LOGIN_SERVER,
        LOGIN_SERVER,
        "topic",
        id="kelvin sign in the topic",
    ),
    pytest.param(
        RESOURCE_ID,
        RESOURCE_ID,
        "myregi\u017ftry.azurecr.io",
        "myregistry.azurecr.io",
        "ACR_LOGIN_SERVER",
        id="long s in the host",
    ),
    pytest.param(
        RESOURCE_ID,
        RESOURCE_ID,
        "\u212aube.azurecr.io",
        "kube.azurecr.io",
        "ACR_LOGIN_SERVER",
        id="kelvin sign in the host",
    ),
]


@pytest.mark.parametrize(("topic", "resource_id", "host", "login_server", "words"), LOOK_ALIKES)
def test_look_alike_unicode_is_not_the_configured_registry(
    topic: str, resource_id: str, host: str, login_server: str, words: str
) -> None:
    """A topic or host that equals the configured one only after Unicode case mapping is foreign."""
    body = copy.deepcopy(sample("eventgrid"))
    body["topic"] = topic
    body["data"]["request"]["host"] = host
    envelope = envelope_from_json(body)
    assert isinstance(envelope, Envelope)
    result = read_image_pushed(envelope, resource_id=resource_id, login_server=login_server)
    assert isinstance(result, Ignored)
    assert words in result.reason
    assert result.suspicious


def test_digest_only_push_has_no_tag() -> None:
    """A push by digest (an index child, a referrer) carries no tag and is accepted."""
    body = sample("cloudevents")
    del body["data"]["target"]["tag"]
    result = read(body)
    assert isinstance(result, ImagePushed)
    assert result.tag is None


def test_nested_repository_is_accepted() -> None:
    """Repository names with path components and separators follow the OCI grammar."""
    body = sample("eventgrid")
    body["data"]["target"]["repository"] = "team-a/web__api/v1.2-rc"
    result = read(body)
    assert isinstance(result, ImagePushed)
    assert result.repository == "team-a/web__api/v1.2-rc"


def _set(path: str, value: object) -> Any:
    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = body
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return mutate


_DELETE = object()
OTHER_REGISTRY = RESOURCE_ID.replace("<name>", "someoneelse")

# (mutation of the Event Grid sample, words the reason must contain, suspicious?)
REJECTIONS: list[tuple[str, Any, str, bool]] = [
    ("deleted", _set("eventType", "Microsoft.ContainerRegistry.ImageDeleted"), "not", False),
    ("chart", _set("eventType", "Microsoft.ContainerRegistry.ChartPushed"), "not", False),
    ("foreign type", _set("eventType", "Microsoft.Storage.BlobCreated"), "not", True),
    ("short type", _set("eventType", "ImagePushed"), "not", True),
    ("foreign topic", _set("topic", OTHER_REGISTRY), "ACR_RESOURCE_ID", True),
    ("no topic", _set("topic", _DELETE), "topic", True),
    ("no id", _set("id", _DELETE), "id", True),
    ("spoofed host", _set("data.request.host", "evil.azurecr.io"), "ACR_LOGIN_SERVER", True),
    ("no host", _set("data.request", _DELETE), "ACR_LOGIN_SERVER", True),
    ("no data", _set("data", None), "data", True),
    ("data list", _set("data", [1]), "data", True),
    ("delete action", _set("data.action", "delete"), "action", True),
    ("no target", _set("data.target", _DELETE), "target", True),
    ("upper repo", _set("data.target.repository", "Aci-HelloWorld"), "repository", True),
    ("traversal", _set("data.target.repository", "../etc/passwd"), "repository", True),
    ("query", _set("data.target.repository", "a?n=1"), "repository", True),
    ("empty repo", _set("data.target.repository", ""), "repository", True),
    ("long repo", _set("data.target.repository", "a" * 256), "repository", True),
    ("repo int", _set("data.target.repository", 7), "repository", True),
    ("no digest", _set("data.target.digest", _DELETE), "digest", True),
    ("short digest", _set("data.target.digest", "sha256:abc"), "digest", True),
    ("md5 digest", _set("data.target.digest", "md5:" + "a" * 32), "digest", True),
    ("bad tag", _set("data.target.tag", "-v1"), "tag", True),
    ("tag int", _set("data.target.tag", 1), "tag", True),
    ("digest upper", _set("data.target.digest", DIGEST.upper()), "digest", True),
    ("digest list", _set("data.target.digest", [DIGEST]), "digest", True),
    ("host int", _set("data.request.host", 443), "ACR_LOGIN_SERVER", True),
    ("topic object", _set("topic", {"id": RESOURCE_ID}), "topic", True),
    (
        "validation",
        _set("eventType", "Microsoft.EventGrid.SubscriptionValidationEvent"),
        "not",
        True,
    ),
]


@pytest.mark.parametrize(
    ("mutate", "words", "suspicious"),
    [pytest.param(m, w, s, id=name) for name, m, w, s in REJECTIONS],
)
def test_rejected_events(mutate: Any, words: str, suspicious: bool) -> None:
    """Each bad or foreign event is ignored with a reason naming what was wrong."""
    body = copy.deepcopy(sample("eventgrid"))
    mutate(body)
    result = read(body)
    assert isinstance(result, Ignored)
    assert words in result.reason
    assert result.suspicious is suspicious


def test_cloudevent_foreign_source_names_source() -> None:
    """A CloudEvent from another registry is rejected naming its `source` attribute."""
    body = sample("cloudevents")
    body["source"] = OTHER_REGISTRY
    result = read(body)
    assert isinstance(result, Ignored)
    assert result.reason.startswith("source ")


@pytest.mark.parametrize("body", [None, "text", [sample("eventgrid")], 3])
def test_non_object_bodies_are_ignored(body: object) -> None:
    """A body that is not a JSON object is ignored, never raised on."""
    result = read(body)
    assert isinstance(result, Ignored)
    assert result.suspicious


def test_unknown_specversion_is_ignored() -> None:
    """A CloudEvent of another spec version is ignored."""
    body = sample("cloudevents")
    body["specversion"] = "0.3"
    result = read(body)
    assert isinstance(result, Ignored)
    assert "specversion" in result.reason


def test_reasons_are_bounded_and_printable() -> None:
    """Hostile values are shortened and stripped of control characters in the reason."""
    body = sample("eventgrid")
    body["data"]["request"]["host"] = "x\n" * 500
    result = read(body)
    assert isinstance(result, Ignored)
    assert "\n" not in result.reason
    assert len(result.reason) < 300


def test_foreign_topic_is_shown_whole() -> None:
    """A foreign registry's full ARM id, at its longest realistic length, appears in the reason."""
    foreign = (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/"
        + "g" * 90
        + "/providers/Microsoft.ContainerRegistry/registries/"
        + "r" * 50
    )
    body = sample("eventgrid")
    body["topic"] = foreign
    result = read(body)
    assert isinstance(result, Ignored)
    assert repr(foreign) in result.reason


def test_hostile_topic_is_still_bounded() -> None:
    """A megabyte-long topic is shortened in the reason."""
    body = sample("eventgrid")
    body["topic"] = "/subscriptions/" + "x" * 1_000_000
    result = read(body)
    assert isinstance(result, Ignored)
    assert len(result.reason) < 500
