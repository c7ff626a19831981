"""Parts of request bodies that several endpoints share."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SignatureBody(BaseModel):
    """``"signature": {"password": "…"}``: the caller's signing password (CONTRACT §5)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    password: str = Field(max_length=1024)
