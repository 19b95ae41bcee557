"""The REST surface: shapes, paging, ordering, names, errors, blobs and referrers (in-process)."""

from __future__ import annotations

import json
import re

import pytest

from tests.emulator.helpers import admin_headers, digest_of, push_image

FIXTURE = {
    "repositories": [
        {
            "name": "team/app",
            "manifests": [
                {
                    "id": "old",
                    "pushed": "2025-01-01T00:00:00Z",
                    "tags": ["v1"],
                    "architecture": "arm64",
                },
                {"id": "left", "pushed": "2025-01-10T00:00:00Z"},
                {
                    "id": "new",
                    "pushed": "2025-02-01T00:00:00Z",
                    "tags": ["v2", "latest"],
                    "size": 5000,
                    "layers": 2,
                },
                {
                    "id": "idx",
                    "kind": "index",
                    "pushed": "2025-02-02T00:00:00Z",
                    "manifests": ["old", "new"],
                    "tags": ["multi"],
                },
                {
                    "id": "sig",
                    "kind": "artifact",
                    "subject": "idx",
                    "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
                },
                {
                    "id": "sbom",
                    "kind": "artifact",
                    "subject": "idx",
                    "artifactType": "application/spdx+json",
                },
            ],
        },
        {"name": "alpha", "manifests": [{"tags": ["1"]}]},
        {"name": "zulu", "manifests": [{"tags": ["1"]}]},
    ]
}


@pytest.fixture
async def auth(emulator, emulator_client):
    emulator.seed(FIXTURE)
    return await admin_headers(emulator_client, emulator)


def state(emulator, name="team/app"):
    return emulator.registry.repositories[name]


async def test_catalog_pages_with_link_headers(emulator_client, auth):
    """Following Link headers with n=1 visits every repository once, in lexical order."""
    seen, links = [], []
    url: str | None = "/acr/v1/_catalog?n=1"
    while url:
        response = await emulator_client.get(url, headers=auth)
        seen += response.json()["repositories"]
        link = response.headers.get("link")
        links.append(link)
        url = link[1 : link.index(">")] if link else None
    assert seen == ["alpha", "team/app", "zulu"]
    assert links[0] == '</acr/v1/_catalog?last=alpha&n=1&orderby=>; rel="next"'
    assert links[-1] is None


async def test_page_size_defaults_to_100_and_is_capped_at_1000(emulator, emulator_client, auth):
    """Without n a page holds 100 names; n=5000 yields 1000 and a Link."""
    emulator.seed({"repositories": [{"name": f"r{i:04d}", "manifests": [{}]} for i in range(1001)]})
    default = await emulator_client.get("/acr/v1/_catalog", headers=auth)
    capped = await emulator_client.get("/acr/v1/_catalog?n=5000", headers=auth)
    assert len(default.json()["repositories"]) == 100
    assert len(capped.json()["repositories"]) == 1000
    assert "n=1000" in capped.headers["link"]


async def test_a_bad_page_size_is_a_400_naming_n(emulator_client, auth):
    """n=0 is refused with PAGINATION_NUMBER_INVALID."""
    response = await emulator_client.get("/acr/v1/_catalog?n=0", headers=auth)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "PAGINATION_NUMBER_INVALID"


@pytest.mark.parametrize(
    ("orderby", "expected"),
    [("timedesc", ["multi", "latest", "v2", "v1"]), ("timeasc", ["v1", "latest", "v2", "multi"])],
)
async def test_tags_are_ordered_by_last_update_time(emulator_client, auth, orderby, expected):
    """orderby sorts tags by lastUpdateTime (ties by name) across pages."""
    names = []
    url: str | None = f"/acr/v1/team%2Fapp/_tags?n=1&orderby={orderby}"
    while url:
        response = await emulator_client.get(url, headers=auth)
        names += [t["name"] for t in response.json()["tags"]]
        link = response.headers.get("link")
        url = link[1 : link.index(">")] if link else None
    assert names == expected


