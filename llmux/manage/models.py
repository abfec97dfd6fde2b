"""`GET /model/info`: the model groups and deployments serving now, in LiteLLM's shape.

Each deployment is one `data` item: `model_name` (its group), `litellm_params` (the upstream
model as `provider/model`, the API base, rpm/tpm) and `model_info` (id, provider, prices per
token and per million, limits, context window). Prices come from the deployment's config
overrides, else the shipped price table. Credentials (`api_key`, `headers`) are never read into
the answer. `groups` adds each group's deployments and aliases. Any admin caller may read it; a
key restricted to some models sees only those groups.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from llmux.manage.control import serving_runtime
from llmux.manage.routes import Ctx, endpoint
from llmux.pricing import Price
from llmux.providers import DEFAULT_BASE_URLS
from llmux.routing import Deployment
from llmux.runtime import Runtime, price_book

__all__ = [
    "LitellmParams",
    "ModelGroup",
    "ModelInfo",
    "ModelInfoItem",
    "ModelInfoList",
    "ModelInfoQuery",
]

_PER_TOKEN = 1_000_000
"""Prices are configured per million tokens; LiteLLM reports them per token."""


class ModelInfoQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Filters of `/model/info`."""

    litellm_model_id: Annotated[
        str | None, msgspec.Meta(description="Only this deployment id.")
    ] = None
    model: Annotated[str | None, msgspec.Meta(description="Only this model group.")] = None


class LitellmParams(msgspec.Struct, kw_only=True):
    """How the deployment calls its upstream (no credentials)."""

    model: Annotated[str, msgspec.Meta(description="`provider/upstream_model`.")]
    custom_llm_provider: Annotated[str, msgspec.Meta(description="The provider's type.")]
    api_base: str | None
    api_version: str | None
    rpm: int | None
    tpm: int | None


class ModelInfo(msgspec.Struct, kw_only=True):
    """The deployment's identity, prices, limits and context window."""

    id: Annotated[str, msgspec.Meta(description="The deployment id (`provider/model`).")]
    provider: str
    upstream_model: str
    mode: Literal["chat"] = "chat"
    price_source: Literal["config", "price_table"] | None
    input_cost_per_token: float | None
    output_cost_per_token: float | None
    cache_read_input_token_cost: float | None
    cache_creation_input_token_cost: float | None
    input_cost_per_million: float | None
    output_cost_per_million: float | None
    max_input_tokens: Annotated[
        int | None, msgspec.Meta(description="The context window; null when unknown.")
    ]
    max_output_tokens: int | None
    rpm: int | None
    tpm: int | None
    max_parallel_requests: int | None
    weight: float | None
    order: int | None
    tags: list[str]


class ModelInfoItem(msgspec.Struct, kw_only=True):
    """One deployment, as LiteLLM's `/model/info` lists it."""

    model_name: Annotated[str, msgspec.Meta(description="The model group clients name.")]
    litellm_params: LitellmParams
    model_info: ModelInfo


class ModelGroup(msgspec.Struct, kw_only=True):
    """One model group: its deployments and the aliases that name it."""

    model_group: str
    deployments: list[str]
    aliases: list[str]
    strategy: str


class ModelInfoList(msgspec.Struct, kw_only=True):
    """Every visible deployment, and the groups they form."""

    data: list[ModelInfoItem]
    groups: list[ModelGroup]


@endpoint(
    "GET",
    "/model/info",
    summary="Model groups and deployments: provider, upstream model, prices, limits.",
    tag="models",
    response=ModelInfoList,
    query=ModelInfoQuery,
)
async def model_info(ctx: Ctx, query: ModelInfoQuery) -> ModelInfoList:
    """The deployments serving now (filtered by the query and the caller key's models)."""
    runtime = serving_runtime(ctx)
    allowed = set(ctx.actor.key.models) if ctx.actor.key is not None else set()
    groups = [
        group
        for group in runtime.table.groups
        if (not allowed or group in allowed) and query.model in (None, group)
    ]
    deployments = [
        deployment
        for group in groups
        for deployment in runtime.table.groups[group]
        if query.litellm_model_id in (None, deployment.id)
    ]
    return ModelInfoList(
        data=[_item(runtime, deployment) for deployment in deployments],
        groups=[_group(runtime, group) for group in groups],
    )


def _item(runtime: Runtime, deployment: Deployment) -> ModelInfoItem:
    provider = next(p for p in runtime.loaded.config.providers if p.name == deployment.provider)
    entry = deployment.entry
    return ModelInfoItem(
        model_name=deployment.group,
        litellm_params=LitellmParams(
            model=f"{deployment.provider}/{deployment.upstream_model}",
            custom_llm_provider=provider.type,
            api_base=provider.base_url or DEFAULT_BASE_URLS.get(provider.type),
            api_version=provider.api_version,
            rpm=entry.rpm,
            tpm=entry.tpm,
        ),
        model_info=_info(runtime, deployment),
    )


def _info(runtime: Runtime, deployment: Deployment) -> ModelInfo:
    entry = deployment.entry
    priced = runtime.costing.deployment(deployment.id)
    override = priced.override if priced is not None else None
    price = override or price_book().price(deployment.upstream_model)
    source: Literal["config", "price_table"] | None = None
    if price is not None:
        source = "config" if override is not None else "price_table"
    return ModelInfo(
        id=deployment.id,
        provider=deployment.provider,
        upstream_model=deployment.upstream_model,
        price_source=source,
        input_cost_per_token=_per_token(price, "input"),
        output_cost_per_token=_per_token(price, "output"),
        cache_read_input_token_cost=_per_token(price, "cached_input"),
        cache_creation_input_token_cost=_per_token(price, "cache_write"),
        input_cost_per_million=None if price is None else price.input,
        output_cost_per_million=None if price is None else price.output,
        max_input_tokens=deployment.context_window,
        max_output_tokens=entry.max_output_tokens,
        rpm=entry.rpm,
        tpm=entry.tpm,
        max_parallel_requests=entry.max_concurrent,
        weight=deployment.weight,
        order=entry.order,
        tags=list(entry.tags),
    )


def _per_token(price: Price | None, field: str) -> float | None:
    per_million: float | None = None if price is None else getattr(price, field)
    return None if per_million is None else per_million / _PER_TOKEN


def _group(runtime: Runtime, group: str) -> ModelGroup:
    table = runtime.table
    return ModelGroup(
        model_group=group,
        deployments=[deployment.id for deployment in table.groups[group]],
        aliases=sorted(alias for alias, target in table.aliases.items() if target == group),
        strategy=table.policy(group).strategy,
    )
