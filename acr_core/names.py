"""Names the registry uses, and how they are shown: repository and tag grammar, short digests.

Pure: the planner, the event parser, the CLI and the report all use these, so there is one
definition of each.
"""

from __future__ import annotations

import re

# OCI distribution-spec v1.1, "Pulling manifests": the <name> grammar. The spec notes that many
# clients cap hostname + "/" + name at 255 characters; no name can be longer than that.
_NAME_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*")
MAX_REPOSITORY_LENGTH = 255
# OCI distribution-spec v1.1 <reference> tag grammar.
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")


def is_repository_name(name: str) -> bool:
    """Whether `name` is a valid OCI repository name (grammar and length)."""
    return len(name) <= MAX_REPOSITORY_LENGTH and REPOSITORY_RE.fullmatch(name) is not None


def short_digest(digest: str) -> str:
    """`sha256:` and the first 12 hex digits: enough to tell manifests apart in a report."""
    algorithm, _, hex_part = digest.partition(":")
    return f"{algorithm}:{hex_part[:12]}" if hex_part else digest
