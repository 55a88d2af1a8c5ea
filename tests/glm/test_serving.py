"""Adaptive batching: tables, rate -> batch size, order under concurrency, max_wait, shutdown."""
from __future__ import annotations

import math
import threading
import time
from concurrent.futures import CancelledError

import pytest
import torch

from openautoglm.glm import (
    DEFAULT_TABLE,
    BatchingServer,
    CharTokenizer,
    GLMConfig,
    GLMModel,
    QueueFullError,
    RateMeter,
    ServerClosedError,
    choose_batch_size,
    generate,
    glm_server,
)
from openautoglm.glm.serving import fixed_table, serve_many, validate_table


class Recorder:
    """A batch function that records each batch it is given (and can hold the first one)."""

    def __init__(self, hold_first: bool = False, delay: float = 0.0) -> None:
        self.batches: list[list] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.delay = delay

    def __call__(self, requests):
        self.batches.append(list(requests))
        self.entered.set()
        self.release.wait(10)
        if self.delay:
            time.sleep(self.delay)
        return [("done", r) for r in requests]

    @property
    def sizes(self) -> list[int]:
        return [len(b) for b in self.batches]


# --- the table

def test_default_table_is_the_issue_table():
    assert DEFAULT_TABLE == ((50.0, 1), (200.0, 4), (math.inf, 16))
    assert [choose_batch_size(r) for r in (0, 10, 49.99, 50, 120, 199.9, 200, 5000)] == \
        [1, 1, 1, 4, 4, 4, 16, 16]


@pytest.mark.parametrize("table, message", [
    ([], "empty"),
    ([(50, 1), (20, 4), (math.inf, 8)], "must increase"),
    ([(50, 0), (math.inf, 4)], "batch size 0"),
    ([(50, 2.5), (math.inf, 4)], "batch size 2.5"),
    ([(-1, 1), (math.inf, 4)], "rate bound -1"),
    ([(50, 1), (200, 4)], "end it with \\(math.inf, 4\\)"),
    ([(50, 1, 3)], "not a \\(rate_bound, batch_size\\) pair"),
])
def test_bad_tables_are_refused_with_the_fix(table, message):
    with pytest.raises(ValueError, match=message):
        validate_table(table)
    with pytest.raises(ValueError, match=message):
        BatchingServer(lambda xs: xs, table=table)


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="max_wait"):
        BatchingServer(lambda xs: xs, max_wait=-1)
    with pytest.raises(ValueError, match="rate window"):
        BatchingServer(lambda xs: xs, rate_window=0)
    with pytest.raises(TypeError, match="callable"):
        BatchingServer("not a function")


def test_mapping_table_and_fixed_table():
    assert validate_table({10: 2, math.inf: 8}) == ((10.0, 2), (math.inf, 8))
    assert fixed_table(4) == ((math.inf, 4),)


# --- rate measurement and the batch sizes it chooses

def test_rate_meter_counts_a_sliding_window():
    now = [0.0]
    meter = RateMeter(window=1.0, clock=lambda: now[0])
    assert meter.rate() == 0.0
    for i in range(150):  # 100 req/s for 1.5 s
        now[0] = i * 0.01
        meter.record()
        if i == 20:  # before a full window: the count over the time elapsed
            assert meter.rate() == pytest.approx(105.0)
    assert meter.rate() == pytest.approx(100.0)  # arrivals in (0.49, 1.49]
    assert choose_batch_size(meter.rate()) == 4
    now[0] = 2.0  # only the arrivals after 1.0 s are left in the window
    assert meter.rate() == pytest.approx(49.0)
    assert choose_batch_size(meter.rate()) == 1
    now[0] = 5.0
    assert meter.rate() == 0.0


def test_rate_meter_starts_with_a_tenth_of_the_window():
    meter = RateMeter(window=1.0, clock=lambda: 0.0)
    meter.record()
    assert meter.rate() == pytest.approx(10.0)  # one arrival over 0.1 s, not over 0 s


def test_low_rate_serves_requests_one_by_one():
    fn = Recorder()
    with BatchingServer(fn, max_wait=0.5) as server:  # default table: < 50 req/s -> 1
        for i in range(8):
            assert server(i) == ("done", i)
            time.sleep(0.04)  # about 20 req/s
    assert fn.sizes == [1] * 8


