"""An OpenAI-style chat-completions client as a model (:class:`ChatCompletionsModel`), with typed
HTTP, timeout and reply errors.
"""
from __future__ import annotations

import http.client
import json
import os
import time
from typing import Any

from openautoglm import _http
from openautoglm._validate import InputError, check_number, short
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

    Each attempt has one deadline for the whole exchange (``timeout``: connect, send, headers
    and body; a server trickling bytes cannot stretch it), a reply larger than
    ``max_response_bytes`` is refused, and redirects are followed only within the same origin
    and only when they keep the POST (307/308): the key is never sent to another origin.

    Args:
        model: the backend's model id (e.g. ``"glm-4"``, ``"gpt-4o"``).
        base_url: e.g. ``"https://api.example.com/v1"``; default ``$OPENAUTOGLM_API_BASE``.
        api_key: bearer token; default ``$OPENAUTOGLM_API_KEY`` (may be absent for local servers).
        timeout: seconds per attempt, for the whole exchange.
        max_retries: retries after the first attempt.
        backoff: first retry delay in seconds.
        cost: cost hint per call in seconds (routing).
        system: optional system message.
        name: display/registry name.
        max_response_bytes: largest reply body read (default 8 MiB).
    """

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 30.0, max_retries: int = 3, backoff: float = 0.5,
                 cost: float = 1.0, system: str | None = None, name: str | None = None,
                 max_response_bytes: int = 8 * 2**20) -> None:
        if not model or not isinstance(model, str):
            raise InputError("ChatCompletionsModel needs a model id, e.g. ChatCompletionsModel('glm-4')")
        check_number(timeout, "ChatCompletionsModel timeout", minimum=1e-3)
        check_number(max_retries, "ChatCompletionsModel max_retries", integer=True, maximum=100)
        check_number(backoff, "ChatCompletionsModel backoff", maximum=3600)
        check_number(max_response_bytes, "ChatCompletionsModel max_response_bytes", integer=True,
                     minimum=1)
        self.max_response_bytes = int(max_response_bytes)
        self.model = model
        self._base_url = base_url
        self._api_key = api_key
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.cost = float(cost)
        self.system = system
        self.name = name or f"api:{model}"
        self.attempts = 0  # total HTTP attempts made, for inspection

    @property
    def base_url(self) -> str:
        """The ``base_url`` given, else ``$OPENAUTOGLM_API_BASE`` read now (not when built)."""
        return (self._base_url or os.environ.get(ENV_API_BASE) or "").rstrip("/")

    @property
    def api_key(self) -> str | None:
        """The ``api_key`` given, else ``$OPENAUTOGLM_API_KEY`` read at every call, so a rotated
        key takes effect on a model that is already cached."""
        return self._api_key if self._api_key is not None else os.environ.get(ENV_API_KEY)

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
                return self._parse(self._post(url, body, attempt + 1))
            except ModelHTTPError as err:
                if not (err.status >= 500 or err.status == 429) or attempt == self.max_retries:
                    raise
                delay = min(getattr(err, "retry_after", None) or delay, 30.0)
            except ModelTimeoutError:
                if attempt == self.max_retries:
                    raise
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _post(self, url: str, body: bytes, attempt: int = 1) -> bytes:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        self.attempts += 1
        try:
            reply = _http.post(url, body, headers, timeout=self.timeout,
                               max_bytes=self.max_response_bytes)
        except _http.DeadlineError as err:
            raise ModelTimeoutError(f"{self.name}: no complete answer from {url} within "
                                    f"{self.timeout:g} s on attempt {attempt} of "
                                    f"{self.max_retries + 1}; raise timeout=") from err
        except _http.RedirectError as err:
            raise ModelHTTPError(f"{self.name}: {err} (to {short(err.location)}); set base_url "
                                 "to the server that answers", err.status) from None
        except _http.TooLargeError as err:
            raise ModelReplyError(f"{self.name}: {err} from {url}; raise max_response_bytes= "
                                  "if the server is trusted") from None
        except (OSError, ValueError, http.client.HTTPException) as err:
            raise ModelError(f"{self.name}: cannot reach {url}: {short(str(err), 200)}; "
                             f"check {ENV_API_BASE}") from err
        if reply.status >= 400:
            detail = reply.body[:300].decode("utf-8", "replace")
            code = reply.status
            hint = {401: f"check the API key ({ENV_API_KEY})", 403: "the key lacks access to this model",
                    404: f"check the base URL ({ENV_API_BASE}) and the model id {self.model!r}",
                    429: "rate limited"}.get(code, "server error" if code >= 500 else "bad request")
            error = ModelHTTPError(f"{self.name}: HTTP {code} from {url} ({hint}): {detail}", code)
            retry_after = reply.headers.get("retry-after")
            error.retry_after = float(retry_after) if retry_after and retry_after.isdigit() else None  # type: ignore[attr-defined]
            raise error
        return reply.body

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