async def test_time_ordered_paging_survives_deleting_the_last_item_seen(
    emulator, emulator_client, auth
):
    """The Link continuation still works after the page's last manifest is deleted."""
    first = await emulator_client.get(
        "/acr/v1/team%2Fapp/_manifests?n=2&orderby=timedesc", headers=auth
    )
    page = [m["digest"] for m in first.json()["manifests"]]
    await emulator_client.delete(f"/v2/team/app/manifests/{page[-1]}", headers=auth)
    link = first.headers["link"]
    rest = await emulator_client.get(link[1 : link.index(">")], headers=auth)
    remaining = [m["digest"] for m in rest.json()["manifests"]]
    expected = sorted(state(emulator).manifests.values(), key=lambda m: m.updated, reverse=True)
    assert remaining == [m.digest for m in expected if m.digest not in page][:2]


async def test_link_headers_have_acr_format(emulator_client, auth):
    """Link is relative, names are %2F-encoded, `last` is URL-encoded and `orderby` is echoed
    (empty when not given), as in ACR's recorded headers."""
    plain = await emulator_client.get("/acr/v1/team/app/_manifests?n=1", headers=auth)
    ordered = await emulator_client.get("/acr/v1/team/app/_tags?n=1&orderby=timedesc", headers=auth)
    assert re.fullmatch(
        r'</acr/v1/team%2Fapp/_manifests\?last=sha256%3A[0-9a-f]{64}&n=1&orderby=>; rel="next"',
        plain.headers["link"],
    )
    assert re.fullmatch(
        r'</acr/v1/team%2Fapp/_tags\?last=[^&>]+&n=1&orderby=timedesc>; rel="next"',
        ordered.headers["link"],
    )


async def test_names_with_slashes_work_raw_and_percent_encoded(emulator_client, auth):
    """team/app and team%2Fapp name the same repository."""
    raw = await emulator_client.get("/acr/v1/team/app", headers=auth)
    encoded = await emulator_client.get("/acr/v1/team%2Fapp", headers=auth)
    assert raw.status_code == encoded.status_code == 200
    assert raw.json()["imageName"] == encoded.json()["imageName"] == "team/app"


async def test_manifest_attributes_have_acr_fields_and_untagged_ones_omit_tags(
    emulator, emulator_client, auth
):
    """Listing shows mediaType, platform, size, references; untagged manifests have no tags key."""
    response = await emulator_client.get("/acr/v1/team%2Fapp/_manifests", headers=auth)
    items = {m["digest"]: m for m in response.json()["manifests"]}
    repo = state(emulator)
    new = items[repo.tags["v2"].digest]
    index = items[repo.tags["multi"].digest]
    untagged = [m for m in items.values() if "tags" not in m]
    assert new["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert new["configMediaType"] == "application/vnd.oci.image.config.v1+json"
    assert (new["architecture"], new["os"], new["tags"]) == ("amd64", "linux", ["latest", "v2"])
    assert new["imageSize"] == 5000 + _config_size(repo, new["digest"])  # layers + config
    assert [r["architecture"] for r in index["references"]] == ["arm64", "amd64"]
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert len(untagged) == 3  # the leftover and the two referrers
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", new["createdTime"])


def _config_size(repo, digest):
    return json.loads(repo.manifests[digest].body)["config"]["size"]


async def test_tags_can_be_filtered_by_digest(emulator, emulator_client, auth):
    """digest= keeps only the tags pointing at that manifest."""
    digest = state(emulator).tags["v2"].digest
    response = await emulator_client.get(f"/acr/v1/team%2Fapp/_tags?digest={digest}", headers=auth)
    assert [t["name"] for t in response.json()["tags"]] == ["latest", "v2"]


async def test_one_tag_and_one_manifest_are_wrapped_as_acr_does(emulator, emulator_client, auth):
    """GET tag answers {registry, imageName, tag}; GET manifest {registry, imageName, manifest}."""
    tag = (await emulator_client.get("/acr/v1/team%2Fapp/_tags/v1", headers=auth)).json()
    digest = tag["tag"]["digest"]
    manifest = (
        await emulator_client.get(f"/acr/v1/team%2Fapp/_manifests/{digest}", headers=auth)
    ).json()
    assert tag["registry"] == manifest["registry"] == "acr.test"
    assert tag["imageName"] == "team/app"
    assert tag["tag"]["signed"] is False
    assert manifest["manifest"]["digest"] == digest == state(emulator).tags["v1"].digest


async def test_a_non_digest_manifest_path_is_the_plain_text_router_404(emulator_client):
    """/_manifests/<not a digest> is text/plain '404 page not found' with no challenge."""
    response = await emulator_client.get("/acr/v1/team%2Fapp/_manifests/latest")
    assert response.status_code == 404
    assert response.text == "404 page not found\n"
    assert response.headers["content-type"].startswith("text/plain")
    assert "www-authenticate" not in response.headers


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/acr/v1/nope", "NAME_UNKNOWN"),
        ("/acr/v1/team%2Fapp/_tags/nope", "TAG_UNKNOWN"),
        ("/v2/team/app/manifests/nope", "MANIFEST_UNKNOWN"),
        (f"/acr/v1/team%2Fapp/_manifests/sha256:{'0' * 64}", "MANIFEST_UNKNOWN"),
    ],
)
async def test_missing_things_answer_404_with_acr_codes(emulator_client, auth, path, code):
    """Unknown repository, tag and manifest answer 404 with ACR's error code."""
    response = await emulator_client.get(path, headers=auth)
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == code


