"""Request bodies of the service (pydantic): unknown fields refused, every number bounded."""
from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["BatchingParams", "ClusterSpec", "InferInput", "InferRequest", "PlanRequest",
           "RegisterRequest", "RunRequest", "VersionRef"]

Name = Annotated[str, Field(min_length=1, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BatchingParams(_Strict):
    """How a version batches: ``adaptive`` (rate-tuned wait) or ``fixed`` (always wait for
    ``max_batch_size`` when idle); both drain a backlog at up to ``max_batch_size``."""

    policy: Literal["adaptive", "fixed"] = "adaptive"
    max_batch_size: int = Field(16, ge=1, le=256)
    max_wait_ms: float = Field(10.0, ge=0, le=1000)
    max_queue: int = Field(256, ge=1, le=100_000)


class RegisterRequest(_Strict):
    """``PUT /v2/repository/models/{name}/versions/{version}``."""

    source: str = Field(min_length=4, max_length=512,
                        description="preset:<name>, checkpoint:<relative path> or api:<model-id>")
    default: bool = False
    load: bool = True
    max_new_tokens: int = Field(32, ge=1, le=1024)
    batching: BatchingParams = BatchingParams()


class VersionRef(_Strict):
    """Optional body of load/unload: which version (default: the default version)."""

    version: Name | None = None
    parameters: dict[str, Any] | None = None


class InferInput(_Strict):
    """One KServe V2 input tensor; the service takes one BYTES tensor of prompts."""

    name: str = Field(min_length=1, max_length=64)
    shape: list[Annotated[int, Field(ge=0)]] = Field(min_length=1, max_length=2)
    datatype: Literal["BYTES"]
    data: list[Annotated[str, Field(max_length=4096)]] = Field(min_length=1, max_length=256)
    parameters: dict[str, Any] | None = None


class InferParameters(_Strict):
    max_new_tokens: int | None = Field(None, ge=1, le=1024)


class InferRequest(_Strict):
    """``POST /v2/models/{name}[/versions/{v}]/infer`` (KServe V2 inference request)."""

    id: str | None = Field(None, max_length=128)
    inputs: list[InferInput] = Field(min_length=1, max_length=1)
    outputs: list[dict[str, Any]] | None = Field(None, max_length=1)
    parameters: InferParameters | None = None


class ClusterSpec(_Strict):
    """The cluster to plan on: ``workers`` equal workers, or one speed per worker."""

    workers: int | None = Field(None, ge=1, le=1024)
    speeds: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] | None = \
        Field(None, min_length=1, max_length=1024)
    cores: int | list[Annotated[int, Field(ge=1, le=4096)]] = 1
    bandwidth: float = Field(1.0, gt=0)

    @field_validator("bandwidth")
    @classmethod
    def _bandwidth(cls, v: float) -> float:
        if math.isnan(v):
            raise ValueError("bandwidth must be a number > 0 (bytes per second, or inf)")
        return v


class PlanRequest(_Strict):
    """``POST /v1/plan``: a DAG, a cluster, a policy."""

    graph: dict[str, Any] = Field(description="node-link JSON ({nodes, links|edges}) or a "
                                              "WfFormat 1.4/1.5 document")
    format: Literal["node_link", "wfformat"] = "node_link"
    cluster: ClusterSpec
    policy: str = Field("heft", min_length=1, max_length=32)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    placements: bool = True


class RunRequest(_Strict):
    """``POST /v1/runs``: a pipeline registered in the service, its inputs, a policy."""

    pipeline: Name
    inputs: dict[Annotated[str, Field(max_length=128)], Any] = Field(default_factory=dict,
                                                                    max_length=64)
    policy: str = Field("heft", min_length=1, max_length=32)
