"""ACR's rules for locks, deletes, tag moves and the clock, asserted on the registry's state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from acr_emulator import Emulator, EmulatorConfig
from tests.emulator.helpers import admin_headers, digest_of, push_image

T0 = datetime(2025, 1, 1, tzinfo=UTC)
FIXTURE = {
    "repositories": [
        {
            "name": "app",
            "manifests": [
                {
                    "id": "a",
                    "pushed": "2025-01-01T00:00:00Z",
                    "tags": ["a1", "a2"],
                    "architecture": "amd64",
                },
                {
                    "id": "b",
                    "pushed": "2025-01-02T00:00:00Z",
                    "tags": ["b1"],
                    "architecture": "arm64",
                },
                {"id": "idx", "kind": "index", "manifests": ["a", "b"], "tags": ["multi"]},
                {"id": "sig", "kind": "artifact", "subject": "a"},
                {"id": "sig-of-sig", "kind": "artifact", "subject": "sig"},
            ],
        },
        {"name": "solo", "manifests": [{"tags": ["only"]}]},
    ]
}


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(now=T0, frozen_clock=True)


@pytest.fixture
async def auth(emulator, emulator_client):
    emulator.seed(FIXTURE)
    return await admin_headers(emulator_client, emulator)


def repo(emulator, name="app"):
    return emulator.registry.repositories[name]


def digest(emulator, tag, name="app"):
    return repo(emulator, name).tags[tag].digest


async def lock(client, auth, path, **attributes):
    response = await client.patch(path, json=attributes, headers=auth)
    assert response.status_code == 200, response.text


def disallowed(response):
    return (
        response.status_code == 405
        and response.json()["errors"][0]["code"] == "REGISTRY_DISALLOWED_OPERATION"
    )


@pytest.mark.parametrize("attribute", ["deleteEnabled", "writeEnabled"])
async def test_a_locked_tag_cannot_be_untagged(emulator, emulator_client, auth, attribute):
    """deleteEnabled=false or writeEnabled=false on a tag refuses DELETE of that tag."""
    await lock(emulator_client, auth, "/acr/v1/app/_tags/a1", **{attribute: False})
    response = await emulator_client.delete("/acr/v1/app/_tags/a1", headers=auth)
    assert disallowed(response)
    assert "a1" in repo(emulator).tags


@pytest.mark.parametrize("attribute", ["deleteEnabled", "writeEnabled"])
async def test_a_locked_manifest_cannot_be_deleted(emulator, emulator_client, auth, attribute):
    """deleteEnabled=false or writeEnabled=false on a manifest refuses its delete."""
    target = digest(emulator, "b1")
    await lock(emulator_client, auth, f"/acr/v1/app/_manifests/{target}", **{attribute: False})
    response = await emulator_client.delete(f"/v2/app/manifests/{target}", headers=auth)
    assert disallowed(response)
    assert target in repo(emulator).manifests


async def test_a_locked_tag_protects_its_manifest(emulator, emulator_client, auth):
    """Our safe choice: a tag with deleteEnabled=false blocks deleting the manifest it names."""
    target = digest(emulator, "b1")
    await lock(emulator_client, auth, "/acr/v1/app/_tags/b1", deleteEnabled=False)
    response = await emulator_client.delete(f"/v2/app/manifests/{target}", headers=auth)
    assert disallowed(response)
    assert target in repo(emulator).manifests


async def test_a_locked_referrer_protects_its_subject(emulator, emulator_client, auth):
    """Our safe choice: deleting a subject whose referrer is locked is refused as a whole."""
    subject = digest(emulator, "a1")
    signature = next(iter(repo(emulator).referrers[subject]))
    await lock(emulator_client, auth, f"/acr/v1/app/_manifests/{signature}", writeEnabled=False)
    response = await emulator_client.delete(f"/v2/app/manifests/{subject}", headers=auth)
    assert disallowed(response)
    assert {subject, signature} <= set(repo(emulator).manifests)


async def test_a_write_locked_repository_refuses_deletes_and_pushes(
    emulator, emulator_client, auth
):
    """Repository writeEnabled=false refuses untag, manifest delete and push inside it."""
    await lock(emulator_client, auth, "/acr/v1/app", writeEnabled=False)
    untag = await emulator_client.delete("/acr/v1/app/_tags/b1", headers=auth)
    delete = await emulator_client.delete(
        f"/v2/app/manifests/{digest(emulator, 'b1')}", headers=auth
    )
    index = repo(emulator).manifests[digest(emulator, "multi")]
    push = await emulator_client.put(
        "/v2/app/manifests/again",
        content=index.body,
        headers={**auth, "content-type": index.media_type},
    )
    assert disallowed(untag)
    assert disallowed(delete)
    assert disallowed(push)
    assert "b1" in repo(emulator).tags
    assert "again" not in repo(emulator).tags


async def test_repository_delete_lock_only_guards_the_repository(emulator, emulator_client, auth):
    """Repository deleteEnabled=false refuses deleting the repository, not its images."""
    await lock(emulator_client, auth, "/acr/v1/app", deleteEnabled=False)
    whole = await emulator_client.delete("/acr/v1/app", headers=auth)
    one = await emulator_client.delete(f"/v2/app/manifests/{digest(emulator, 'b1')}", headers=auth)
    assert disallowed(whole)
    assert one.status_code == 202
    assert "app" in emulator.registry.repositories


async def test_a_repository_with_a_locked_image_cannot_be_deleted(emulator, emulator_client, auth):
    """Our safe choice: deleting a repository holding a locked tag is refused."""
    await lock(emulator_client, auth, "/acr/v1/app/_tags/multi", writeEnabled=False)
    response = await emulator_client.delete("/acr/v1/app", headers=auth)
    assert disallowed(response)
    assert len(repo(emulator).manifests) == 5


async def test_manifests_are_deleted_only_by_digest(emulator, emulator_client, auth):
    """DELETE /v2/.../manifests/<tag> is 405 UNSUPPORTED and deletes nothing."""
    response = await emulator_client.delete("/v2/app/manifests/b1", headers=auth)
    assert response.status_code == 405
    assert response.json()["errors"][0] == {
        "code": "UNSUPPORTED",
        "message": "A manifest can only be deleted by digest.",
    }
    assert "b1" in repo(emulator).tags


async def test_deleting_a_manifest_removes_its_tags_and_referrers_recursively(
    emulator, emulator_client, auth
):
    """Both tags of `a`, its signature and the signature's signature go; the index stays."""
    target = digest(emulator, "a1")
    signature = next(iter(repo(emulator).referrers[target]))
    second = next(iter(repo(emulator).referrers[signature]))
    response = await emulator_client.delete(f"/v2/app/manifests/{target}", headers=auth)
    manifests = repo(emulator).manifests
    assert response.status_code == 202
    assert not {target, signature, second} & set(manifests)
    assert not {"a1", "a2"} & set(repo(emulator).tags)
    assert digest(emulator, "multi") in manifests


