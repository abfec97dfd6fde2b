"""`GET /v1/models` and `GET /v1/models/{id}` through the official SDK."""

from __future__ import annotations

import openai
import pytest

CONFIGURED = {
    "gpt-4o-mini": "upstream",
    "smart": "upstream",
    "text-embedding-3-small": "upstream",
    "gpt-3.5-turbo-instruct": "upstream",
    "mock-gpt": "mock",
    "mock-embed": "mock",
}


async def test_models_list_every_model_group(client: openai.AsyncOpenAI) -> None:
    """The list holds each configured model group once, as a model object with its owner."""
    models = [model async for model in client.models.list()]
    assert {model.id: model.owned_by for model in models} == CONFIGURED
    assert len(models) == len(CONFIGURED)
    for model in models:
        assert model.object == "model"
        assert isinstance(model.created, int)
        assert model.created > 0


async def test_models_retrieve_one_group(client: openai.AsyncOpenAI) -> None:
    """Retrieving a configured model group returns its model object."""
    model = await client.models.retrieve("gpt-4o-mini")
    assert (model.id, model.object, model.owned_by) == ("gpt-4o-mini", "model", "upstream")
    assert model.created > 0


async def test_models_retrieve_unknown_is_not_found(client: openai.AsyncOpenAI) -> None:
    """Retrieving an unknown model raises NotFoundError with code model_not_found."""
    with pytest.raises(openai.NotFoundError) as caught:
        await client.models.retrieve("no-such-model")
    assert caught.value.code == "model_not_found"
    assert caught.value.type == "invalid_request_error"
    assert "no-such-model" in caught.value.message


async def test_models_retrieve_provider_addressed_model(client: openai.AsyncOpenAI) -> None:
    """`provider/model` addresses one provider's deployment and is retrievable."""
    model = await client.models.retrieve("upstream/gpt-4o-mini")
    assert (model.id, model.object, model.owned_by) == ("upstream/gpt-4o-mini", "model", "upstream")
