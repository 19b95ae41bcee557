"""Policy files as editors save them: with a byte order mark, or a key written twice."""

from __future__ import annotations

import pytest

from acr_core.planning.policy import PolicyError, load_policy

GOOD = '{"version": 1, "rules": [{"name": "a", "repositories": ["x"], "keepLatest": 1}]}'


def test_a_utf8_byte_order_mark_is_read() -> None:
    """A policy saved as UTF-8 with a BOM (Notepad) reads as the same policy without it."""
    assert load_policy("\ufeff" + GOOD) == load_policy(GOOD)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{\n  "version": 1,\n  "rules": [\n    {\n      "name": "a",\n'
            '      "repositories": ["x"],\n      "keepLatest": 1,\n      "keepLatest": 2\n'
            "    }\n  ]\n}\n",
            "the key 'keepLatest' appears twice in one object (line 8); keep one",
        ),
        (
            '{"version": 1,\n"rules": [],\n"version": 1}',
            "the key 'version' appears twice in one object (line 3); keep one",
        ),
        (
            '{"version": 1, "rules": [\n{"name": "a", "repositories": ["x"]},\n'
            '{"name": "b", "repositories": ["y"], "name": "c"}]}',
            "the key 'name' appears twice in one object (line 3); keep one",
        ),
    ],
)
def test_a_duplicate_key_says_which_and_on_which_line(text: str, message: str) -> None:
    """A key written twice in one object is refused naming the key and its second line."""
    with pytest.raises(PolicyError) as caught:
        load_policy(text)
    assert caught.value.problems == (message,)
