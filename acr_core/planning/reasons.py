"""Every sentence the planner writes into a plan, in one place.

Each action and each kept manifest carries one of these as its reason; users read them in the
report, so their wording is part of the planner's interface (tests assert on it).
"""

from __future__ import annotations

from datetime import timedelta

from acr_core.names import short_digest
from acr_core.planning.patterns import format_duration

# --- deleting -------------------------------------------------------------------------------

PARENT_DELETED = "its last parent index is deleted"
SUBJECT_DELETED = "its subject is deleted"
NO_KEEP_LATEST = "tagged, and the rule has no keepLatest"

UNTAGGED = "untagged"
SUBJECT_GONE = "its subject is gone and it"


def untagged_old(what: str, older_than: timedelta) -> str:
    return f"{what}, not updated for more than {format_duration(older_than)}"


def untagged_young(what: str, older_than: timedelta) -> str:
    return f"{what}, updated within untagged.olderThan ({format_duration(older_than)})"


def untagged_no_rule(what: str) -> str:
    return f"{what}, and the rule has no untagged.olderThan"


def beyond_keep_latest(newest: int) -> str:
    return f"older than the {newest} newest unprotected tagged images (keepLatest)"


def within_keep_latest(newest: int) -> str:
    return f"one of the {newest} newest unprotected tagged images (keepLatest)"


# --- policy version 2: the keep clause or delete entry that decided -------------------------


def kept_by_count(clause: str, per: str | None) -> str:
    """`keep[2]: newest 20 with tags main-*`; under `per`, the group's value follows."""
    return clause if per is None else f"{clause} ({per} {{group}})"


def kept_by_clause(clause: str, tag: str | None) -> str:
    """A protecting clause that selects the manifest, and the tag it selected it by."""
    return clause if tag is None else f"{clause} (tag {tag!r})"


def _older_than(field_name: str, older_than: timedelta) -> str:
    if not older_than:
        return field_name
    return f"{field_name} (olderThan {format_duration(older_than)})"


def deleted_by(field_name: str, what: str, older_than: timedelta) -> str:
    """A deletion: the `delete` entry that made it a candidate, and that no clause kept it."""
    age = f", not updated for more than {format_duration(older_than)}" if older_than else ""
    return f"{_older_than(field_name, older_than)}: {what}{age}, and no keep clause keeps it"


def not_old_enough(field_name: str, what: str, older_than: timedelta) -> str:
    return (
        f"{what}, no keep clause keeps it, but it was updated within {field_name}.olderThan "
        f"({format_duration(older_than)})"
    )


def untagged_young_v2(what: str, older_than: timedelta) -> str:
    return f"{what}, updated within delete.untagged.olderThan ({format_duration(older_than)})"


def no_delete_entry(field_name: str, what: str) -> str:
    return f"{what}, and the rule has no {field_name}"


TAGGED = "tagged"


def referrer_deleted(rule: str, why: str) -> str:
    return f"{rule}: {why}, and no keep clause keeps it"


def beyond_keep_newest(newest: int, subject: str) -> str:
    return (
        f"not one of the {newest} newest unprotected referrers of this type of "
        f"{short_digest(subject)}"
    )


def referrer_old(older_than: timedelta) -> str:
    return f"not updated for more than {format_duration(older_than)}"


def referrer_within(rule: str, subject: str) -> str:
    return f"{rule}: kept, a referrer of kept {short_digest(subject)}"


# --- protecting -----------------------------------------------------------------------------


def lock_text(delete_enabled: bool) -> str:
    return "deleteEnabled=false" if not delete_enabled else "writeEnabled=false"


def repository_locked(delete_enabled: bool) -> str:
    return f"the repository is locked ({lock_text(delete_enabled)})"


def manifest_locked(delete_enabled: bool) -> str:
    return f"the manifest is locked ({lock_text(delete_enabled)})"


def tag_unconfirmed(tag: str) -> str:
    return (
        f"tag {tag!r} is missing from the tag listing or points elsewhere there "
        "(it changed while the snapshot was read), so its lock is unknown"
    )


def tag_locked(tag: str, delete_enabled: bool) -> str:
    return f"tag {tag!r} is locked ({lock_text(delete_enabled)})"


def tag_matches(tag: str, field_name: str, pattern: str) -> str:
    return f"tag {tag!r} matches {field_name} pattern {quoted(pattern)}"


def quoted(pattern: str) -> str:
    """A pattern in quotes as the policy's author wrote it: `repr` would double the
    backslashes of `regex:^v\\d+$`."""
    quote = '"' if "'" in pattern else "'"
    return f"{quote}{pattern}{quote}"


MISSING_TIMESTAMP = "its createdTime or lastUpdateTime is missing"
CALLER_PROTECTED = "this run was triggered for it (protected by the caller)"