async def test_deleting_an_index_leaves_its_children(emulator, emulator_client, auth):
    """An index delete removes only the index and its tag."""
    index = digest(emulator, "multi")
    children = [c.digest for c in repo(emulator).manifests[index].children]
    await emulator_client.delete(f"/v2/app/manifests/{index}", headers=auth)
    assert index not in repo(emulator).manifests
    assert set(children) <= set(repo(emulator).manifests)


async def test_untagging_keeps_the_manifest(emulator, emulator_client, auth):
    """DELETE of a tag answers 202 and leaves its manifest, untagged but present."""
    target = digest(emulator, "b1")
    response = await emulator_client.delete("/acr/v1/app/_tags/b1", headers=auth)
    assert response.status_code == 202
    assert repo(emulator).manifests[target].tags == set()


async def test_a_repository_disappears_with_its_last_manifest(emulator, emulator_client, auth):
    """Deleting the only manifest removes the repository; it then answers NAME_UNKNOWN."""
    await emulator_client.delete(
        f"/v2/solo/manifests/{digest(emulator, 'only', 'solo')}", headers=auth
    )
    response = await emulator_client.get("/acr/v1/solo", headers=auth)
    assert "solo" not in emulator.registry.repositories
    assert response.json()["errors"][0]["code"] == "NAME_UNKNOWN"


