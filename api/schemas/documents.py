"""Documents: a file stored under its IPFS CID, whose digest the chain records."""

from __future__ import annotations

from pydantic import BaseModel, Field


class DocumentPublic(BaseModel):
    """A stored document and every form of its address."""

    cid: str = Field(
        description="the IPFS CIDv0 (what `ipfs add FILE` prints with default settings)",
        examples=["QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"],
    )
    cid_v1: str = Field(
        description="the same CID as CIDv1 base32 (`ipfs cid base32 <cid>`)",
        examples=["bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"],
    )
    digest: str = Field(
        description="the on-chain form of the reference: the sha2-256 digest inside the CID, 0x + 64 hex digits "
        "(send the CID or this digest wherever a document reference is asked for)",
        examples=["0x" + "c3" * 32],
    )
    size: int = Field(description="the document's length in bytes")
    content_type: str = Field(
        description="the media type it is served with, decided by its bytes (not by what an upload declared)",
        examples=["application/pdf"],
    )
    url: str = Field(description="where to download it: GET this path of the API (public, like an IPFS gateway)")