def younger_than_min_age(min_age: timedelta) -> str:
    return f"updated or tagged less than minAge ({format_duration(min_age)}) ago"


def referrer_kept(referrer: str, why: str) -> str:
    return f"its referrer {short_digest(referrer)} must be kept ({why})"


def protected(why: str) -> str:
    return f"protected: {why}"


# --- guards: deletions held back -------------------------------------------------------------


def held_unread(reason: str) -> str:
    return (
        f"would be deleted ({reason}), but its manifest was not read, so its "
        "children and subject are unknown"
    )


def held_unknown_children(reason: str, index: str) -> str:
    return (
        f"would be deleted ({reason}), but index {short_digest(index)} "
        "was not read, so which manifests are its children is unknown"
    )


def held_unread_protected(reason: str, digest: str) -> str:
    return (
        f"would be deleted ({reason}), but protected {short_digest(digest)} could not be read "
        "(readEnabled=false, or deleted while it was read), so which image it is a referrer "
        "of is unknown; nothing in this repository is deleted until a run can read it"
    )


def held_incomplete(reason: str, why: str) -> str:
    return (
        f"would be deleted ({reason}), but {why}; nothing in this "
        "repository is deleted until a run sees all of it"
    )


def manifests_hidden(counted: int, listed: int) -> str:
    return (
        f"the repository reports {counted} manifests but its listing showed {listed} "
        "(hidden with listEnabled=false, or deleted while it was read)"
    )


def tags_hidden(counted: int, listed: int) -> str:
    return (
        f"the repository reports {counted} tags but its listings showed {listed} "
        "(hidden with listEnabled=false, or deleted while it was read)"
    )


def tag_names_unlisted(tag: str, digest: str) -> str:
    return (
        f"tag {tag!r} names {short_digest(digest)}, which the manifest listing does "
        "not show (hidden with listEnabled=false, or pushed while it was read)"
    )


# --- kept because of what anchors it ---------------------------------------------------------


def pinned_by_index(index: str) -> str:
    return (
        f"kept index {short_digest(index)} lists one of its referrers, which ACR would "
        "delete with it"
    )


def referrer_of_kept(subject: str) -> str:
    return f"referrer of kept {short_digest(subject)}; ACR deletes referrers with their subject"


def referrer_of_absent(subject: str) -> str:
    return (
        f"referrer of {short_digest(subject)}, which is not in the repository; "
        "referrers are never deleted directly"
    )


def child_of_kept(index: str) -> str:
    return f"child of kept index {short_digest(index)}"


def attached_to_kept(subject: str) -> str:
    return f"attached artifact (referrers tag schema) of kept {short_digest(subject)}"


IN_CYCLE = "kept: it is part of a reference cycle, which no image anchors"

# --- locks and safety ------------------------------------------------------------------------


def lock_tag(pattern: str) -> str:
    return f"tag matches lockTags pattern {quoted(pattern)} and is not locked both ways"


def over_max_deletes(removed: int, direct: int, limit: int, repository: str) -> str:
    return (
        f"would delete {removed} manifests{_split(removed, direct)}, more than "
        f"safety.maxDeletesPerRepository ({limit}); nothing in {repository} is deleted until "
        "you raise that setting in the policy (or set it to null)"
    )


def over_max_fraction(
    removed: int, direct: int, total: int, fraction: float, repository: str
) -> str:
    return (
        f"would delete {removed} of {total} manifests ({removed / total:.0%})"
        f"{_split(removed, direct)}, more than safety.maxDeleteFraction ({fraction:g}); "
        f"nothing in {repository} is deleted until you raise that setting in the policy "
        "(1 or null turns it off)"
    )


def _split(removed: int, direct: int) -> str:
    """How many of `removed` are deletions of their own, and how many referrers go with them
    (the report counts only the former as its deletions)."""
    referrers = removed - direct
    if not referrers:
        return ""
    return (
        f": {direct} deletion(s) and {referrers} referrer(s) that ACR deletes with their subjects"
    )


# --- previousDigests: a moving tag's earlier digests (issue 14) ---------------------------------


def previous_digest(clause: str, tag: str, position: int) -> str:
    """`position` counts from 1: the digest `tag` pointed to just before its current one."""
    which = "just before its current one" if position == 1 else f"{position} digests back"
    return f"{clause}: {tag} pointed to it {which}"


def history_unavailable(clause: str, why: str, repository: str) -> str:
    return (
        f"{clause} needs the tag history, which {why}; nothing in {repository} is deleted "
        "until it can be read"
    )


HISTORY_NOT_GIVEN = "this run was not given (configure a history table, or the CLI's --history)"
HISTORY_NOT_READ = "was not read for this repository"
