"""Named graph shapes for scheduler tests, each with its drawing (dask's test_order.py habit).

Every function returns a ``networkx.DiGraph`` with ``cost`` on nodes and ``size`` on edges;
keys are small ints, so a test can rename them (see the ``alphabet`` fixture in
``tests/conftest.py``) and check that nothing depends on the names. ``SHAPES`` lists them all.
"""
from __future__ import annotations

from collections.abc import Callable

import networkx as nx


def _graph(costs: dict[int, float], edges: dict[tuple[int, int], float]) -> nx.DiGraph:
    G = nx.DiGraph()
    for k, c in costs.items():
        G.add_node(k, cost=c)
    for (u, v), s in edges.items():
        G.add_edge(u, v, size=s)
    return G


def chain() -> nx.DiGraph:
    r"""Four tasks in a line: nothing runs in parallel.

        0 -> 1 -> 2 -> 3
    """
    return _graph({0: 2.0, 1: 1.0, 2: 3.0, 3: 1.0}, {(0, 1): 1.0, (1, 2): 2.0, (2, 3): 0.5})


def diamond() -> nx.DiGraph:
    r"""Fork and join: the two middle tasks may run apart if the transfers are cheap.

          0
         / \
        1   2
         \ /
          3
    """
    return _graph({0: 1.0, 1: 4.0, 2: 3.0, 3: 1.0},
                  {(0, 1): 1.0, (0, 2): 1.0, (1, 3): 2.0, (2, 3): 0.5})


def independent() -> nx.DiGraph:
    r"""Six unrelated tasks of unequal length (a bin-packing of work).

        0   1   2   3   4   5
    """
    return _graph({0: 5.0, 1: 1.0, 2: 3.0, 3: 2.0, 4: 4.0, 5: 1.0}, {})


def out_tree() -> nx.DiGraph:
    r"""One root feeding a two-level tree (a scatter).

              0
            /   \
           1     2
          / \   / \
         3   4 5   6
    """
    return _graph({k: float(1 + k % 3) for k in range(7)},
                  {(0, 1): 1.0, (0, 2): 1.0, (1, 3): 0.5, (1, 4): 0.5, (2, 5): 2.0, (2, 6): 0.5})


def in_tree() -> nx.DiGraph:
    r"""A two-level reduction into one sink (a gather).

         0   1 2   3
          \ /   \ /
           4     5
            \   /
              6
    """
    return _graph({k: float(1 + (k * 2) % 3) for k in range(7)},
                  {(0, 4): 1.0, (1, 4): 0.5, (2, 5): 2.0, (3, 5): 1.0, (4, 6): 1.0, (5, 6): 3.0})


def crossing() -> nx.DiGraph:
    r"""Two stages fully connected: every second-stage task needs every first-stage output.

        0   1   2
        |\ /|\ /|
        | X | X |      (each of 0, 1, 2 -> each of 3, 4)
        |/ \|/ \|
         3     4
    """
    return _graph({0: 2.0, 1: 3.0, 2: 1.0, 3: 2.0, 4: 2.0},
                  {(u, v): 0.5 + u for u in (0, 1, 2) for v in (3, 4)})


def long_and_short() -> nx.DiGraph:
    r"""A long critical chain beside short side tasks: the chain must start first.

        0 -> 1 -> 2        (cost 4 each)
        3   4   5          (cost 1 each, independent)
    """
    return _graph({0: 4.0, 1: 4.0, 2: 4.0, 3: 1.0, 4: 1.0, 5: 1.0}, {(0, 1): 0.1, (1, 2): 0.1})


#: Every shape by name.
SHAPES: dict[str, Callable[[], nx.DiGraph]] = {
    f.__name__: f for f in (chain, diamond, independent, out_tree, in_tree, crossing, long_and_short)
}
