"""The two-layer GCN that predicts a priority and a resource share per task.

::

    x (n, F) --GCNConv--> ReLU --GCNConv--> ReLU --+--> priority head --> (n,)  higher runs first
                  edge_index, edge_weight          |
                                   x (skip) ------+--> share head ----> (n,)  in (0, 1]
                                                  |
              h[src], h[dst], edge features ------+--> edge head -----> (m,)  logit: same worker?

The priority is a *correction* added to one input column (the normalised upward rank,
HEFT's priority) when ``base_feature`` is given: an untrained model with a zero head already
ranks like HEFT, and training learns where to deviate. A share is the fraction of a worker's
cores a task is given (``ceil(share * cores)`` cores, at least one); tasks whose shares fit
run side by side on one worker. The optional edge head (``edge_channels > 0``) scores every
dependency edge: the logit of the probability that parent and child belong on one worker, read
from both endpoints' embeddings and the edge's own features (``EDGE_FEATURE_NAMES`` of
``openautoglm.schedulers.gnn.decode``); its last layer starts at zero (probability 1/2: no
learned co-location).

Tests: ``tests/schedulers/gnn/test_model.py`` (shapes, determinism, permutation equivariance).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import GCNConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm

__all__ = ["SchedulerGCN"]


class SchedulerGCN(nn.Module):
    """Two ``GCNConv`` layers and two heads: priority (per task) and share in (0, 1].

    Args:
        in_channels: Number of node features (``len(FEATURE_NAMES)``).
        hidden_channels: Width of both GCN layers and of the heads.
        base_feature: Column of ``x`` the priority is a correction of (``None``: no base).
        min_share: Smallest share the share head can output (shares lie in
            ``[min_share, 1]``).
        edge_channels: Number of per-edge features the edge head reads (0: no edge head).

    Example:
        >>> import torch
        >>> m = SchedulerGCN(4, 8)
        >>> x = torch.rand(3, 4)
        >>> edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
        >>> priority, share = m(x, edge_index)
        >>> tuple(priority.shape), bool(((share > 0) & (share <= 1)).all())
        ((3,), True)
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int = 32,
        base_feature: int | None = 0,
        min_share: float = 0.05,
        edge_channels: int = 0,
    ) -> None:
        super().__init__()
        if in_channels < 1 or hidden_channels < 1:
            raise ValueError(
                f"in_channels and hidden_channels must be positive, got {in_channels} and "
                f"{hidden_channels}"
            )
        if base_feature is not None and not 0 <= base_feature < in_channels:
            raise ValueError(
                f"base_feature={base_feature} is not a column of a {in_channels}-feature input; "
                f"pass an index in [0, {in_channels}) or None"
            )
        if edge_channels < 0:
            raise ValueError(f"edge_channels must be >= 0, got {edge_channels}")
        if not 0.0 < min_share <= 1.0:
            raise ValueError(f"min_share must lie in (0, 1], got {min_share}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.base_feature = base_feature
        self.min_share = min_share
        self.edge_channels = edge_channels
        # Both layers share one normalised adjacency, computed once per forward call.
        self.conv1 = GCNConv(in_channels, hidden_channels, normalize=False)
        self.conv2 = GCNConv(hidden_channels, hidden_channels, normalize=False)
        self.priority_head = nn.Sequential(
            nn.Linear(hidden_channels + in_channels, hidden_channels),
            nn.ReLU(),
            nn.Linear(hidden_channels, 1),
        )
        self.share_head = nn.Sequential(
            nn.Linear(hidden_channels + in_channels, hidden_channels),
            nn.ReLU(),
            nn.Linear(hidden_channels, 1),
        )
        if edge_channels:
            # First layer split by input: W_s h[src] + W_d h[dst] + W_e e, computed per node
            # before the gather (cheap on graphs with many more edges than tasks).
            self.edge_src = nn.Linear(hidden_channels, hidden_channels)
            self.edge_dst = nn.Linear(hidden_channels, hidden_channels, bias=False)
            self.edge_in = nn.Linear(edge_channels, hidden_channels, bias=False)
            self.edge_out = nn.Linear(hidden_channels, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every layer; the priority head's last layer starts at zero."""
        self.conv1.reset_parameters()
        self.conv2.reset_parameters()
        for head in (self.priority_head, self.share_head):
            for layer in head:
                if isinstance(layer, nn.Linear):
                    layer.reset_parameters()
        # Start from the base ranking exactly (HEFT when base_feature is the upward rank).
        last = self.priority_head[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        if self.edge_channels:
            for layer in (self.edge_src, self.edge_dst, self.edge_in):
                layer.reset_parameters()
            # Probability 1/2 on every edge: no co-location learned yet.
            nn.init.zeros_(self.edge_out.weight)
            nn.init.zeros_(self.edge_out.bias)

    def forward(
        self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Predict priorities and shares.

        Args:
            x: Node features, shape (n, in_channels).
            edge_index: Edges, shape (2, m) (give both directions for an undirected view), or
                an already normalised sparse CSR adjacency (``GraphFeatures.adj``).
            edge_weight: Optional positive edge weights, shape (m,) (ignored with a CSR
                adjacency, whose values are the normalised weights).

        Returns:
            ``(priority, share)``: two tensors of shape (n,); higher priority runs earlier,
            ``share`` lies in ``[min_share, 1]``.

        Raises:
            ValueError: If ``x`` does not have ``in_channels`` columns.
        """
        h = self.embed(x, edge_index, edge_weight)
        return self.heads(h, x)

    def embed(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        """The trunk: two ``GCNConv`` layers with ReLU, shape (n, hidden_channels).

        Args and errors as :meth:`forward`.
        """
        if x.dim() != 2 or x.size(1) != self.in_channels:
            raise ValueError(
                f"x must have shape (n, {self.in_channels}), got {tuple(x.shape)}; build it "
                f"with openautoglm.schedulers.gnn.features.graph_features"
            )
        if edge_index.layout == torch.sparse_csr:
            # Already D^-1/2 (A + I) D^-1/2 (GraphFeatures.adj): a sparse matrix product.
            edge_weight = None
        else:
            # D^-1/2 (A + I) D^-1/2, as GCNConv(normalize=True) computes in each layer.
            edge_index, edge_weight = gcn_norm(edge_index, edge_weight, x.size(0),
                                               add_self_loops=True, dtype=x.dtype)
        h = torch.relu(self.conv1(x, edge_index, edge_weight))
        return torch.relu(self.conv2(h, edge_index, edge_weight))

    def heads(self, h: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """Priority and share from the trunk's embedding ``h`` and the input ``x``."""
        z = torch.cat([h, x], dim=1)
        priority = self.priority_head(z).squeeze(-1)
        if self.base_feature is not None:
            priority = priority + x[:, self.base_feature]
        share = self.min_share + (1.0 - self.min_share) * torch.sigmoid(self.share_head(z).squeeze(-1))
        return priority, share

    def colocation(self, h: Tensor, src: Tensor, dst: Tensor, edge_attr: Tensor) -> Tensor:
        """Logit, per edge, that its two endpoints belong on one worker.

        Args:
            h: The trunk's embedding (:meth:`embed`), shape (n, hidden_channels).
            src: Parent of every edge, long tensor (m,).
            dst: Child of every edge, long tensor (m,).
            edge_attr: Edge features, shape (m, edge_channels).

        Returns:
            Logits, shape (m,) (``sigmoid`` gives the probability).

        Raises:
            ValueError: If the model has no edge head or ``edge_attr`` has the wrong width.
        """
        if not self.edge_channels:
            raise ValueError("this model has no edge head (edge_channels=0); train one with "
                             "`openautoglm train-scheduler`")
        if edge_attr.dim() != 2 or edge_attr.size(1) != self.edge_channels:
            raise ValueError(f"edge_attr must have shape (m, {self.edge_channels}), got "
                             f"{tuple(edge_attr.shape)}")
        z = self.edge_src(h)[src] + self.edge_dst(h)[dst] + self.edge_in(edge_attr)
        return self.edge_out(torch.relu(z)).squeeze(-1)

    def extra_repr(self) -> str:
        return (f"base_feature={self.base_feature}, min_share={self.min_share}, "
                f"edge_channels={self.edge_channels}")
