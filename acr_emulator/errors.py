"""The errors the emulator answers with, in ACR's `{"errors":[{code,message,detail}]}` shape.

Codes, statuses and messages are those seen on the wire (docs/acr-facts.md sections 1.13 and 3).
"""

from __future__ import annotations

from typing import Any

DISALLOWED_MESSAGE = (
    "The operation is disallowed on this registry, repository or image. View troubleshooting "
    "steps at https://aka.ms/acr/faq/#why-does-my-pull-or-push-request-fail-with-disallowed-operation"
)


class RegistryError(Exception):
    """A registry answer other than success; becomes the JSON error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: Any = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = headers or []

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return {"errors": [error]}


def name_unknown(repository: str) -> RegistryError:
    return RegistryError(
        404, "NAME_UNKNOWN", f'repository "{repository}" is not found', {"name": repository}
    )


def tag_unknown(tag: str) -> RegistryError:
    return RegistryError(404, "TAG_UNKNOWN", "the specified tag does not exist", {"Tag": tag})


def manifest_unknown(reference: str) -> RegistryError:
    if reference.startswith("sha256:"):
        return RegistryError(404, "MANIFEST_UNKNOWN", "manifest unknown", {"Digest": reference})
    return RegistryError(
        404,
        "MANIFEST_UNKNOWN",
        f'manifest tagged by "{reference}" is not found',
        {"Tag": reference},
    )


def blob_unknown(digest: str) -> RegistryError:
    return RegistryError(404, "BLOB_UNKNOWN", "blob unknown to registry", {"digest": digest})


def disallowed() -> RegistryError:
    return RegistryError(405, "REGISTRY_DISALLOWED_OPERATION", DISALLOWED_MESSAGE, {})


def unsupported(message: str) -> RegistryError:
    return RegistryError(405, "UNSUPPORTED", message)


def invalid(code: str, message: str, detail: Any = None) -> RegistryError:
    return RegistryError(400, code, message, detail)
