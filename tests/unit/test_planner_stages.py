"""The planner's stages on their own, where a property is clearer there than in whole plans."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from acr_core.planning import competition
from acr_core.planning.competition import Clause


@given(
    st.integers(0, 5),
    st.lists(st.lists(st.integers(0, 40), max_size=8), max_size=5),
)
def test_competing_in_rounds_ends_where_one_round_over_all_would(
    newest: int, rounds: list[list[int]]
) -> None:
    """Images joining in rounds end kept or beaten exactly as if they had all joined at once."""
    batches: list[list[str]] = []
    seen: set[int] = set()
    for drawn in rounds:  # an image joins once
        batches.append([f"d{n:02}" for n in dict.fromkeys(drawn) if n not in seen])
        seen.update(drawn)
    everyone = [d for batch in batches for d in batch]
    rank = {d: int(d[1:]) for d in everyone}
    clauses = (Clause(newest, "kept"),)
    standing, beaten = competition.start(clauses), []
    for batch in batches:
        standing, lost = competition.compete(standing, rank, batch)
        beaten.extend(lost)
    at_once, beaten_at_once = competition.compete(competition.start(clauses), rank, everyone)
    assert standing.kept == at_once.kept
    assert sorted(beaten) == sorted(beaten_at_once)
    assert len(beaten) == len(set(beaten))
