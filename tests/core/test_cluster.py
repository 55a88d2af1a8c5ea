"""Cluster construction and validation."""
from __future__ import annotations

import math

import pytest

import openautoglm as oag


def test_cluster_fields():
    c = oag.Cluster(speeds=[1, 1, 2, 2], bandwidth=5.0, cores=[1, 2, 4, 8])
    assert c.n_workers == 4 == len(c)
    assert c.speeds.tolist() == [1.0, 1.0, 2.0, 2.0]
    assert c.cores.tolist() == [1, 2, 4, 8]
    assert c.bandwidth == 5.0
    h = oag.Cluster.homogeneous(3, speed=2.0, bandwidth=math.inf, cores=4)
    assert h.speeds.tolist() == [2.0] * 3 and h.cores.tolist() == [4] * 3
    assert h == oag.Cluster([2.0, 2.0, 2.0], bandwidth=math.inf, cores=4)


@pytest.mark.parametrize("kwargs, match", [
    ({"speeds": []}, "at least one worker"),
    ({"speeds": [1, 0]}, "positive"),
    ({"speeds": [1, -2]}, "positive"),
    ({"speeds": [1, math.nan]}, "positive"),
    ({"speeds": [1], "bandwidth": 0}, "bandwidth"),
    ({"speeds": [1], "bandwidth": math.nan}, "bandwidth"),
    ({"speeds": [1, 1], "cores": [1]}, "one per worker"),
    ({"speeds": [1], "cores": 0}, "cores"),
    ({"speeds": [1], "cores": 1.5}, "cores"),
])
def test_cluster_refuses_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        oag.Cluster(**kwargs)


def test_homogeneous_needs_workers():
    with pytest.raises(ValueError, match="at least one worker"):
        oag.Cluster.homogeneous(0)
