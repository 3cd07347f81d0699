"""POST /v1/documents and GET /v1/documents/{cid} over HTTP, against the module's app and its on-disk store."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator, Iterator

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient

from ledger_service.access import issue_return_token
from ledger_service.documents.cid import CHUNK_SIZE, Cid, cid_of_bytes
from ledger_service.documents.local import LocalDocumentStore
from tests.api.conftest import ApiEnv, bearer, make_client, return_token
from tests.api.flows import ok, problem
from tests.support.kubo import reference_cid

SMALL_LIMIT = 1000
PDF_HEAD = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"


def pdf(size: int, seed: int = 0) -> bytes:
    """``size`` bytes that start as a PDF does (the rest random)."""
    return PDF_HEAD + random.Random(seed).randbytes(size - len(PDF_HEAD))


def upload(
    client: TestClient, data: bytes, headers: dict[str, str], content_type: str = "application/pdf"
) -> httpx.Response:
    response: httpx.Response = client.post(
        "/v1/documents", files={"file": ("report.pdf", data, content_type)}, headers=headers
    )
    return response


@pytest.fixture(scope="module")
def disk(api_env: ApiEnv) -> LocalDocumentStore:
    """The store the app writes to (the same folder), to look at and damage what it holds."""
    return LocalDocumentStore(api_env.settings.documents_dir)


@pytest.fixture(scope="module")
def small_client(api_env: ApiEnv) -> Iterator[TestClient]:
    """An app that accepts documents of at most SMALL_LIMIT bytes."""
    settings = api_env.settings.model_copy(update={"document_max_bytes": SMALL_LIMIT})
    with make_client(dataclasses.replace(api_env, settings=settings)) as test_client:
        yield test_client


def test_upload_then_download_round_trip(client: TestClient, keys: dict[str, str]) -> None:
    data = pdf(CHUNK_SIZE + 777, seed=1)
    body = ok(upload(client, data, bearer(keys["inspector"])), 201)
    expected = reference_cid(data)
    cid = cid_of_bytes(data)
    assert body == {
        "cid": expected.v0,
        "cid_v1": expected.v1,
        "digest": cid.hex_digest,
        "size": len(data),
        "content_type": "application/pdf",
        "url": f"/v1/documents/{expected.v0}",
    }
    assert Cid.from_digest(body["digest"]).v0 == expected.v0  # the chain's digest leads back to the CID
    for address in (body["url"], f"/v1/documents/{expected.v1}"):
        response = client.get(address)  # public: no credentials
        assert response.status_code == 200, response.text
        assert response.content == data
        assert response.headers["content-type"] == "application/pdf"
        assert response.headers["etag"] == f'"{expected.v0}"'
        assert "immutable" in response.headers["cache-control"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-disposition"] == f'attachment; filename="{expected.v0}.pdf"'
        assert response.headers["content-security-policy"] == "sandbox; default-src 'none'"


def test_a_cached_copy_is_answered_with_304(client: TestClient, keys: dict[str, str]) -> None:
    body = ok(upload(client, b"cache me", bearer(keys["merchant"]), "text/plain"), 201)
    response = client.get(body["url"], headers={"If-None-Match": f'"{body["cid"]}"'})
    assert response.status_code == 304 and response.content == b""
    other = client.get(body["url"], headers={"If-None-Match": '"QmSomethingElse"'})
    assert other.status_code == 200 and other.content == b"cache me"
    assert other.headers["content-type"] == "text/plain; charset=utf-8"


def test_uploading_the_same_bytes_twice_gives_the_same_cid(client: TestClient, keys: dict[str, str]) -> None:
    first = ok(upload(client, b'{"a":1}', bearer(keys["merchant"]), "application/json"), 201)
    again = ok(upload(client, b'{"a":1}', bearer(keys["carrier"]), "application/json"), 201)
    assert again == first


def test_a_consumer_may_upload_with_a_return_token(client: TestClient, api_env: ApiEnv) -> None:
    token = issue_return_token(store=api_env.store, item_id="0x" + "d0" * 32, consumer=api_env.accounts[7], sale_seq=1)
    photo = JPEG_HEAD + random.Random(2).randbytes(5000)
    body = ok(upload(client, photo, return_token(token), "image/jpeg"), 201)
    assert body["cid"] == reference_cid(photo).v0
    assert client.get(body["url"]).content == photo


def test_uploading_needs_credentials(client: TestClient) -> None:
    response = upload(client, b"anonymous", {})
    assert "credentials" in problem(response, 401)["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    problem(upload(client, b"anonymous", bearer("rlk_not_a_key")), 401)


def test_a_type_not_accepted_is_415_listing_the_accepted_ones(
    client: TestClient, keys: dict[str, str], api_env: ApiEnv
) -> None:
    detail = problem(upload(client, b"<script>alert(1)</script>", bearer(keys["merchant"]), "text/html"), 415)["detail"]
    assert "'text/html'" in detail
    for accepted in api_env.settings.document_content_types:
        assert accepted in detail


def test_a_file_part_without_a_type_is_415(client: TestClient, keys: dict[str, str]) -> None:
    raw = b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nhello\r\n--XyZ--\r\n'
    response = client.post(
        "/v1/documents",
        content=raw,
        headers={**bearer(keys["merchant"]), "Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert "no Content-Type" in problem(response, 415)["detail"]


def test_a_request_without_a_file_is_422(client: TestClient, keys: dict[str, str]) -> None:
    response = client.post("/v1/documents", data={"note": "no file"}, headers=bearer(keys["merchant"]))
    assert "file" in problem(response, 422)["detail"]


def test_too_large_is_413_and_nothing_is_stored(
    small_client: TestClient, keys: dict[str, str], disk: LocalDocumentStore
) -> None:
    assert ok(upload(small_client, pdf(SMALL_LIMIT), bearer(keys["merchant"])), 201)["size"] == SMALL_LIMIT
    too_large = pdf(SMALL_LIMIT + 1, seed=1)
    assert f"{SMALL_LIMIT} bytes" in problem(upload(small_client, too_large, bearer(keys["merchant"])), 413)["detail"]
    assert disk.stat(cid_of_bytes(too_large)) is None


def test_a_body_far_over_the_limit_is_refused_before_it_is_read(small_client: TestClient, keys: dict[str, str]) -> None:
    huge = b"z" * (SMALL_LIMIT + 200_000)
    announced = problem(upload(small_client, huge, bearer(keys["merchant"])), 413)  # by its Content-Length

    sent: list[int] = []

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        boundary = b"--B0undary"
        yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n'
        yield b"Content-Type: application/pdf\r\n\r\n"
        for _ in range(40):
            sent.append(10_000)
            yield b"z" * 10_000
        yield b"\r\n" + boundary + b"--\r\n"

    async def post() -> httpx.Response:
        # httpx's ASGI transport hands the body over piece by piece (TestClient would read it all first)
        transport = httpx.ASGITransport(app=small_client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            return await http.post(
                "/v1/documents",
                content=streamed(),
                headers={**bearer(keys["merchant"]), "Content-Type": "multipart/form-data; boundary=B0undary"},
            )

    counted = anyio.run(post)
    assert problem(counted, 413)["detail"] == announced["detail"]
    assert sum(sent) <= SMALL_LIMIT + 64 * 1024 + 10_000  # cut off once past the limit and the multipart envelope


def test_an_anonymous_oversized_upload_is_401(small_client: TestClient) -> None:
    problem(upload(small_client, b"z" * (SMALL_LIMIT + 200_000), {}), 401)


@pytest.mark.parametrize(
    "text",
    ["not-a-cid", "Qm" + "1" * 44, "0x" + "ab" * 32, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"],
)
def test_text_that_is_not_a_cid_is_422(client: TestClient, text: str) -> None:
    assert "CID" in problem(client.get(f"/v1/documents/{text}"), 422)["detail"]


def test_an_unknown_cid_is_404(client: TestClient) -> None:
    cid = cid_of_bytes(b"never uploaded")
    assert cid.v0 in problem(client.get(f"/v1/documents/{cid.v1}"), 404)["detail"]


def test_a_corrupted_blob_is_502_never_the_wrong_bytes(
    client: TestClient, keys: dict[str, str], disk: LocalDocumentStore
) -> None:
    data = b"inspection: conformant, refund in full"
    body = ok(upload(client, data, bearer(keys["inspector"]), "text/plain"), 201)
    cid = Cid.parse(body["cid"])
    disk.blob_path(cid).write_bytes(b"inspection: damaged!!, refund withheld")
    response = client.get(body["url"])
    detail = problem(response, 502)["detail"]
    assert body["cid"] in detail and b"damaged" not in response.content
    disk.blob_path(cid).unlink()
    problem(client.get(body["url"]), 404)
    ok(upload(client, data, bearer(keys["inspector"]), "text/plain"), 201)  # the original restores it
    assert client.get(body["url"]).content == data


def test_the_openapi_documents_the_errors(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    post = paths["/v1/documents"]["post"]
    assert {"201", "401", "413", "415", "422", "502"} <= set(post["responses"])
    assert "multipart/form-data" in post["requestBody"]["content"]
    assert {"200", "404", "422", "502"} <= set(paths["/v1/documents/{cid}"]["get"]["responses"])


ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 200
WINDOWS_EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 50 + b"PE\x00\x00" + b"\x00" * 200


@pytest.mark.parametrize(
    ("data", "declared"),
    [
        (ELF, "application/pdf"),
        (WINDOWS_EXE, "application/pdf"),
        (b"<html><script>alert(1)</script></html>", "application/pdf"),
        (b"%PDF-1.7 but declared as a picture", "image/png"),
        (PDF_HEAD + b"a PDF declared as a JPEG", "image/jpeg"),
        (ELF, "text/plain"),
        (b"name,price\nshoe,\x00\x01\x02\n", "text/csv"),
        ("café,1\n".encode("latin-1"), "text/csv"),
        (b'{"a": "\xff"}', "application/json"),
    ],
)
def test_content_that_is_not_of_the_declared_type_is_415_and_not_stored(
    client: TestClient, keys: dict[str, str], disk: LocalDocumentStore, data: bytes, declared: str
) -> None:
    detail = problem(upload(client, data, bearer(keys["merchant"]), declared), 415)["detail"]
    assert declared in detail
    assert disk.stat(cid_of_bytes(data)) is None


def test_an_empty_file_is_422(client: TestClient, keys: dict[str, str], disk: LocalDocumentStore) -> None:
    for declared in ("application/pdf", "text/plain"):
        assert "empty" in problem(upload(client, b"", bearer(keys["merchant"]), declared), 422)["detail"]
    assert disk.stat(cid_of_bytes(b"")) is None


@pytest.mark.parametrize("charset", ["iso-8859-1", "utf-16", "windows-1252", "utf-7"])
def test_text_must_be_utf8(client: TestClient, keys: dict[str, str], charset: str) -> None:
    response = upload(client, b"plain ascii", bearer(keys["merchant"]), f"text/plain; charset={charset}")
    assert "UTF-8" in problem(response, 415)["detail"]


def test_utf8_text_is_accepted_and_served_as_utf8(client: TestClient, keys: dict[str, str]) -> None:
    data = "naïve,café,ünïcode\n1,2,3\r\n\t".encode()
    body = ok(upload(client, data, bearer(keys["merchant"]), "text/csv; charset=UTF-8"), 201)
    assert body["content_type"] == "text/plain; charset=utf-8"
    response = client.get(body["url"])
    assert response.content == data and response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="{body["cid"]}.txt"'


def test_the_first_uploader_does_not_decide_the_type_others_get(
    client: TestClient, keys: dict[str, str], disk: LocalDocumentStore
) -> None:
    data = b'{"statement": "the same bytes, declared two ways"}'
    first = ok(upload(client, data, bearer(keys["carrier"]), "text/plain"), 201)
    second = ok(upload(client, data, bearer(keys["merchant"]), "application/json"), 201)
    assert first["content_type"] == second["content_type"] == "application/json; charset=utf-8"
    assert client.get(first["url"]).headers["content-type"] == "application/json; charset=utf-8"


def test_a_document_stored_with_a_declared_type_is_served_by_its_bytes(
    client: TestClient, disk: LocalDocumentStore
) -> None:
    """A document whose metadata says something else (stored before checks, or by hand) is served as its bytes
    are: an HTML page never becomes a page of this origin."""
    page = b"<html><body><script>document.cookie</script></body></html>"
    stored = disk.put([page], content_type="text/html")
    response = client.get(f"/v1/documents/{stored.cid.v0}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["content-security-policy"] == "sandbox; default-src 'none'"
    binary = disk.put([b"\x00\x01\x02\x03 not text"], content_type="application/pdf")
    assert client.get(f"/v1/documents/{binary.cid.v0}").headers["content-type"] == "application/octet-stream"


QUOTA = 3 * 1024


def test_a_callers_daily_quota_is_shared_by_every_worker_and_refusals_give_bytes_back(
    api_env: ApiEnv, keys: dict[str, str]
) -> None:
    """Two apps on one database stand for two API workers: the quota counts across both."""
    settings = api_env.settings.model_copy(update={"document_quota_bytes": QUOTA})
    env = dataclasses.replace(api_env, settings=settings)
    with make_client(env) as first, make_client(env) as second:
        merchant = bearer(keys["merchant2"])
        ok(upload(first, pdf(2048, seed=10), merchant), 201)
        problem(upload(second, b"\x7fELF not a pdf" * 10, merchant), 415)  # refused: counts nothing
        ok(upload(second, pdf(1024, seed=11), merchant), 201)  # exactly the quota
        response = upload(first, pdf(100, seed=12), merchant)
        detail = problem(response, 429)["detail"]
        assert str(QUOTA) in detail and "UTC" in detail
        assert 0 < int(response.headers["retry-after"]) <= 86_400
        ok(upload(second, pdf(2048, seed=13), bearer(keys["arbiter"])), 201)  # another caller's own quota
