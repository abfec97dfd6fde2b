"""What a call costs: each deployment's upstream model and price overrides, on the price book.

Built once per loaded config. `cost` prices a finished call on the deployment that answered it;
`estimate` is the budget reservation for a call not yet routed: the most any deployment of the
group could charge for the prompt estimate plus the full output cap (an upper bound, so budget
reservations are never short).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from llmux.config.schema import ModelEntry
from llmux.pricing import Price, PriceBook
from llmux.types import Usage

__all__ = ["Costing", "DeploymentPrice", "price_override"]


@dataclass(frozen=True, slots=True)
class DeploymentPrice:
    """How one deployment is priced."""

    upstream_model: str
    provider: str
    override: Price | None


def price_override(entry: ModelEntry) -> Price | None:
    """The config's per-deployment prices, when both input and output are set."""
    if entry.input_cost_per_million is None or entry.output_cost_per_million is None:
        return None
    return Price(
        input=entry.input_cost_per_million,
        output=entry.output_cost_per_million,
        cached_input=entry.cached_input_cost_per_million,
        cache_write=entry.cache_write_cost_per_million,
    )


class Costing:
    """Prices calls per deployment."""

    def __init__(self, book: PriceBook, deployments: Mapping[str, DeploymentPrice]) -> None:
        self._book = book
        self._deployments = deployments

    def deployment(self, deployment: str | None) -> DeploymentPrice | None:
        """How `deployment` is priced, if it is known."""
        return self._deployments.get(deployment) if deployment is not None else None

    def cost(self, deployment: str | None, usage: Usage | None) -> float | None:
        """USD for a call answered by `deployment`; None when its model has no price."""
        priced = self.deployment(deployment)
        if priced is None or usage is None:
            return 0.0 if usage is None else None
        return self._book.cost(priced.upstream_model, usage, priced.override)

    def estimate(self, deployments: Iterable[str], input_tokens: int, output_tokens: int) -> float:
        """The most any of `deployments` could charge for this many tokens."""
        highest = 0.0
        for deployment in deployments:
            priced = self._deployments.get(deployment)
            if priced is not None:
                estimate = self._book.estimate(
                    priced.upstream_model, input_tokens, output_tokens, priced.override
                )
                highest = max(highest, estimate)
        return highest
