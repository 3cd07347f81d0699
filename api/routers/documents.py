"""Documents: upload a file, get its IPFS CID (the chain records the digest inside it); download by CID.

- ``POST /documents`` (an actor's API key or a consumer's return token): multipart field ``file``. Its
  part's ``Content-Type`` must be one of ``settings.document_content_types`` (415 lists them) and the
  content must be of that type (magic numbers for binary types, UTF-8 for text:
  :mod:`ledger_service.documents.content`; 415 otherwise, 422 for an empty file); it may hold at
  most ``settings.document_max_bytes`` (413), and each caller (API key, or consumer) may upload
  ``settings.document_quota_bytes`` a UTC day (429 with ``Retry-After`` past it; counted in the
  database, so across workers; an upload that is refused gives its bytes back). The body is read as
  it arrives and refused as soon as it is too large (announced by ``Content-Length``, or counted),
  so an oversized upload is never spooled in full; the store then streams the file to its place,
  hashing it on the way.
- ``GET /documents/{cid}`` (public: a CID is a public address, as on IPFS; CIDv0 or CIDv1 text): the
  bytes, re-hashed against the CID before they are sent; a damaged or swapped stored copy is a 502
  problem and is never served. Content-addressed, so immutable: ``ETag`` is the CIDv0 and caches may
  keep it forever. Served as a download, never as a page: the type comes from the bytes (not from
  any uploader), ``Content-Disposition: attachment``, ``X-Content-Type-Options: nosniff`` and a
  sandboxing ``Content-Security-Policy``.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import re
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, File, Header, Path, Request, UploadFile
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.responses import Response

from api.bodies import MULTIPART_ENVELOPE, counting_receive
from api.deps import DocumentsDep, PrincipalDep, SettingsDep, StoreDep, current_principal
from api.problems import problem_responses
from api.schemas.documents import DocumentPublic
from ledger_service.documents.cid import CHUNK_SIZE, Cid
from ledger_service.documents.content import ContentCheck, extension_of, served_type
from ledger_service.documents.interface import DocumentStore, StoredDocument
from ledger_service.errors import NotFoundError, PayloadTooLargeError, RateLimitedError, UnsupportedMediaTypeError
from ledger_service.settings import Settings
from ledger_service.store.document_quota import DAY_S, day_of, release_upload, reserve_upload
from ledger_service.store.handle import Store

IMMUTABLE = "public, max-age=31536000, immutable"
SANDBOX_CSP = "sandbox; default-src 'none'"
"""A document opened in a browser anyway runs nothing and loads nothing."""
_CHARSET = re.compile(r"^[A-Za-z0-9._:-]{1,40}$")


def _too_large(settings: Settings) -> str:
    return f"the document is larger than the limit of {settings.document_max_bytes} bytes"


class _UploadLimitRoute(APIRoute):
    """A route that checks a POST's credentials before reading its body, and cuts the body off once it
    exceeds the document size limit plus the multipart envelope: FastAPI parses (and spools) a multipart
    body before any dependency runs, so the endpoint alone could only refuse an anonymous or oversized
    upload after receiving all of it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def limited(request: Request) -> Response:
            if request.method != "POST":
                return await handler(request)
            # the caller first (401 before a byte of the body is read), then the size
            await anyio.to_thread.run_sync(current_principal, request, request.app.state.store, None, None)
            settings: Settings = request.app.state.settings
            limit = settings.document_max_bytes + MULTIPART_ENVELOPE
            announced = request.headers.get("content-length", "")
            if announced.isdigit() and int(announced) > limit:
                raise PayloadTooLargeError(_too_large(settings))
            return await handler(Request(request.scope, counting_receive(request.receive, limit, _too_large(settings))))

        return limited


router = APIRouter(prefix="/documents", tags=["documents"], route_class=_UploadLimitRoute)


def _media_type(header: str | None, accepted: tuple[str, ...]) -> str:
    """The part's media type if accepted (lower case; a ``charset`` parameter kept, others dropped): what
    was declared, which :class:`ContentCheck` then holds the content to."""
    base, _, parameters = (header or "").partition(";")
    media_type = base.strip().lower()
    if media_type not in {a.lower() for a in accepted}:
        given = f"{media_type!r}" if media_type else "no Content-Type"
        raise UnsupportedMediaTypeError(
            f"the file's part has {given}; accepted: {', '.join(accepted)} (set the part's Content-Type, "
            "e.g. curl -F 'file=@report.pdf;type=application/pdf')"
        )
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        value = value.strip().strip('"')
        if name.strip().lower() == "charset" and _CHARSET.match(value):
            return f"{media_type}; charset={value.lower()}"
    return media_type


def _chunks(upload: StarletteUploadFile) -> Iterator[bytes]:
    while chunk := upload.file.read(CHUNK_SIZE):
        yield chunk


