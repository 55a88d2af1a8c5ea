"""An OpenAI-style chat-completions client as a model (:class:`ChatCompletionsModel`), with typed
HTTP, timeout and reply errors.
"""
from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from typing import Any

from openautoglm.models.registry import ENV_API_BASE, ENV_API_KEY, ModelError, register_resolver

__all__ = ["ChatCompletionsModel"]






class ModelHTTPError(ModelError):
    """The backend answered with an HTTP error status (``.status``)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ModelTimeoutError(ModelError):
    """The backend did not answer within the timeout, after all retries."""


class ModelReplyError(ModelError):
    """The backend answered, but not with a chat-completions reply."""


# ---------------------------------------------------------------------------------------------
# OpenAI-style chat completions over HTTP
# ---------------------------------------------------------------------------------------------
class ChatCompletionsModel:
    """A hosted model speaking ``POST {base_url}/chat/completions``.

    Sends ``{"model", "messages": [{"role": "user", "content": prompt}], **params}`` and returns
    ``choices[0].message.content``. HTTP 5xx, 429 and timeouts are retried with exponential
    backoff (``backoff * 2**attempt`` seconds, or the server's ``Retry-After`` when shorter than
    30 s); other 4xx answers and malformed replies fail at once.

    Args:
        model: the backend's model id (e.g. ``"glm-4"``, ``"gpt-4o"``).
        base_url: e.g. ``"https://api.example.com/v1"``; default ``$OPENAUTOGLM_API_BASE``.
        api_key: bearer token; default ``$OPENAUTOGLM_API_KEY`` (may be absent for local servers).
        timeout: seconds per attempt.
        max_retries: retries after the first attempt.
        backoff: first retry delay in seconds.
        cost: cost hint per call in seconds (routing).
        system: optional system message.
        name: display/registry name.
    """

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 30.0, max_retries: int = 3, backoff: float = 0.5,
                 cost: float = 1.0, system: str | None = None, name: str | None = None) -> None:
        if not model:
            raise ValueError("ChatCompletionsModel needs a model id, e.g. ChatCompletionsModel('glm-4')")
        if timeout <= 0 or max_retries < 0 or backoff < 0:
            raise ValueError("timeout must be > 0, max_retries and backoff >= 0")
        self.model = model
        self.base_url = (base_url or os.environ.get(ENV_API_BASE) or "").rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(ENV_API_KEY)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.cost = float(cost)
        self.system = system
        self.name = name or f"api:{model}"
        self.attempts = 0  # total HTTP attempts made, for inspection

    def available(self) -> bool:
        return bool(self.base_url)

    def generate(self, prompt: str, **params: Any) -> str:
        """Send one chat turn and return the reply text.

        Args:
            prompt: the user message.
            **params: passed through in the JSON body (``temperature``, ``max_tokens``...);
                ``max_new_tokens`` is sent as ``max_tokens``.

        Raises:
            ModelError: no base URL configured; or a subclass: ``ModelHTTPError`` (status
                attached), ``ModelTimeoutError``, ``ModelReplyError`` (malformed reply).
        """
        if not self.base_url:
            raise ModelError(f"{self.name}: no base URL; pass base_url=... or set {ENV_API_BASE}")
        if "max_new_tokens" in params:  # the local models' name for the OpenAI field
            params["max_tokens"] = params.pop("max_new_tokens")
        messages = ([{"role": "system", "content": self.system}] if self.system else [])
        messages.append({"role": "user", "content": prompt})
        body = json.dumps({"model": self.model, "messages": messages, **params}).encode()
        url = f"{self.base_url}/chat/completions"
        for attempt in range(self.max_retries + 1):
            delay = self.backoff * 2 ** attempt
            try:
                return self._parse(self._post(url, body))
            except ModelHTTPError as err:
                if not (err.status >= 500 or err.status == 429) or attempt == self.max_retries:
                    raise
                delay = min(getattr(err, "retry_after", None) or delay, 30.0)
            except ModelTimeoutError:
                if attempt == self.max_retries:
                    raise
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _post(self, url: str, body: bytes) -> bytes:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        self.attempts += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as err:
            detail = err.read()[:300].decode("utf-8", "replace")
            hint = {401: f"check the API key ({ENV_API_KEY})", 403: "the key lacks access to this model",
                    404: f"check the base URL ({ENV_API_BASE}) and the model id {self.model!r}",
                    429: "rate limited"}.get(err.code, "server error" if err.code >= 500 else "bad request")
            error = ModelHTTPError(f"{self.name}: HTTP {err.code} from {url} ({hint}): {detail}", err.code)
            retry_after = err.headers.get("Retry-After") if err.headers else None
            error.retry_after = float(retry_after) if retry_after and retry_after.isdigit() else None  # type: ignore[attr-defined]
            raise error from None
        except (TimeoutError, socket.timeout) as err:
            raise ModelTimeoutError(f"{self.name}: no answer from {url} within {self.timeout:g} s "
                                    f"after {self.attempts} attempt(s); raise timeout=") from err
        except urllib.error.URLError as err:
            if isinstance(err.reason, (TimeoutError, socket.timeout)):
                raise ModelTimeoutError(f"{self.name}: no answer from {url} within {self.timeout:g} s") from err
            raise ModelError(f"{self.name}: cannot reach {url}: {err.reason}; check {ENV_API_BASE}") from err

    def _parse(self, raw: bytes) -> str:
        try:
            reply = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ModelReplyError(f"{self.name}: reply is not JSON: {raw[:200]!r}") from None
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise ModelReplyError(
                f"{self.name}: reply lacks choices[0].message.content (not a chat-completions "
                f"server?): {json.dumps(reply)[:200]}") from None
        if not isinstance(content, str):
            raise ModelReplyError(f"{self.name}: choices[0].message.content is {type(content).__name__}, not text")
        return content


register_resolver(lambda name: name.startswith("api:") and len(name) > 4,
                  lambda name: ChatCompletionsModel(name[4:]))