async def test_repository_delete_reports_what_it_removed(emulator, emulator_client, auth):
    """DELETE /acr/v1/{name} answers 202 with manifestsDeleted and tagsDeleted."""
    only = digest(emulator, "only", "solo")
    response = await emulator_client.delete("/acr/v1/solo", headers=auth)
    assert response.status_code == 202
    assert response.json() == {"manifestsDeleted": [only], "tagsDeleted": ["only"]}
    assert "solo" not in emulator.registry.repositories


async def test_deleting_twice_answers_404(emulator, emulator_client, auth):
    """A second delete of the same manifest or tag is a 404 (clients treat it as done)."""
    target = digest(emulator, "b1")
    await emulator_client.delete(f"/v2/app/manifests/{target}", headers=auth)
    again = await emulator_client.delete(f"/v2/app/manifests/{target}", headers=auth)
    tag = await emulator_client.delete("/acr/v1/app/_tags/b1", headers=auth)
    assert again.status_code == tag.status_code == 404
    assert again.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


async def test_moving_a_tag_keeps_created_and_moves_updated(emulator, emulator_client, auth):
    """Re-pointing b1: tag createdTime stays, lastUpdateTime and the new manifest's move to now."""
    tag_before = repo(emulator).tags["b1"]
    created, old_digest = tag_before.created, tag_before.digest
    emulator.clock.set(T0 + timedelta(days=30))
    new_digest, _ = await push_image(emulator_client, auth, "app", "b1", layer=b"new layer")
    tag = repo(emulator).tags["b1"]
    assert tag.digest == new_digest
    assert tag.created == created
    assert tag.updated == T0 + timedelta(days=30)
    assert repo(emulator).manifests[new_digest].updated == T0 + timedelta(days=30)
    assert "b1" not in repo(emulator).manifests[old_digest].tags