async def test_every_response_carries_acr_headers(emulator_client, auth):
    """Docker-Distribution-Api-Version, the exposed-headers list and a correlation id are on
    every answer: success, 202, 401, JSON 404 and the router's text 404."""
    responses = [
        await emulator_client.get("/acr/v1/_catalog", headers=auth),
        await emulator_client.delete("/acr/v1/team/app/_tags/v2", headers=auth),
        await emulator_client.get("/acr/v1/team/app"),
        await emulator_client.get("/acr/v1/team/app/_tags/nope", headers=auth),
        await emulator_client.get("/acr/v1/team/app/_manifests/latest", headers=auth),
    ]
    assert [r.status_code for r in responses] == [200, 202, 401, 404, 404]
    for response in responses:
        assert response.headers["docker-distribution-api-version"] == "registry/2.0"
        assert response.headers["access-control-expose-headers"] == (
            "Docker-Content-Digest, WWW-Authenticate, Link, X-Ms-Correlation-Request-Id"
        )
        assert response.headers["x-ms-correlation-request-id"]


async def test_manifest_get_and_head_return_the_stored_bytes_and_digest(
    emulator, emulator_client, auth
):
    """GET returns bytes whose sha256 is Docker-Content-Digest; HEAD returns only headers."""
    got = await emulator_client.get("/v2/team/app/manifests/multi", headers=auth)
    head = await emulator_client.head("/v2/team/app/manifests/multi", headers=auth)
    assert digest_of(got.content) == got.headers["docker-content-digest"]
    assert got.headers["content-type"] == "application/vnd.oci.image.index.v1+json"
    assert head.content == b""
    assert head.headers["docker-content-digest"] == state(emulator).tags["multi"].digest


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ([], 200),
        (["*/*"], 200),
        (["application/vnd.oci.image.manifest.v1+json"], 404),
        (
            [
                "application/vnd.oci.image.index.v1+json; q=0.9",
                "application/vnd.oci.image.manifest.v1+json",
            ],
            200,
        ),
    ],
)
async def test_an_index_is_returned_only_to_a_client_that_accepts_it(
    emulator_client, auth, accept, status
):
    """An index pulled with an Accept list lacking index types is MANIFEST_UNKNOWN; repeated
    Accept lines count together."""
    headers = [*auth.items(), *(("accept", value) for value in accept)]
    response = await emulator_client.get("/v2/team/app/manifests/multi", headers=headers)
    assert response.status_code == status
    if status == 404:
        assert response.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    image = await emulator_client.get("/v2/team/app/manifests/v1", headers=headers)
    assert image.status_code == 200


async def test_v2_catalog_and_tag_list(emulator_client, auth):
    """/v2/_catalog and /v2/{name}/tags/list page lexically."""
    catalog = await emulator_client.get("/v2/_catalog?n=2", headers=auth)
    tags = await emulator_client.get("/v2/team/app/tags/list", headers=auth)
    assert catalog.json() == {"repositories": ["alpha", "team/app"]}
    assert catalog.headers["link"] == '</v2/_catalog?last=team%2Fapp&n=2>; rel="next"'
    assert tags.json() == {"name": "team/app", "tags": ["latest", "multi", "v1", "v2"]}


