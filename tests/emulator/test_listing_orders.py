"""Listings stay in order while pushes, re-tags, untags and deletes change the repository."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from acr_emulator import Emulator
from tests.emulator.helpers import admin_headers, push_image

ORDERS = ("", "timedesc", "timeasc")
START = datetime(2025, 3, 1, tzinfo=UTC)


async def listing(
    client: httpx.AsyncClient, headers: dict[str, str], kind: str, order: str, **extra: str
) -> list[dict[str, Any]]:
    """Every item of a listing, following Link headers with small pages."""
    items: list[dict[str, Any]] = []
    url: str | None = f"/acr/v1/team%2Fapp/_{kind}"
    params: dict[str, str] | None = {"n": "7", "orderby": order, **extra}
    while url:
        response = await client.get(url, params=params, headers=headers)
        assert response.status_code == 200, response.text
        items += response.json()[kind]
        link = response.headers.get("link")
        url, params = (link[1 : link.index(">")], None) if link else (None, None)
    return items


def expected_order(items: list[dict[str, Any]], key: str, order: str) -> list[str]:
    """Names (or digests) sorted as ACR sorts them: by key, or by lastUpdateTime then key."""
    by_name = sorted(items, key=lambda item: item[key])
    if order:
        # Same-format timestamps sort as text in time order; stable, so ties stay by name.
        by_name.sort(key=lambda item: item["lastUpdateTime"], reverse=order == "timedesc")
    return [item[key] for item in by_name]


async def assert_listings_match_the_store(
    emulator: Emulator, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    repo = emulator.registry.repositories["team/app"]
    for order in ORDERS:
        tags = await listing(client, headers, "tags", order)
        manifests = await listing(client, headers, "manifests", order)
        assert [t["name"] for t in tags] == expected_order(tags, "name", order)
        assert sorted(t["name"] for t in tags) == sorted(repo.tags)
        assert [m["digest"] for m in manifests] == expected_order(manifests, "digest", order)
        assert sorted(m["digest"] for m in manifests) == sorted(repo.manifests)
        digest = sorted(repo.manifests)[0]
        filtered = await listing(client, headers, "tags", order, digest=digest)
        assert [t["name"] for t in filtered] == expected_order(filtered, "name", order)
        assert {t["name"] for t in filtered} == repo.manifests[digest].tags


async def test_listings_stay_ordered_through_random_changes(
    emulator: Emulator, emulator_client: httpx.AsyncClient
) -> None:
    """After every batch of random pushes, re-tags, untags and deletes, each listing order is
    exactly a fresh sort of what the repository holds."""
    emulator.clock.set(START)
    emulator.clock.freeze()
    emulator.seed(
        {
            "repositories": [
                {
                    "name": "team/app",
                    "manifests": [
                        {
                            "salt": str(i),
                            "pushed": f"2025-01-{i + 1:02d}T00:00:00Z",
                            "tags": [f"t{i}"],
                        }
                        for i in range(20)
                    ],
                }
            ]
        }
    )
    headers = await admin_headers(emulator_client, emulator)
    await assert_listings_match_the_store(emulator, emulator_client, headers)
    rng = random.Random(7)
    for batch in range(6):
        for step in range(8):
            repo = emulator.registry.repositories["team/app"]
            action = rng.choice(("push", "retag", "untag", "delete"))
            emulator.clock.advance(timedelta(seconds=rng.choice((0, 1, 60))))
            if action == "push" or len(repo.manifests) < 3:
                layer = f"layer-{batch}-{step}".encode()
                await push_image(
                    emulator_client, headers, "team/app", f"n{batch}-{step}", layer=layer
                )
            elif action == "retag":
                digest = rng.choice(sorted(repo.manifests))
                body = repo.manifests[digest].body
                tag = rng.choice([*sorted(repo.tags), f"r{batch}-{step}"])
                response = await emulator_client.put(
                    f"/v2/team/app/manifests/{tag}",
                    content=body,
                    headers={**headers, "content-type": repo.manifests[digest].media_type},
                )
                assert response.status_code == 201, response.text
            elif action == "untag" and repo.tags:
                tag = rng.choice(sorted(repo.tags))
                response = await emulator_client.delete(
                    f"/acr/v1/team/app/_tags/{tag}", headers=headers
                )
                assert response.status_code == 202, response.text
            else:
                digest = rng.choice(sorted(repo.manifests))
                response = await emulator_client.delete(
                    f"/v2/team/app/manifests/{digest}", headers=headers
                )
                assert response.status_code == 202, response.text
        await assert_listings_match_the_store(emulator, emulator_client, headers)