@pytest.mark.parametrize("moves", [True, False])
async def test_retagging_a_held_manifest_moves_its_time_only_if_configured(moves):
    """Tagging an existing manifest moves the tag's lastUpdateTime, and the manifest's only
    when `retag_moves_manifest_time` is on (ACR's behaviour is UNCERTAIN)."""
    emulator = Emulator(EmulatorConfig(now=T0, frozen_clock=True, retag_moves_manifest_time=moves))
    emulator.seed(FIXTURE)
    transport = httpx.ASGITransport(app=emulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://acr.test") as client:
        auth = await admin_headers(client, emulator)
        old = repo(emulator).manifests[digest(emulator, "a1")]
        before = old.updated
        emulator.clock.set(T0 + timedelta(days=30))
        response = await client.put(
            "/v2/app/manifests/prod",
            content=old.body,
            headers={**auth, "content-type": old.media_type},
        )
        assert response.status_code == 201, response.text
        listed = await client.get("/acr/v1/app/_manifests?orderby=timedesc&n=1", headers=auth)
    assert repo(emulator).tags["prod"].updated == T0 + timedelta(days=30)
    assert old.updated == (T0 + timedelta(days=30) if moves else before)
    newest = listed.json()["manifests"][0]["digest"]
    assert (newest == old.digest) is moves


async def test_pushing_over_a_write_locked_tag_is_refused(emulator, emulator_client, auth):
    """A tag with writeEnabled=false cannot be moved by a push."""
    await lock(emulator_client, auth, "/acr/v1/app/_tags/b1", writeEnabled=False)
    before = digest(emulator, "b1")
    with pytest.raises(AssertionError, match="REGISTRY_DISALLOWED_OPERATION"):
        await push_image(emulator_client, auth, "app", "b1", layer=b"other")
    assert digest(emulator, "b1") == before


async def test_patching_attributes_changes_no_timestamp(emulator, emulator_client, auth):
    """Locking a manifest and a tag leaves their lastUpdateTime (so time order is stable)."""
    target = digest(emulator, "b1")
    before = (repo(emulator).manifests[target].updated, repo(emulator).tags["b1"].updated)
    emulator.clock.advance(timedelta(days=3))
    await lock(emulator_client, auth, f"/acr/v1/app/_manifests/{target}", deleteEnabled=False)
    await lock(emulator_client, auth, "/acr/v1/app/_tags/b1", deleteEnabled=False)
    assert (repo(emulator).manifests[target].updated, repo(emulator).tags["b1"].updated) == before


async def test_patch_rejects_unknown_attributes(emulator, emulator_client, auth):
    """A PATCH naming an unknown attribute is a 400 that names it and changes nothing."""
    response = await emulator_client.patch(
        "/acr/v1/app/_tags/b1", json={"deleteEnabld": False}, headers=auth
    )
    assert response.status_code == 400
    assert "deleteEnabld" in response.json()["errors"][0]["message"]
    assert repo(emulator).tags["b1"].attributes.delete_enabled


async def test_read_disabled_refuses_pulls(emulator, emulator_client, auth):
    """readEnabled=false on a manifest makes GET /v2/.../manifests 405."""
    await lock(
        emulator_client, auth, f"/acr/v1/app/_manifests/{digest(emulator, 'b1')}", readEnabled=False
    )
    response = await emulator_client.get("/v2/app/manifests/b1", headers=auth)
    assert disallowed(response)


async def test_list_disabled_hides_from_listings(emulator, emulator_client, auth):
    """listEnabled=false hides a tag from _tags and a repository from the catalog."""
    await lock(emulator_client, auth, "/acr/v1/app/_tags/b1", listEnabled=False)
    await lock(emulator_client, auth, "/acr/v1/solo", listEnabled=False)
    tags = await emulator_client.get("/acr/v1/app/_tags", headers=auth)
    catalog = await emulator_client.get("/acr/v1/_catalog", headers=auth)
    direct = await emulator_client.get("/acr/v1/app/_tags/b1", headers=auth)
    assert "b1" not in [t["name"] for t in tags.json()["tags"]]
    assert catalog.json()["repositories"] == ["app"]
    assert direct.status_code == 200


async def test_docker_manifests_and_nested_indexes_are_accepted(emulator, emulator_client, auth):
    """A Docker v2 manifest, a manifest list over it, and an OCI index over that list are stored."""
    repository = repo(emulator)
    image = repository.manifests[digest(emulator, "b1")]
    docker = json.loads(image.body)
    docker["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json"
    docker["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json"
    docker["layers"] = []
    body = json.dumps(docker).encode()
    put = await emulator_client.put(
        "/v2/app/manifests/docker",
        content=body,
        headers={**auth, "content-type": docker["mediaType"]},
    )
    listing = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
            {
                "mediaType": docker["mediaType"],
                "digest": digest_of(body),
                "size": len(body),
                "platform": {"architecture": "arm64", "os": "linux"},
            }
        ],
    }
    listing_body = json.dumps(listing).encode()
    await emulator_client.put("/v2/app/manifests/list", content=listing_body, headers=auth)
    outer = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": listing["mediaType"],
                "digest": digest_of(listing_body),
                "size": len(listing_body),
            }
        ],
    }
    nested = await emulator_client.put(
        "/v2/app/manifests/nested", content=json.dumps(outer).encode(), headers=auth
    )
    assert put.status_code == nested.status_code == 201
    assert repository.manifests[digest_of(body)].config_media_type == docker["config"]["mediaType"]
    assert repository.manifests[digest(emulator, "list")].children[0].digest == digest_of(body)
    assert repository.manifests[digest(emulator, "nested")].children[0].digest == digest_of(
        listing_body
    )


async def test_the_clock_can_be_set_over_the_admin_endpoint(emulator, emulator_client, auth):
    """POST /_emulator/clock moves registry time; the next push is stamped with it."""
    response = await emulator_client.post("/_emulator/clock", json={"now": "2030-05-01T12:00:00Z"})
    await emulator_client.post("/_emulator/clock", json={"advance_seconds": 60})
    new_digest, _ = await push_image(emulator_client, auth, "later", "1")
    assert response.json()["now"] == "2030-05-01T12:00:00.0000000Z"
    assert emulator.registry.repositories["later"].manifests[new_digest].created == datetime(
        2030, 5, 1, 12, 1, tzinfo=UTC
    )
