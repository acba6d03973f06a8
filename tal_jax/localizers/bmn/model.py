"""BMN (Boundary-Matching Network), as MMAction2 1.2.0 `localizers/bmn.py`.

Channels last: features [B, T, D] in, and out
  confidence_map [B, T(duration), T(start), 2] (channel 0 = regression map,
  channel 1 = classification map), start [B, T], end [B, T] (probabilities).
Cell [d, s] is the proposal [s/T, (s+d+1)/T].

Parameter tree (names follow MMAction2's `nn.Sequential` indices, so
'x_1d_b.0.weight' is params['x_1d_b_0']['kernel']):
  x_1d_b_0, x_1d_b_2   Conv1d k3 groups 4 (D -> h1, h1 -> h1)
  x_1d_s_0, x_1d_e_0   Conv1d k3 groups 4 (h1 -> h1)
  x_1d_s_2, x_1d_e_2   Conv1d k1 (h1 -> 1)
  x_1d_p_0             Conv1d k3 (h1 -> h1)
  x_3d_p_0             BM layer + Conv3d kernel (N, 1, 1) (h1 -> h3)
  x_2d_p_0             Conv2d k1 (h3 -> h2)
  x_2d_p_2, x_2d_p_4   Conv2d k3 (h2 -> h2)
  x_2d_p_6             Conv2d k1 (h2 -> 2)
each with 'kernel' (Flax layout [*spatial, in/groups, out]) and 'bias'.
MMAction2's `BMN.init_weights` is a no-op, so every layer keeps PyTorch's
default init, which `layers.torch_conv` reproduces.
"""

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from tal_jax.nn import layers

from tal_jax.localizers.bmn import boundary_matching


class BMN(nn.Module):
  """Boundary-Matching Network.

  Attributes:
    temporal_dim: T, number of temporal bins.
    feat_dim: D, input feature channels.
    boundary_ratio: sampling window extension on each side of a proposal.
    num_samples: N, sample points per proposal.
    num_samples_per_bin: sub-points averaged per sample point.
    hidden_dim_1d, hidden_dim_2d, hidden_dim_3d: layer widths.
    bm_layer: 'dense' (as MMAction2) or 'reassociated' (same function, faster).
    dtype: compute dtype (float32 or bfloat16); parameters and outputs float32.
  """
  temporal_dim: int = 100
  feat_dim: int = 400
  boundary_ratio: float = 0.5
  num_samples: int = 32
  num_samples_per_bin: int = 3
  hidden_dim_1d: int = 256
  hidden_dim_2d: int = 128
  hidden_dim_3d: int = 512
  bm_layer: str = 'dense'
  dtype: jnp.dtype = jnp.float32

  def _conv(self, name, features, kernel, in_features, padding=0, groups=1):
    return layers.torch_conv(features, kernel, in_features, padding, groups,
                             self.dtype, name)

  def _conv_relu(self, name, x, features, kernel, padding=0, groups=1):
    return layers.conv_relu(x, features, kernel, padding, groups, self.dtype,
                            name)

  def _tem_branch(self, prefix, base):
    """Start or end probabilities [B, T] from base features [B, T, h1]."""
    h1 = self.hidden_dim_1d
    x = self._conv_relu(f'{prefix}_0', base, h1, (3,), 1, 4)
    x = self._conv(f'{prefix}_2', 1, (1,), h1)(x)
    return nn.sigmoid(x.astype(jnp.float32))[..., 0]

  def _proposal_map(self, base):
    """Confidence map [B, T, T, 2] from base features [B, T, h1]."""
    h1, h2, h3 = self.hidden_dim_1d, self.hidden_dim_2d, self.hidden_dim_3d
    x = self._conv_relu('x_1d_p_0', base, h1, (3,), 1)
    bm = boundary_matching.BoundaryMatching(
        h3, self.num_samples, self.num_samples_per_bin, self.boundary_ratio,
        self.bm_layer, self.dtype, name='x_3d_p_0')
    conv_2d_0 = self._conv('x_2d_p_0', h2, (1, 1), h3)
    if self.bm_layer == 'reassociated':
      x = self._valid_cells_1x1(bm, conv_2d_0, x)
    else:
      x = nn.relu(conv_2d_0(nn.relu(bm(x))))
    x = self._conv_relu('x_2d_p_2', x, h2, (3, 3), 1)
    x = self._conv_relu('x_2d_p_4', x, h2, (3, 3), 1)
    x = self._conv('x_2d_p_6', 2, (1, 1), h2)(x)
    return nn.sigmoid(x.astype(jnp.float32))

  def _valid_cells_1x1(self, bm, conv_2d_0, x):
    """BM layer, ReLU, 1x1 conv, ReLU on the valid cells only: [B,T,T,h2].

    Every invalid cell (s+d > T-1) leaves the BM layer as its bias, so they
    all share one row, computed once and spread over the grid afterwards.
    """
    cells, bias = bm(x, as_cells=True)  # [V, B, h3], [h3]
    cells = nn.relu(conv_2d_0(nn.relu(cells)))  # 1x1 conv: spatial (V, B)
    row = nn.relu(conv_2d_0(nn.relu(bias)[None, None, :]))  # [1, 1, h2]
    row = jnp.broadcast_to(row, (1,) + cells.shape[1:])
    return boundary_matching.grid_from_cells(jnp.concatenate([cells, row]),
                                  boundary_matching.valid_cell_index(self.temporal_dim))

  @classmethod
  def from_config(cls, model_config: ml_collections.ConfigDict,
                  dtype=jnp.float32) -> 'BMN':
    """Builds BMN from the `config.model` fields of configs/bmn.py."""
    m = model_config
    return cls(temporal_dim=m.temporal_dim, feat_dim=m.feat_dim,
               boundary_ratio=m.boundary_ratio, num_samples=m.num_samples,
               num_samples_per_bin=m.num_samples_per_bin,
               hidden_dim_1d=m.hidden_dim_1d, hidden_dim_2d=m.hidden_dim_2d,
               hidden_dim_3d=m.hidden_dim_3d, bm_layer=m.bm_layer, dtype=dtype)

  @nn.compact
  def __call__(self, features):
    """features: [B, T, D] -> (confidence_map [B,T,T,2], start [B,T], end [B,T])."""
    layers.check_features('BMN', features, self.temporal_dim, self.feat_dim)
    h1 = self.hidden_dim_1d
    x = features.astype(self.dtype)
    x = self._conv_relu('x_1d_b_0', x, h1, (3,), 1, 4)
    base = self._conv_relu('x_1d_b_2', x, h1, (3,), 1, 4)
    start = self._tem_branch('x_1d_s', base)
    end = self._tem_branch('x_1d_e', base)
    return self._proposal_map(base), start, end


def bmn_from_config(config: ml_collections.ConfigDict, dtype=None) -> BMN:
  """Builds BMN from `config.model`, computing in `dtype` or `config.dtype`."""
  if dtype is None:
    dtype = jnp.dtype(config.dtype)
  return BMN.from_config(config.model, dtype)
