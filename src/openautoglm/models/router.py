""":class:`ModelRouter`: one name that routes each task to a model by glob patterns, with fallback
to the next model when one fails.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from openautoglm.models.registry import Model, ModelError, get_model

__all__ = ["ModelRouter"]


# ---------------------------------------------------------------------------------------------
# Routing
# ---------------------------------------------------------------------------------------------
class ModelRouter:
    """Choose a model per task: by name (glob rules), by cost, by availability, with fallback.

    Args:
        rules: ``[(task_name_glob, [model names...]), ...]``; the first matching rule gives the
            candidates, in preference order.
        default: candidates for tasks no rule matches (and for calls without a task name).
        prefer: ``"order"`` keeps the rule's order; ``"cost"`` tries the cheapest first
            (each model's ``cost``).
        name: display/registry name.

    Register it like any model, then refer to it from tasks::

        router = ModelRouter([("summar*", ["api:glm-4", "glm-small"])], default=["glm-small"])
        register_model("auto", lambda: router)

    ``generate(prompt, task="summarize")`` skips candidates whose ``available()`` is False and,
    when one raises :class:`ModelError`, falls back to the next; ``last_used`` names the model
    that answered. When all fail, one ``ModelError`` lists every attempt.
    """

    def __init__(self, rules: Sequence[tuple[str, Sequence[str]]] = (), default: Sequence[str] = (),
                 prefer: str = "order", name: str = "router") -> None:
        if prefer not in ("order", "cost"):
            raise ValueError(f"prefer must be 'order' or 'cost', got {prefer!r}")
        self.rules = [(str(p), list(c)) for p, c in rules]
        for pattern, cands in self.rules:
            if not cands:
                raise ValueError(f"rule {pattern!r} has no candidate models")
        self.default = list(default)
        if not self.rules and not self.default:
            raise ValueError("a ModelRouter needs rules or a default list of models")
        self.prefer = prefer
        self.name = name
        self.last_used: str | None = None

    @property
    def cost(self) -> float:
        costs = [get_model(m).cost for m in self.candidates(None)]
        return min(costs) if costs else 0.0

    def available(self) -> bool:
        return any(get_model(m).available() for m in {m for _, c in self.rules for m in c} | set(self.default))

    def candidates(self, task: str | None) -> list[str]:
        """Candidate model names for ``task``, best first."""
        chosen = self.default
        if task is not None:
            for pattern, cands in self.rules:
                if fnmatch.fnmatchcase(task, pattern):
                    chosen = cands
                    break
        if self.prefer == "cost":
            return sorted(chosen, key=lambda m: get_model(m).cost)
        return list(chosen)

    def for_task(self, task: str) -> Model:
        """This router seen from one task: ``generate(prompt)`` routes by ``task``."""
        return _RoutedModel(self, task)

    def generate(self, prompt: str, task: str | None = None, **kwargs: Any) -> str:
        """Answer with the first available candidate for ``task`` that does not fail."""
        errors = []
        for candidate in self.candidates(task):
            model = get_model(candidate)
            if not model.available():
                errors.append(f"{candidate}: unavailable")
                continue
            try:
                out = model.generate(prompt, **kwargs)
            except ModelError as err:
                errors.append(f"{candidate}: {err}")
                continue
            self.last_used = candidate
            return out
        raise ModelError(f"{self.name}: no model answered for task {task!r}: " + "; ".join(errors or ["no candidates"]))


class _RoutedModel:
    """A :class:`ModelRouter` bound to one task name."""

    def __init__(self, router: ModelRouter, task: str) -> None:
        self.router = router
        self.task = task
        self.name = f"{router.name}[{task}]"

    @property
    def cost(self) -> float:
        return self.router.cost

    @property
    def last_used(self) -> str | None:
        """The name of the model that answered this router's last call."""
        return self.router.last_used

    def available(self) -> bool:
        return self.router.available()

    def generate(self, prompt: str, **kwargs: Any) -> str:
        return self.router.generate(prompt, task=self.task, **kwargs)
