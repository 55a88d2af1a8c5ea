"""Schedulers: the HEFT paper's example, and every policy over a grid of graph shapes."""
from __future__ import annotations

import openautoglm as oag
from openautoglm.testing import assert_valid_schedule


def test_heft_paper_example(heft_paper):
    """Topcuoglu et al. 2002, Fig. 2 / Fig. 4(a): HEFT's makespan is 80."""
    g, c = heft_paper
    s = oag.schedule(g, c, policy="heft")
    assert_valid_schedule(s)
    assert s.makespan == 80.0


def test_cpop_paper_example(heft_paper):
    """Topcuoglu et al. 2002, Fig. 4(b): CPOP's makespan is 86."""
    g, c = heft_paper
    s = oag.schedule(g, c, policy="cpop")
    assert_valid_schedule(s)
    assert s.makespan == 86.0
