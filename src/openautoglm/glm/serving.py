"""Adaptive batching: a bounded request queue drained in batches, waiting only when idle.

Callers ``submit`` requests from any thread; one worker thread takes them first-in first-out,
groups them into batches and calls ``fn(list_of_requests) -> list_of_results`` once per batch.
Each caller's future gets exactly the result at its own index in its batch.

How big a batch? As Ray Serve's ``@serve.batch`` does, a batch takes everything that is queued,
up to ``max_batch_size``: a backlog drains at full batches, whatever the rate was. Only when the
worker finds the queue empty does it wait, for at most ``max_wait`` after the first arrival, and
the measured request rate decides how long: the rate (arrivals in the last ``rate_window``
seconds) is looked up in a table of ``(upper_bound_req_per_s, batch_size)`` rows, and the
worker waits until that many requests are queued (or ``max_wait`` has passed)::

    rate (req/s)             [0, 50)   [50, 200)   [200, inf)
    wait for (when idle)        1          4           16
    batch (backlog of b)           min(b, max_batch_size)

So at a low rate a request is served alone at once (no waiting for company that will not come);
at a high rate the worker waits briefly for a fuller batch; and a burst never drains one by one
(the table tunes the wait, it never shrinks a batch below the backlog). The queue is bounded:
past ``max_queue`` waiting requests ``submit`` raises :class:`QueueFullError` (load shedding)
instead of letting latency grow without bound.

Tests: ``tests/glm/test_serving.py``; benchmark: ``benchmarks/batching.py``.
"""
from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, Generic, Protocol, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")

#: Rows ``(upper bound of the request rate in req/s, batch size)``, in increasing bound order.
BatchTable = Sequence[tuple[float, int]]
DEFAULT_TABLE: tuple[tuple[float, int], ...] = ((50.0, 1), (200.0, 4), (math.inf, 16))


def validate_table(table: BatchTable | Mapping[float, int]) -> tuple[tuple[float, int], ...]:
    """Checks a batch-size table and returns it as a tuple of ``(bound, batch_size)`` rows.

    Row ``(bound, size)`` applies to rates below ``bound`` and at or above the previous row's
    bound. A mapping ``{bound: size}`` is accepted too.

    Raises:
        ValueError: if the table is empty, a bound is not positive or not increasing, a batch
            size is not a positive int, or the last bound is not ``math.inf``.

    Example:
        >>> validate_table({50: 1, 200: 4, float("inf"): 16})
        ((50.0, 1), (200.0, 4), (inf, 16))
    """
    rows = list(table.items()) if isinstance(table, Mapping) else list(table)
    if not rows:
        raise ValueError("batch table is empty: give rows like ((50, 1), (200, 4), (inf, 16))")
    out: list[tuple[float, int]] = []
    for row in rows:
        try:
            bound, size = row
        except (TypeError, ValueError):
            raise ValueError(
                f"batch table row {row!r} is not a (rate_bound, batch_size) pair"
            ) from None
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not bound > 0:
            raise ValueError(f"batch table rate bound {bound!r} must be a number > 0 (req/s)")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"batch table batch size {size!r} must be an int >= 1")
        if out and not bound > out[-1][0]:
            raise ValueError(
                f"batch table rate bounds must increase: {out[-1][0]} then {bound}; "
                "sort the rows by rate"
            )
        out.append((float(bound), size))
    if out[-1][0] != math.inf:
        raise ValueError(
            f"batch table ends at {out[-1][0]} req/s, so higher rates have no batch size: "
            f"end it with (math.inf, {out[-1][1]})"
        )
    return tuple(out)


def choose_batch_size(rate: float, table: BatchTable = DEFAULT_TABLE) -> int:
    """The batch size for a request rate: the first row whose bound exceeds ``rate``.

    Example:
        >>> [choose_batch_size(r) for r in (0, 49.9, 50, 199, 200, 1e6)]
        [1, 1, 4, 4, 16, 16]
    """
    for bound, size in table:
        if rate < bound:
            return size
    return table[-1][1]


def fixed_table(batch_size: int) -> tuple[tuple[float, int], ...]:
    """A table that always answers ``batch_size`` (a fixed-batch server)."""
    return validate_table([(math.inf, batch_size)])