async def test_referrers_list_and_filter_by_artifact_type(emulator, emulator_client, auth):
    """The referrers API lists the index's signature and SBOM, and filters by artifactType."""
    digest = state(emulator).tags["multi"].digest
    everything = await emulator_client.get(f"/v2/team/app/referrers/{digest}", headers=auth)
    only_sbom = await emulator_client.get(
        f"/v2/team/app/referrers/{digest}",
        params={"artifactType": "application/spdx+json"},
        headers=auth,
    )
    assert everything.json()["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert {d["artifactType"] for d in everything.json()["manifests"]} == {
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        "application/spdx+json",
    }
    assert [d["artifactType"] for d in only_sbom.json()["manifests"]] == ["application/spdx+json"]
    assert only_sbom.headers["oci-filters-applied"] == "artifactType"


async def test_chunked_blob_upload_then_head_get_and_delete(emulator, emulator_client, auth):
    """POST, two PATCHes and a PUT store the blob; HEAD/GET read it; DELETE unlinks it."""
    data = b"0123456789abcdef"
    start = await emulator_client.post("/v2/team/app/blobs/uploads/", headers=auth)
    location = start.headers["location"]
    first = await emulator_client.patch(
        location, content=data[:10], headers={**auth, "content-range": "0-9"}
    )
    bad = await emulator_client.patch(
        location, content=data[10:], headers={**auth, "content-range": "0-5"}
    )
    await emulator_client.patch(
        location, content=data[10:], headers={**auth, "content-range": "10-15"}
    )
    done = await emulator_client.put(location, params={"digest": digest_of(data)}, headers=auth)
    blob_url = f"/v2/team/app/blobs/{digest_of(data)}"
    head = await emulator_client.head(blob_url, headers=auth)
    got = await emulator_client.get(blob_url, headers=auth)
    deleted = await emulator_client.delete(blob_url, headers=auth)
    gone = await emulator_client.get(blob_url, headers=auth)
    assert first.headers["range"] == "0-9"
    assert bad.status_code == 416
    assert done.status_code == 201
    assert head.headers["content-length"] == "16"
    assert got.content == data
    assert deleted.status_code == 202
    assert gone.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


async def test_a_blob_whose_digest_does_not_match_is_refused(emulator, emulator_client, auth):
    """A monolithic upload under the wrong digest is DIGEST_INVALID and stores nothing."""
    response = await emulator_client.post(
        "/v2/team/app/blobs/uploads/",
        params={"digest": digest_of(b"other")},
        content=b"data",
        headers=auth,
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert digest_of(b"data") not in emulator.registry.blobs


async def test_a_manifest_naming_a_missing_blob_is_refused(emulator, emulator_client, auth):
    """Pushing a manifest whose layer was never uploaded is MANIFEST_BLOB_UNKNOWN."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest_of(b"c"),
            "size": 1,
        },
        "layers": [],
    }
    response = await emulator_client.put(
        "/v2/fresh/manifests/v1", content=json.dumps(manifest).encode(), headers=auth
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    assert "fresh" not in emulator.registry.repositories


async def test_a_push_by_digest_must_match_the_bytes(emulator_client, auth):
    """PUT /manifests/<digest> with other bytes is DIGEST_INVALID."""
    response = await emulator_client.put(
        f"/v2/team/app/manifests/sha256:{'1' * 64}",
        content=b'{"schemaVersion":2,"manifests":[]}',
        headers=auth,
    )
    assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"


async def test_pushed_manifests_are_stored_with_real_digests_and_platform(
    emulator, emulator_client, auth
):
    """An image pushed through the OCI API is stored under its sha256 with its platform."""
    digest, body = await push_image(
        emulator_client, auth, "pushed/app", "1.0", architecture="s390x"
    )
    stored = emulator.registry.repositories["pushed/app"].manifests[digest]
    assert stored.body == body
    assert stored.architecture == "s390x"
    assert emulator.registry.repositories["pushed/app"].tags["1.0"].digest == digest
