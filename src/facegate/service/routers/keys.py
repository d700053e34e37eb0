"""API keys (admin keys only): list, create (the key is shown once), revoke."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from facegate.service import operations as ops
from facegate.service.auth import AdminCaller
from facegate.service.routers.deps import Runner

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class NewKey(BaseModel):
    role: Literal["admin", "door"] = Field(description="admin: everything; door: verify, identify, compare")
    name: str | None = Field(default=None, description="A label for the audit log (default: the role and key id)")


@router.get("", summary="Every key (never its secret)")
async def list_keys(caller: AdminCaller, runner: Runner) -> dict[str, Any]:
    return await runner.call(ops.keys)


@router.post("", status_code=201, summary="Create a key: the answer's `key` is shown this once")
async def create_key(request: Request, body: NewKey, caller: AdminCaller, runner: Runner) -> dict[str, Any]:
    return await runner.call(ops.new_key, caller.source(request), body.role, body.name)


@router.delete(
    "/{key_id}", summary="Revoke a key (at once, for every worker)", responses={404: {"description": "No such key"}}
)
async def revoke_key(request: Request, key_id: str, caller: AdminCaller, runner: Runner) -> dict[str, Any]:
    return await runner.call(ops.drop_key, caller.source(request), key_id)