class RateMeter:
    """Requests per second over a sliding window of ``window`` seconds.

    Until a full window has passed since the first arrival, the rate is the count divided by
    the time elapsed so far (at least a tenth of the window), so a server that starts under
    heavy load picks large batches at once instead of after a whole window.

    Args:
        window: the window length in seconds.
        clock: a monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, window: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(window, bool) or not isinstance(window, (int, float)) or not window > 0:
            raise ValueError(f"rate window must be > 0 seconds, got {window!r}")
        self.window = float(window)
        self.clock = clock
        self._times: deque[float] = deque()
        self._first: float | None = None
        self._lock = threading.Lock()

    def record(self, now: float | None = None) -> None:
        """Counts one arrival (at ``now``, default the clock)."""
        now = self.clock() if now is None else now
        with self._lock:
            if self._first is None:
                self._first = now
            self._times.append(now)
            self._trim(now)

    def rate(self, now: float | None = None) -> float:
        """Arrivals in ``(now - window, now]`` per second."""
        now = self.clock() if now is None else now
        with self._lock:
            self._trim(now)
            if self._first is None:
                return 0.0
            span = min(self.window, max(now - self._first, self.window / 10))
            return len(self._times) / span

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()


class ServerClosedError(RuntimeError):
    """A request submitted to, or left pending in, a closed :class:`BatchingServer`."""


class QueueFullError(RuntimeError):
    """The queue holds ``max_queue`` requests already: retry after ``retry_after`` seconds.

    Attributes:
        max_queue: the bound that was reached.
        retry_after: a hint in seconds (the time the queue needs to drain, at least 1 s).
    """

    def __init__(self, message: str, max_queue: int, retry_after: float) -> None:
        super().__init__(message)
        self.max_queue = max_queue
        self.retry_after = retry_after


class BatchObserver(Protocol):
    """What a :class:`BatchingServer` reports to (e.g. ``openautoglm.glm.metrics``)."""

    def batch(self, size: int) -> None:
        """A batch of ``size`` requests goes to ``fn``."""

    def queue_depth(self, depth: int) -> None:
        """Requests waiting now."""

    def shed(self) -> None:
        """A request was refused because the queue was full."""


class BatchingServer(Generic[Request, Result]):
    """Serves requests through ``fn`` in batches: the backlog, or a short wait when idle.

    Args:
        fn: ``fn(requests) -> results``, one result per request, in the same order.
        table: ``(rate_bound, batch_size)`` rows (see :func:`validate_table`): how many
            requests an idle worker waits for at each rate; default :data:`DEFAULT_TABLE`.
        max_wait: the longest an idle worker waits after the first arrival, in seconds.
        rate_window: the window of the rate measurement, in seconds.
        clock: a monotonic clock (for tests).
        max_batch_size: the largest batch (default: the table's largest size).
        max_queue: requests that may wait; one more raises :class:`QueueFullError`.
        observer: optional :class:`BatchObserver` told of batches, queue depth and shedding
            (:class:`openautoglm.glm.metrics.BatchingMetrics` exports them to Prometheus).

    Raises:
        ValueError: for a bad table, a negative ``max_wait``, a non-positive ``rate_window``,
            ``max_batch_size`` or ``max_queue``.

    Example:
        >>> with BatchingServer(lambda xs: [x * 2 for x in xs], max_wait=0.01) as server:
        ...     futures = [server.submit(i) for i in range(5)]
        ...     [f.result() for f in futures], server(21)
        ([0, 2, 4, 6, 8], 42)
    """

    def __init__(
        self,
        fn: Callable[[list[Request]], Sequence[Result]],
        table: BatchTable | Mapping[float, int] = DEFAULT_TABLE,
        max_wait: float = 0.01,
        rate_window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        max_batch_size: int | None = None,
        max_queue: int = 4096,
        observer: BatchObserver | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable (requests -> results), got {fn!r}")
        if isinstance(max_wait, bool) or not isinstance(max_wait, (int, float)) \
                or not 0 <= max_wait < math.inf:
            raise ValueError(f"max_wait must be a finite number of seconds >= 0, got {max_wait!r}")
        self.fn = fn
        self.table = validate_table(table)
        if max_batch_size is None:
            max_batch_size = max(size for _, size in self.table)
        for name, value in (("max_batch_size", max_batch_size), ("max_queue", max_queue)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.observer = observer
        self._service_time = 0.0  # seconds per request, smoothed (for Retry-After)
        self.max_wait = float(max_wait)
        self.clock = clock
        self.meter = RateMeter(rate_window, clock)
        self._queue: deque[tuple[Request, Future[Result], float]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._batch_sizes: Counter[int] = Counter()
        self._n_requests = 0
        self._worker = threading.Thread(target=self._serve, name="BatchingServer", daemon=True)
        self._worker.start()

    @classmethod
    def fixed(cls, fn: Callable[[list[Request]], Sequence[Result]], batch_size: int,
              max_wait: float = 0.01, **kwargs: Any) -> BatchingServer[Request, Result]:
        """A server whose batches hold at most ``batch_size`` and that, when idle, waits up to
        ``max_wait`` for that many."""
        return cls(fn, table=fixed_table(batch_size), max_wait=max_wait, **kwargs)

    def submit(self, request: Request) -> Future[Result]:
        """Queues ``request``; the future gets its result (or ``fn``'s exception).

        Raises:
            ServerClosedError: if the server is closed.
            QueueFullError: ``max_queue`` requests are waiting already (retry later).
        """
        future: Future[Result] = Future()
        with self._cond:
            if self._closed:
                raise ServerClosedError("the BatchingServer is closed; create a new one")
            depth = len(self._queue)
            if depth >= self.max_queue:
                retry = max(1.0, math.ceil(depth * self._service_time))
                if self.observer is not None:
                    self.observer.shed()
                raise QueueFullError(
                    f"the request queue is full ({depth} waiting, max_queue={self.max_queue}); "
                    f"retry in {retry:g} s, or raise max_queue if the latency is acceptable",
                    self.max_queue, retry)
            now = self.clock()
            self.meter.record(now)
            self._queue.append((request, future, now))
            self._n_requests += 1
            if self.observer is not None:
                self.observer.queue_depth(depth + 1)
            self._cond.notify()
        return future

    def __call__(self, request: Request, timeout: float | None = None) -> Result:
        """Submits ``request`` and waits for its result."""
        return self.submit(request).result(timeout)

    def batch_size(self) -> int:
        """How many requests an idle worker waits for at the current rate (table, capped)."""
        return min(choose_batch_size(self.meter.rate(), self.table), self.max_batch_size)

    def queue_depth(self) -> int:
        """Requests waiting now (not counting the batch being served)."""
        with self._cond:
            return len(self._queue)

    def stats(self) -> dict[str, Any]:
        """Requests seen, batches run, their sizes (a Counter) and the current rate."""
        with self._cond:
            sizes = Counter(self._batch_sizes)
            n = self._n_requests
        n_batches = sum(sizes.values())
        served = sum(k * v for k, v in sizes.items())
        return {"requests": n, "batches": n_batches, "batch_sizes": sizes,
                "mean_batch_size": served / n_batches if n_batches else 0.0,
                "rate": self.meter.rate()}

    def close(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Stops accepting requests; serves the queued ones unless ``cancel_pending``.

        Args:
            wait: block until the worker thread has finished.
            cancel_pending: cancel queued requests instead of serving them (their futures
                raise ``CancelledError``).
        """
        with self._cond:
            self._closed = True
            if cancel_pending:
                while self._queue:
                    self._queue.popleft()[1].cancel()
            self._cond.notify_all()
        if wait and threading.current_thread() is not self._worker:
            self._worker.join()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> BatchingServer[Request, Result]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_batch(self) -> list[tuple[Request, Future[Result], float]] | None:
        """The next batch: what is queued (up to max_batch_size); waits only when idle."""
        with self._cond:
            idle = not self._queue
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            if idle:
                # Nothing was waiting: wait briefly for company, as many as the rate promises.
                deadline = self._queue[0][2] + self.max_wait
                while True:
                    target = self.batch_size()  # the rate may rise while we wait
                    remaining = deadline - self.clock()
                    if len(self._queue) >= target or self._closed or remaining <= 0:
                        break
                    self._cond.wait(remaining)
            batch = [self._queue.popleft()
                     for _ in range(min(self.max_batch_size, len(self._queue)))]
            if self.observer is not None:
                self.observer.queue_depth(len(self._queue))
            return batch

    def _serve(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            live = [(r, f) for r, f, _ in batch if f.set_running_or_notify_cancel()]
            if not live:
                continue
            with self._cond:
                self._batch_sizes[len(live)] += 1
            if self.observer is not None:
                self.observer.batch(len(live))
            start = time.perf_counter()
            self._run(live)
            per_request = (time.perf_counter() - start) / len(live)
            self._service_time = per_request if not self._service_time \
                else 0.8 * self._service_time + 0.2 * per_request

    def _run(self, live: list[tuple[Request, Future[Result]]]) -> None:
        try:
            results = list(self.fn([r for r, _ in live]))
            if len(results) != len(live):
                raise ValueError(
                    f"fn returned {len(results)} results for a batch of {len(live)} requests; "
                    "it must return one result per request, in order"
                )
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the batch
            for _, f in live:
                f.set_exception(exc)
            return
        for (_, f), result in zip(live, results):
            f.set_result(result)


def serve_many(
    server: BatchingServer[Request, Result], requests: Iterable[Request]
) -> list[Result]:
    """Submits every request and returns the results in the same order."""
    futures = [server.submit(r) for r in requests]
    return [f.result() for f in futures]


def glm_server(
    model: Any,
    tokenizer: Any,
    max_new_tokens: int = 32,
    table: BatchTable | Mapping[float, int] = DEFAULT_TABLE,
    max_wait: float = 0.01,
    rate_window: float = 1.0,
    **kwargs: Any,
) -> BatchingServer[str, str]:
    """A :class:`BatchingServer` whose requests are prompts and results greedy continuations.

    Batches run through :func:`~openautoglm.glm.infer.generate_batch`, whose greedy output
    does not depend on the batch, so each caller gets what ``generate`` would give it alone.

    Args:
        model: a :class:`~openautoglm.glm.model.GLMModel`.
        tokenizer: its :class:`~openautoglm.glm.tokenizer.CharTokenizer`.
        max_new_tokens: characters generated per prompt (at most).
        table, max_wait, rate_window, kwargs: as for :class:`BatchingServer`
            (``max_batch_size``, ``max_queue``, ``observer``).
    """
    from .infer import _check_budget, generate_batch

    _check_budget(model, max_new_tokens)

    def run(prompts: list[str]) -> list[str]:
        return generate_batch(model, tokenizer, prompts, max_new_tokens)

    return BatchingServer(run, table=table, max_wait=max_wait, rate_window=rate_window, **kwargs)