def test_a_burst_raises_the_batch_size():
    """1 request, then 39 while it runs: the backlog drains at once in batches of 16, 16, 7."""
    fn = Recorder(hold_first=True)
    table = [(5, 1), (20, 4), (math.inf, 16)]
    with BatchingServer(fn, table=table, max_wait=0.05) as server:
        first = server.submit(0)
        assert fn.entered.wait(5)
        futures = [first] + [server.submit(i) for i in range(1, 40)]
        assert server.batch_size() == 16
        fn.release.set()
        assert [f.result(5) for f in futures] == [("done", i) for i in range(40)]
    assert fn.sizes == [1, 16, 16, 7]
    stats = server.stats()
    assert stats["requests"] == 40 and stats["batches"] == 4 and stats["batch_sizes"][16] == 2


def test_a_backlog_drains_in_full_batches_whatever_the_rate_says():
    """Regression: batches followed the rate of the last second, so a burst queued behind a
    slow batch drained one request at a time (300 requests: 15.2 s against 1.9 s for fixed 16).

    The table here says 1 at every plausible rate; the backlog still goes in batches of 16."""
    fn = Recorder(hold_first=True)
    table = [(1e9, 1), (math.inf, 16)]
    with BatchingServer(fn, table=table, max_wait=5.0, max_batch_size=16) as server:
        first = server.submit(0)
        assert fn.entered.wait(5)
        futures = [first] + [server.submit(i) for i in range(1, 31)]
        assert server.batch_size() == 1 and server.queue_depth() == 30
        fn.release.set()
        assert [f.result(5) for f in futures] == [("done", i) for i in range(31)]
    assert fn.sizes == [1, 16, 14]


def test_an_idle_worker_waits_for_the_rate_s_batch_but_a_backlog_does_not_wait():
    fn = Recorder(hold_first=True)
    with BatchingServer(fn, table=fixed_table(8), max_wait=30.0) as server:
        futures = [server.submit(i) for i in range(8)]  # idle: waits for 8, they come at once
        assert fn.entered.wait(5)
        futures += [server.submit(i) for i in range(8, 11)]  # a backlog of 3: no 30 s wait
        start = time.perf_counter()
        fn.release.set()
        assert [f.result(10) for f in futures] == [("done", i) for i in range(11)]
        assert time.perf_counter() - start < 10.0  # well under max_wait (30 s)
    assert fn.sizes == [8, 3]


def test_a_full_queue_sheds_load_with_a_retry_hint():
    fn = Recorder(hold_first=True)
    with BatchingServer(fn, table=fixed_table(1), max_wait=0.0, max_queue=3) as server:
        running = server.submit("running")
        assert fn.entered.wait(5)
        queued = [server.submit(i) for i in range(3)]
        with pytest.raises(QueueFullError, match="max_queue=3") as info:
            server.submit("one too many")
        assert info.value.retry_after >= 1 and info.value.max_queue == 3
        fn.release.set()
        assert [f.result(5) for f in [running, *queued]] == \
            [("done", "running")] + [("done", i) for i in range(3)]
        assert server("after the backlog", timeout=5) == ("done", "after the backlog")


@pytest.mark.parametrize("kwargs, message", [({"max_batch_size": 0}, "max_batch_size"),
                                             ({"max_queue": 0}, "max_queue"),
                                             ({"max_queue": 2.5}, "max_queue")])
def test_bad_bounds_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchingServer(lambda xs: xs, **kwargs)


def test_batching_metrics_reach_prometheus_text():
    from prometheus_client import CollectorRegistry, generate_latest

    from openautoglm.glm.metrics import BatchingMetrics

    metrics = BatchingMetrics(CollectorRegistry())
    fn = Recorder(hold_first=True)
    observer = metrics.observer(model="m", version="2")
    with BatchingServer(fn, table=fixed_table(4), max_wait=0.0, max_queue=4,
                        observer=observer) as server:
        futures = [server.submit(0)]
        assert fn.entered.wait(5)
        futures += [server.submit(i) for i in range(1, 5)]
        with pytest.raises(QueueFullError):
            server.submit(5)
        text = generate_latest(metrics.registry).decode()
        assert 'openautoglm_queue_depth{model="m",version="2"} 4.0' in text
        fn.release.set()
        [f.result(5) for f in futures]
    text = generate_latest(metrics.registry).decode()
    assert 'openautoglm_requests_shed_total{model="m",version="2"} 1.0' in text
    assert 'openautoglm_batch_size_count{model="m",version="2"} 2.0' in text  # [0], [1..4]
    assert 'openautoglm_batch_size_sum{model="m",version="2"} 5.0' in text


# --- correctness under concurrent callers

