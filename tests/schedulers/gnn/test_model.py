"""SchedulerGCN: shapes, determinism, permutation equivariance, heads' ranges, errors."""
from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import GCNConv

from openautoglm.schedulers.gnn.features import FEATURE_NAMES, graph_features
from openautoglm.core.loaders import random_dag
from openautoglm.core.cluster import Cluster
from openautoglm.schedulers.gnn.model import SchedulerGCN


def inputs(n: int = 30, seed: int = 0):
    f = graph_features(random_dag(n, ccr=1.0, seed=seed), Cluster.homogeneous(4))
    return f.x, f.edge_index, f.edge_weight


def trained_like(seed: int = 0) -> SchedulerGCN:
    """A model whose priority head is not at its zero initialisation."""
    torch.manual_seed(seed)
    m = SchedulerGCN(len(FEATURE_NAMES), 16)
    torch.nn.init.normal_(m.priority_head[-1].weight)
    return m.eval()


def test_exactly_two_gcn_layers_and_shapes():
    m = trained_like()
    assert sum(isinstance(mod, GCNConv) for mod in m.modules()) == 2
    x, ei, ew = inputs()
    p, s = m(x, ei, ew)
    assert p.shape == (30,) and s.shape == (30,)
    assert ((s >= m.min_share) & (s <= 1)).all()
    p2, _ = m(x, ei)  # edge weights are optional
    assert p2.shape == (30,)


def test_deterministic():
    x, ei, ew = inputs()
    a, b = trained_like(3), trained_like(3)
    pa, sa = a(x, ei, ew)
    pb, sb = b(x, ei, ew)
    assert torch.equal(pa, pb) and torch.equal(sa, sb)
    pc, _ = a(x, ei, ew)
    assert torch.equal(pa, pc)


def test_outputs_follow_a_permutation_of_the_nodes():
    x, ei, ew = inputs(40, seed=2)
    m = trained_like(1)
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(40)
    p, s = m(x, ei, ew)
    pp, sp = m(x[perm], inv[ei], ew)
    torch.testing.assert_close(pp, p[perm], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sp, s[perm], rtol=1e-5, atol=1e-6)


def test_fresh_model_ranks_like_its_base_feature():
    """With a zero priority head the priority equals the base column (the upward rank)."""
    x, ei, ew = inputs()
    m = SchedulerGCN(len(FEATURE_NAMES), 8, base_feature=FEATURE_NAMES.index("rank_u"))
    p, _ = m(x, ei, ew)
    torch.testing.assert_close(p, x[:, FEATURE_NAMES.index("rank_u")])
    m.priority_head[-1].weight.data.fill_(1.0)
    m.reset_parameters()
    torch.testing.assert_close(m(x, ei, ew)[0], x[:, 0])


def test_gradients_reach_both_gcn_layers():
    x, ei, ew = inputs()
    m = trained_like()
    m.train()
    p, s = m(x, ei, ew)
    (p.sum() + s.sum()).backward()
    assert m.conv1.lin.weight.grad.abs().sum() > 0
    assert m.conv2.lin.weight.grad.abs().sum() > 0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="shape"):
        SchedulerGCN(5, 8)(torch.rand(3, 4), torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="base_feature"):
        SchedulerGCN(5, 8, base_feature=7)
    with pytest.raises(ValueError, match="min_share"):
        SchedulerGCN(5, 8, min_share=0.0)


def test_sparse_adjacency_path_equals_edge_list_path():
    """GraphFeatures.adj (one CSR product per layer) computes exactly what gcn_norm + scatter do."""
    f = graph_features(random_dag(200, ccr=3.0, seed=4), Cluster([1, 1, 2], bandwidth=2.0))
    m = trained_like(2)
    p1, s1 = m(f.x, f.edge_index, f.edge_weight)
    p2, s2 = m(f.x, f.adj)
    torch.testing.assert_close(p1, p2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s1, s2, rtol=1e-5, atol=1e-5)
    assert f.adj.shape == (200, 200) and f.adj._nnz() == 200 + f.edge_index.shape[1]
    # A valid CSR matrix: columns sorted and distinct within every row.
    torch.sparse_csr_tensor(f.adj.crow_indices(), f.adj.col_indices(), f.adj.values(), f.adj.shape,
                            check_invariants=True)
