"""References to data held elsewhere: messages carry these, never the data.

An object reference names an S3 object and the SHA-256 of its bytes, so a
reader can tell it got exactly what the producer wrote.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

S3_URI_PATTERN = (
    r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[A-Za-z0-9!_.*'()/=+-]{1,900}$"
)


class ObjectRef(BaseModel):
    """One immutable object in the object store."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uri: str = Field(
        pattern=S3_URI_PATTERN,
        description="s3://bucket/key of the object.",
        examples=["s3://models/digits/round-003/model.cbm"],
    )
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the object's bytes, lower-case hex.",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    )
    size_bytes: int = Field(ge=0, le=2**40, description="Size of the object.")

    @field_validator("uri")
    @classmethod
    def _key_stays_in_its_bucket(cls, uri: str) -> str:
        # Keys become file paths in some stores and URL paths in all: a '.'
        # or '..' segment, or an empty one, could address another prefix.
        segments = uri.removeprefix("s3://").split("/")[1:]
        if any(segment in {"", ".", ".."} for segment in segments):
            raise ValueError(f"key of {uri!r} has an empty, '.' or '..' segment")
        return uri

    @property
    def bucket(self) -> str:
        """Return the bucket part of the URI."""
        return self.uri.removeprefix("s3://").split("/", 1)[0]

    @property
    def key(self) -> str:
        """Return the key part of the URI."""
        return self.uri.removeprefix("s3://").split("/", 1)[1]


class DatasetRef(BaseModel):
    """A registered dataset snapshot: features, labels and its split."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset_id: str = Field(
        min_length=3,
        max_length=128,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="Name and content hash of the snapshot.",
        examples=["digits-5c1e0a7b9d21"],
    )
    manifest: ObjectRef = Field(description="The snapshot's manifest object.")
