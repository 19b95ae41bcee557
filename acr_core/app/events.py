"""Read ACR `ImagePushed` events, trusting nothing in them.

An event is untrusted input: anyone who can reach the function's endpoint, or a subscription
pointed at the wrong registry, can deliver one. `read_image_pushed` accepts an event only when

- its type is `Microsoft.ContainerRegistry.ImagePushed`,
- its topic (Event Grid schema) or source (CloudEvents 1.0) is the configured registry's ARM
  resource id (ARM ids are case-insensitive, so compared case-insensitively),
- `data.request.host` is the configured login server,
- `data.target.repository` matches the OCI distribution name grammar and `data.target.digest`
  is a well-formed sha256/sha512 digest (the digest is protected from the run it triggers).

Anything else becomes an `Ignored` with one sentence saying why; this module never raises on
bad input, so a hostile or broken event cannot cause a retry storm. Pure: no I/O, no azure.

Payload shapes: docs/acr-facts.md section 5 (learn.microsoft.com
event-schema-container-registry; data schema from azure-rest-api-specs
`specification/eventgrid/data-plane/Microsoft.ContainerRegistry/stable/2018-01-01`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from acr_core.names import TAG_RE, is_repository_name

IMAGE_PUSHED = "Microsoft.ContainerRegistry.ImagePushed"
IMAGE_DELETED = "Microsoft.ContainerRegistry.ImageDeleted"

# Shown whole in the "not the configured ACR_RESOURCE_ID" line, since the operator needs the
# registry's name at its end: a subscription GUID (36), a resource group name (at most 90) and a
# registry name (at most 50) plus the fixed segments come to about 220 characters.
MAX_RESOURCE_ID_LENGTH = 300
# OCI image-spec descriptor.md: the registered algorithms and their encodings.
DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")

Schema = Literal["eventgrid", "cloudevents"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """The schema-independent part of one event: Event Grid `topic`/`eventType` and
    CloudEvents `source`/`type` both land in `source`/`type`."""

    id: str
    type: str
    source: str
    subject: str | None
    data: object
    schema: Schema


@dataclass(frozen=True, slots=True)
class ImagePushed:
    """A validated push to the configured registry."""

    event_id: str
    repository: str
    digest: str
    tag: str | None
    media_type: str | None


@dataclass(frozen=True, slots=True)
class Ignored:
    """An event the function does not act on, and why.

    `suspicious` is True when the event looks spoofed, misrouted or malformed (worth a
    warning), False for expected noise such as the `ImageDeleted` events our own deletions emit.
    """

    event_id: str
    reason: str
    suspicious: bool


def envelope_from_json(body: object) -> Envelope | Ignored:
    """Read one event as delivered (one element of Event Grid's array), in either schema.

    Like the Functions converter, a body with `specversion` is a CloudEvent, any other an
    Event Grid event.
    """
    if not isinstance(body, Mapping):
        return Ignored("?", f"the event is a JSON {type(body).__name__}, not an object", True)
    event_id = _short(body.get("id"))
    if "specversion" in body:
        if body.get("specversion") != "1.0":
            return Ignored(event_id, "unsupported CloudEvents specversion (want 1.0)", True)
        fields = {"type": body.get("type"), "source": body.get("source")}
        schema: Schema = "cloudevents"
    else:
        fields = {"type": body.get("eventType"), "source": body.get("topic")}
        schema = "eventgrid"
    return make_envelope(
        event_id=body.get("id"),
        event_type=fields["type"],
        source=fields["source"],
        subject=body.get("subject"),
        data=body.get("data"),
        schema=schema,
    )


def make_envelope(
    *,
    event_id: object,
    event_type: object,
    source: object,
    subject: object,
    data: object,
    schema: Schema,
) -> Envelope | Ignored:
    """Build an envelope from already-decoded fields (e.g. a `func.EventGridEvent`'s)."""
    short_id = _short(event_id)
    missing = [
        _wire_name(name, schema)
        for name, value in (("id", event_id), ("type", event_type), ("source", source))
        if not isinstance(value, str) or not value
    ]
    if missing or not (
        isinstance(event_id, str) and isinstance(event_type, str) and isinstance(source, str)
    ):
        return Ignored(short_id, f"the event has no {' or '.join(missing)} string", True)
    return Envelope(
        id=event_id,
        type=event_type,
        source=source,
        subject=subject if isinstance(subject, str) else None,
        data=data,
        schema=schema,
    )


def read_image_pushed(
    envelope: Envelope, *, resource_id: str, login_server: str
) -> ImagePushed | Ignored:
    """Accept `envelope` only if it is a well-formed ImagePushed from the configured registry."""
    eid = _short(envelope.id)
    if envelope.type != IMAGE_PUSHED:
        # Our own deletions emit ImageDeleted (docs/acr-facts.md section 5): expected, not
        # suspicious.
        expected = envelope.type.startswith("Microsoft.ContainerRegistry.")
        return Ignored(
            eid, f"event type {_short(envelope.type)!r} is not {IMAGE_PUSHED}", not expected
        )
    if not _same_ascii(envelope.source, resource_id):
        field = _wire_name("source", envelope.schema)
        return Ignored(
            eid,
            f"{field} {_short(envelope.source, MAX_RESOURCE_ID_LENGTH)!r} is not the configured "
            "ACR_RESOURCE_ID (an event from another registry, or a spoofed one)",
            True,
        )
    data = envelope.data
    if not isinstance(data, Mapping):
        return Ignored(eid, "the event has no data object", True)
    if data.get("action", "push") != "push":
        return Ignored(eid, f"data.action {_short(data.get('action'))!r} is not 'push'", True)
    request = data.get("request")
    host = request.get("host") if isinstance(request, Mapping) else None
    if not isinstance(host, str) or not _same_ascii(host, login_server):
        return Ignored(
            eid,
            f"data.request.host {_short(host)!r} is not the configured ACR_LOGIN_SERVER",
            True,
        )
    target = data.get("target")
    if not isinstance(target, Mapping):
        return Ignored(eid, "the event has no data.target object", True)
    return _read_target(eid, target)


def _same_ascii(given: str, configured: str) -> bool:
    """Equal but for the case of ASCII letters, the way ARM compares resource ids and DNS host
    names. Unicode case mapping would let look-alikes through (U+017F LONG S casefolds to `s`,
    U+212A KELVIN SIGN lowercases to `k`); other characters (a resource group may be named in
    any script) must be equal as they are."""
    return given.translate(_ASCII_LOWER) == configured.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _read_target(eid: str, target: Mapping[str, object]) -> ImagePushed | Ignored:
    repository = target.get("repository")
    if not isinstance(repository, str) or not is_repository_name(repository):
        return Ignored(
            eid,
            f"data.target.repository {_short(repository)!r} is not a valid repository name "
            "(OCI distribution name grammar)",
            True,
        )
    digest = target.get("digest")
    if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
        return Ignored(
            eid, f"data.target.digest {_short(digest)!r} is not a sha256/sha512 digest", True
        )
    # Pushes by digest (index children, referrers) carry no tag (docs/acr-facts.md section 5).
    tag = target.get("tag")
    if tag is not None and (not isinstance(tag, str) or not TAG_RE.fullmatch(tag)):
        return Ignored(eid, f"data.target.tag {_short(tag)!r} is not a valid tag", True)
    media_type = target.get("mediaType")
    return ImagePushed(
        event_id=eid,
        repository=repository,
        digest=digest,
        tag=tag or None,
        media_type=media_type if isinstance(media_type, str) else None,
    )


def _wire_name(name: str, schema: Schema) -> str:
    if schema == "cloudevents":
        return name
    return {"type": "eventType", "source": "topic"}.get(name, name)


def _short(value: object, limit: int = 120) -> str:
    """A bounded, printable rendering of an untrusted value for a log line."""
    text = value if isinstance(value, str) else repr(value)
    # Cut first: the per-character work below on a megabyte of hostile text costs a second.
    # Escaping only lengthens, so the first limit + 1 characters decide the line.
    text = text[: limit + 1].encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