def test_each_concurrent_caller_gets_its_own_results_in_order():
    fn = Recorder(delay=0.001)
    errors: list[str] = []
    with BatchingServer(fn, table=[(20, 1), (100, 4), (math.inf, 16)], max_wait=0.005) as server:

        def caller(c: int) -> None:
            futures = [server.submit((c, i)) for i in range(60)]
            got = [f.result(20) for f in futures]
            if got != [("done", (c, i)) for i in range(60)]:
                errors.append(f"caller {c} got {got[:3]}...")

        threads = [threading.Thread(target=caller, args=(c,)) for c in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    seen = [r for batch in fn.batches for r in batch]
    assert sorted(seen) == sorted((c, i) for c in range(6) for i in range(60))  # each once
    for c in range(6):  # first in, first served: each caller's requests in submission order
        assert [i for cc, i in seen if cc == c] == list(range(60))
    assert max(fn.sizes) > 1  # 360 requests in well under a second did get batched


# --- max_wait

def test_max_wait_is_honoured_when_the_batch_does_not_fill():
    fn = Recorder()
    with BatchingServer(fn, table=fixed_table(16), max_wait=0.1) as server:
        for _ in range(3):
            start = time.perf_counter()
            server("x")
            latency = time.perf_counter() - start
            # Waited for company, but not much longer than max_wait (slack for a loaded machine).
            assert 0.09 <= latency < 1.0
    assert fn.sizes == [1, 1, 1]


def test_zero_max_wait_never_waits():
    fn = Recorder()
    with BatchingServer(fn, table=fixed_table(16), max_wait=0.0) as server:
        start = time.perf_counter()
        assert server("x", timeout=5) == ("done", "x")
        assert time.perf_counter() - start < 1.0
    assert fn.sizes == [1]


# --- errors from fn, shutdown

def test_fn_errors_reach_every_caller_of_the_batch_and_the_server_goes_on():
    def fn(xs):
        if "bad" in xs:
            raise RuntimeError("model failed")
        return xs if xs != ["short"] else []

    with BatchingServer(fn, table=fixed_table(2), max_wait=0.2) as server:
        a, b = server.submit("bad"), server.submit("ok")
        for f in (a, b):
            with pytest.raises(RuntimeError, match="model failed"):
                f.result(5)
        with pytest.raises(ValueError, match="one result per request"):
            server("short")
        assert serve_many(server, ["p", "q", "r"]) == ["p", "q", "r"]


def test_close_serves_pending_requests_then_refuses_new_ones():
    fn = Recorder(hold_first=True)
    server = BatchingServer(fn, table=fixed_table(4), max_wait=10.0)
    futures = [server.submit(i) for i in range(6)]
    assert fn.entered.wait(5)
    fn.release.set()
    server.close()  # the last 2 would wait 10 s for company; close sends them at once
    assert [f.result(1) for f in futures] == [("done", i) for i in range(6)]
    assert not server._worker.is_alive() and server.closed
    with pytest.raises(ServerClosedError, match="closed"):
        server.submit(7)


def test_close_can_cancel_pending_requests():
    fn = Recorder(hold_first=True)
    server = BatchingServer(fn, table=fixed_table(1), max_wait=0.0)
    running = server.submit("running")
    assert fn.entered.wait(5)
    queued = [server.submit(i) for i in range(3)]
    server.close(wait=False, cancel_pending=True)
    fn.release.set()
    assert running.result(5) == ("done", "running")
    for f in queued:
        with pytest.raises(CancelledError):
            f.result(5)
    server._worker.join(5)
    assert not server._worker.is_alive()
    assert fn.sizes == [1]


# --- the GLM behind the server

def test_glm_server_returns_what_generate_gives_alone():
    torch.manual_seed(0)
    tok = CharTokenizer.from_text("abcdefghij klmnop")
    model = GLMModel(GLMConfig(vocab_size=tok.vocab_size, hidden=16, heads=2, max_len=32)).eval()
    prompts = ["abc", "hello", "k", "jjjj ab", "pon", "a b c d"]
    with glm_server(model, tok, max_new_tokens=6, table=fixed_table(4), max_wait=0.05) as server:
        futures = [server.submit(p) for p in prompts]
        got = [f.result(30) for f in futures]
    assert got == [generate(model, tok, p, max_new_tokens=6) for p in prompts]
    assert max(server.stats()["batch_sizes"]) > 1
    with pytest.raises(ValueError, match="max_new_tokens"):
        glm_server(model, tok, max_new_tokens=100)
