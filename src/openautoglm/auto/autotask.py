"""AutoTask: one call from a prompt to a model's answer, run as a three-task pipeline.

::

    prompt --preprocess--> model_input --inference--> raw_output --postprocess--> output

``preprocess`` normalises whitespace and builds the model input for the task type,
``inference`` calls the model from the registry (:func:`openautoglm.models.get_model`), and
``postprocess`` cleans the answer. Task types:

- ``"text-generation"``: continue the prompt.
- ``"fill-blank"``: the prompt holds ``[MASK]`` blanks; the output is the completed text.
- ``"summarization"``: a local GLM fills a blank after ``"... In short: [MASK]"`` (GLM's
  summarisation-as-infilling); a chat model is asked for a one- or two-sentence summary.

Tests: tests/auto/test_autotask.py.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from openautoglm.models.registry import check_model_name, get_model
from openautoglm.pipeline import Pipeline, Task

__all__ = ["AutoTask", "AutoTaskResult", "TASK_TYPES"]

TASK_TYPES = ("text-generation", "fill-blank", "summarization")
MASK = "[MASK]"
_SUMMARY_BLANK = "\nIn short: " + MASK
_SUMMARY_CHAT = "Summarise the following text in one or two sentences. Reply with the summary only.\n\n{text}"
_FILL_CHAT = ("Replace every [MASK] in the text below with the words that fit best. "
              "Reply with the completed text only.\n\n{text}")


@dataclass
class AutoTaskResult:
    """What :meth:`AutoTask.run` returns.

    Attributes:
        output: the cleaned answer.
        task_type: the task type that produced it.
        model: the model name used.
        model_input: exactly what the model was given.
        raw_output: the model's answer before postprocessing.
        seconds: wall time of the whole pipeline.
        values: every key the pipeline computed.
    """

    output: str
    task_type: str
    model: str
    model_input: str
    raw_output: str
    seconds: float
    values: dict[str, Any] = field(default_factory=dict, repr=False)


class AutoTask:
    """A prompt, a task type and a model, run as preprocess -> inference -> postprocess.

    Args:
        task_type: one of :data:`TASK_TYPES`.
        model: a model name for :func:`openautoglm.models.get_model` (``"glm-small"``, a
            checkpoint path, ``"api:<model-id>"``, or a registered router).
        prompt: the input text (may also be given to :meth:`run`).
        max_new_tokens: the most characters/tokens the model adds.
        temperature: 0 for greedy decoding.
        seed: sampling seed for local models.

    Raises:
        ValueError: unknown task type or model, an empty prompt, or a fill-blank prompt
            without ``[MASK]`` (all before anything runs).

    Example:
        >>> from openautoglm.models import register_model
        >>> class Upper:
        ...     name, cost = "upper", 0.0
        ...     def generate(self, prompt, **kw): return prompt.upper() + "  "
        ...     def available(self): return True
        >>> register_model("upper-doc", Upper, replace=True)
        >>> AutoTask("text-generation", model="upper-doc", prompt="  hello   world ").run().output
        'HELLO WORLD'
    """

    def __init__(self, task_type: str = "text-generation", model: str = "glm-small",
                 prompt: str | None = None, max_new_tokens: int = 64, temperature: float = 0.0,
                 seed: int | None = 0) -> None:
        if task_type not in TASK_TYPES:
            raise ValueError(f"unknown task_type {task_type!r}; use one of: {', '.join(TASK_TYPES)}")
        check_model_name(model)
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature!r}")
        self.task_type = task_type
        self.model = model
        self.prompt = None if prompt is None else self._check_prompt(prompt)
        self.max_new_tokens = max_new_tokens
        self.temperature = float(temperature)
        self.seed = seed

    def _check_prompt(self, prompt: str) -> str:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt must be a non-empty string")
        if self.task_type == "fill-blank" and MASK not in prompt:
            raise ValueError(f"a fill-blank prompt needs at least one {MASK}, e.g. 'The {MASK} sat on the mat'")
        return prompt

    # --- the three steps -------------------------------------------------------------------
    def _local(self) -> bool:
        return hasattr(get_model(self.model), "fill_blank")

    def preprocess(self, prompt: str) -> str:
        """Normalise whitespace and build the model input for the task type."""
        text = re.sub(r"[ \t]+", " ", prompt).strip()
        text = re.sub(r"\n{3,}", "\n\n", text)
        if self.task_type == "summarization":
            return text + _SUMMARY_BLANK if self._local() else _SUMMARY_CHAT.format(text=text)
        if self.task_type == "fill-blank" and not self._local():
            return _FILL_CHAT.format(text=text)
        return text

    def inference(self, model_input: str) -> str:
        """Call the model: ``fill_blank`` for infilling on a local GLM, else ``generate``."""
        model = get_model(self.model)
        kw = {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature}
        if hasattr(model, "fill_blank") and MASK in model_input:
            return model.fill_blank(model_input, seed=self.seed, **kw)
        if hasattr(model, "fill_blank"):
            kw["seed"] = self.seed
        return model.generate(model_input, **kw)

    def postprocess(self, raw: str) -> str:
        """Keep the answer only (the summary after the marker), with tidy whitespace."""
        text = raw
        if self.task_type == "summarization" and _SUMMARY_BLANK.strip().split(MASK)[0] in text:
            text = text.rsplit("In short: ", 1)[1]
        return re.sub(r"\s+", " ", text).strip()

    def pipeline(self) -> Pipeline:
        """The three-task pipeline this AutoTask runs (inputs: ``prompt``)."""
        return Pipeline(f"autotask-{self.task_type}", [
            Task("preprocess", func=self.preprocess, input_key="prompt", output_key="model_input", cost=0.001),
            Task("inference", func=self.inference, input_key="model_input", output_key="raw_output",
                 cost=float(getattr(get_model(self.model), "cost", 1.0)) if _is_built(self.model) else 1.0),
            Task("postprocess", func=self.postprocess, input_key="raw_output", output_key="output", cost=0.001),
        ])

    def run(self, prompt: str | None = None, engine: Any = None) -> AutoTaskResult:
        """Run the pipeline on ``prompt`` (or the prompt given at construction).

        Args:
            prompt: the input text; overrides the constructor's.
            engine: optional :class:`openautoglm.engine.engine.Engine` to execute on; by default
                the three tasks run here, in order.

        Returns:
            An :class:`AutoTaskResult`; ``.output`` is the answer.
        """
        text = self._check_prompt(prompt) if prompt is not None else self.prompt
        if text is None:
            raise ValueError("no prompt: pass AutoTask(..., prompt='...') or run(prompt='...')")
        start = time.perf_counter()
        values = self.pipeline().run(engine=engine, prompt=text)
        return AutoTaskResult(output=values["output"], task_type=self.task_type, model=self.model,
                              model_input=values["model_input"], raw_output=values["raw_output"],
                              seconds=time.perf_counter() - start, values=values)


def _is_built(name: str) -> bool:
    from openautoglm import models

    return name in models.registry._INSTANCES