def _public(request: Request, document: StoredDocument) -> DocumentPublic:
    return DocumentPublic(
        cid=document.cid.v0,
        cid_v1=document.cid.v1,
        digest=document.cid.hex_digest,
        size=document.size,
        content_type=document.content_type,
        url=str(request.app.url_path_for("get_document", cid=document.cid.v0)),
    )


@router.post(
    "",
    status_code=201,
    response_model=DocumentPublic,
    responses=problem_responses(401, 413, 415, 422, 429, 502, 503),
    summary="Store a document; get its IPFS CID and on-chain digest",
)
def upload(
    request: Request,
    file: Annotated[UploadFile, File(description="the document; its part's Content-Type must be an accepted one")],
    principal: PrincipalDep,
    documents: DocumentsDep,
    settings: SettingsDep,
    store: StoreDep,
) -> DocumentPublic:
    """Stores the file and answers its CID exactly as `ipfs add FILE` (default settings) computes it, and the
    digest the chain records when a document is referenced. Storing the same bytes again is harmless and gives
    the same CID. Actors (API key) and consumers (return token, e.g. photos for a return) may upload."""
    stored = store_upload(file=file, principal=principal.principal, documents=documents, settings=settings, store=store)
    return _public(request, stored)


def store_upload(
    *, file: StarletteUploadFile, principal: str, documents: DocumentStore, settings: Settings, store: Store
) -> StoredDocument:
    """Stores an uploaded file as a document of ``principal`` (checked as ``POST /v1/documents`` checks it: its
    declared type, its content, its size and the caller's daily quota); also the pages' photo uploads."""
    check = ContentCheck(_media_type(file.content_type, settings.document_content_types))
    size = _size_of(file)
    if size > settings.document_max_bytes:
        raise PayloadTooLargeError(_too_large(settings))
    now = int(time.time())
    day = day_of(now)
    if not reserve_upload(store, principal=principal, day=day, size=size, limit=settings.document_quota_bytes):
        raise RateLimitedError(
            f"this upload of {size} bytes would pass your quota of {settings.document_quota_bytes} bytes of "
            "documents a day (UTC); upload it after midnight UTC",
            retry_after=(day + 1) * DAY_S - now,
        )
    try:
        head = file.file.read(CHUNK_SIZE)
        served = check.start(head)
        stored = documents.put(
            check.stream(itertools.chain([head], _chunks(file))),
            content_type=served,
            max_bytes=settings.document_max_bytes,
        )
    except BaseException:  # nothing was stored: the caller's quota gets the bytes back
        release_upload(store, principal=principal, day=day, size=size)
        raise
    return dataclasses.replace(stored, content_type=served)


def _size_of(upload: StarletteUploadFile) -> int:
    """The spooled file's length (the multipart parser counted it; measured if it did not)."""
    if upload.size is not None:
        return upload.size
    position = upload.file.tell()
    size = upload.file.seek(0, io.SEEK_END)
    upload.file.seek(position)
    return size


@router.get(
    "/{cid}",
    name="get_document",
    response_class=Response,
    responses={
        200: {"description": "the document's bytes, with its stored content type", "content": {"*/*": {}}},
        304: {"description": "the client's cached copy (If-None-Match) is this document"},
        **problem_responses(404, 422, 502, 503),
    },
    summary="Download a document by CID (checked against the CID before it is sent)",
)
def get_document(
    cid: Annotated[str, Path(max_length=128, description="the document's CID: CIDv0 (Qm...) or CIDv1 (bafy...)")],
    documents: DocumentsDep,
    if_none_match: Annotated[str | None, Header(description="an ETag from an earlier answer")] = None,
) -> Response:
    """Public: anyone holding a CID may fetch it, as from an IPFS gateway. The stored bytes are hashed again
    first; if they no longer match the CID the answer is a 502 problem, never the wrong bytes."""
    parsed = Cid.parse(cid)
    stored = documents.stat(parsed)
    if stored is None:
        raise NotFoundError(f"no document {parsed.v0} is stored here (upload it with POST /v1/documents)")
    headers = {
        "ETag": f'"{parsed.v0}"',
        "Cache-Control": IMMUTABLE,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": SANDBOX_CSP,
    }
    if if_none_match is not None and _matches(if_none_match, parsed):
        return Response(status_code=304, headers=headers)
    data = documents.read(parsed)
    served = served_type(data)  # from the bytes, whatever an uploader once declared
    disposition = f'attachment; filename="{parsed.v0}.{extension_of(served)}"'
    return Response(content=data, headers={**headers, "Content-Type": served, "Content-Disposition": disposition})


def _matches(if_none_match: str, cid: Cid) -> bool:
    tags = {tag.strip().removeprefix("W/").strip('"') for tag in if_none_match.split(",")}
    return "*" in tags or cid.v0 in tags or cid.v1 in tags
