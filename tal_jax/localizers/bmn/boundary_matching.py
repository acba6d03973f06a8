"""BMN's boundary-matching layer.

The boundary-matching (BM) layer of BMN samples, for every proposal cell
[duration d, start s], `num_samples` points of the 1d feature sequence by
linear interpolation and feeds them to a Conv3d with kernel (num_samples, 1, 1).
The sampling weights are a numpy constant built once per configuration
(`bm_sample_mask`), bit-for-bit as MMAction2 1.2.0 builds `sample_mask`,
including its `math.modf` truncation toward zero: a point in (-1, 0) puts weight
1.0 on index 0 while a point in (T-1, T) puts only 1-frac on index T-1.

Two equal formulations of the layer (same parameters):
  'dense': MMAction2's order: features @ mask ([T] x [T, N*T*T]), then Conv3d.
  'reassociated': contract the Conv3d weights with the features first
    (Y[t, n, o] = sum_c x[t, c] W[n, c, o]), then one matmul with the mask
    restricted to the valid cells s+d <= T-1 (the other cells are zero, so
    every invalid cell equals the bias; BMN keeps them as one shared row
    through its 1x1 convolution, `as_cells=True`, and only then spreads the
    cells over the [T, T] grid with `grid_from_cells`).
"""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from tal_jax.nn.layers import torch_bias_init
from tal_jax.nn.layers import torch_kernel_init


def _bin_positions(tscale, num_samples, num_samples_per_bin, boundary_ratio,
                   duration):
  """Sample positions [T-d, N*nb] float64 for all starts of one duration d.

  Same float64 operations as MMAction2's `_get_interp1d_mask` /
  `_get_interp1d_bin_mask`, so the positions are bit-identical.
  """
  starts = np.arange(tscale - duration, dtype=np.float64)
  center_len = float(duration) + 1
  sample_tmin = starts - (center_len * boundary_ratio)
  sample_tmax = (starts + duration) + (center_len * boundary_ratio)
  plen = sample_tmax - sample_tmin
  plen_sample = plen / (num_samples * num_samples_per_bin - 1.0)
  i = np.arange(num_samples * num_samples_per_bin, dtype=np.float64)
  return sample_tmin[:, None] + plen_sample[:, None] * i[None, :]


def _interp_weights(positions, tscale, num_samples, num_samples_per_bin):
  """Accumulates interpolation weights [S, N, T] for positions [S, N*nb].

  Adds in MMAction2's order (per point: floor index, then ceil index) and uses
  truncation toward zero (`np.modf`), then scales by 1/num_samples_per_bin.
  """
  n_cells = positions.shape[0]
  out = np.zeros((n_cells, num_samples, tscale), np.float64)
  pos = positions.reshape(n_cells, num_samples, num_samples_per_bin)
  cell_idx = np.arange(n_cells)[:, None]
  bin_idx = np.arange(num_samples)[None, :]
  for j in range(num_samples_per_bin):
    p = pos[:, :, j]
    frac, down = np.modf(p)
    upper = np.ceil(p)
    for index, weight in ((down, 1 - frac), (upper, frac)):
      index = index.astype(np.int64)
      valid = (index >= 0) & (index <= tscale - 1)
      out[cell_idx, bin_idx, np.clip(index, 0, tscale - 1)] += np.where(
          valid, weight, 0.0)
  return 1.0 / num_samples_per_bin * out


@functools.lru_cache(maxsize=8)
def bm_sample_mask(tscale: int, num_samples: int, num_samples_per_bin: int,
                   boundary_ratio: float) -> np.ndarray:
  """MMAction2's BM sampling mask, [T(t), N, T(duration), T(start)] float32.

  Reshaped to [T, N*T*T] it equals MMAction2's `BMN.sample_mask`. Columns of
  cells with s+d > T-1 are zero. Cached; treat the result as read-only.
  """
  mask = np.zeros((tscale, num_samples, tscale, tscale), np.float32)
  for d in range(tscale):  # weights in float64, stored rounded to float32
    pos = _bin_positions(tscale, num_samples, num_samples_per_bin,
                         boundary_ratio, d)
    w = _interp_weights(pos, tscale, num_samples, num_samples_per_bin)
    mask[:, :, d, :tscale - d] = np.transpose(w, (2, 1, 0))
  mask.setflags(write=False)
  return mask


def bm_valid_mask(tscale: int) -> np.ndarray:
  """[T(duration), T(start)] float32: 1 where s+d <= T-1 (MMAction2 `bm_mask`)."""
  d = np.arange(tscale)[:, None]
  s = np.arange(tscale)[None, :]
  return (s + d <= tscale - 1).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _valid_cell_matrix(tscale, num_samples, num_samples_per_bin,
                       boundary_ratio):
  """(A [V, T*N] float32, index [T*T] int32 into V valid cells or V = zero row)."""
  mask = bm_sample_mask(tscale, num_samples, num_samples_per_bin,
                        boundary_ratio)
  dd, ss = np.nonzero(bm_valid_mask(tscale))
  a = np.transpose(mask[:, :, dd, ss], (2, 0, 1)).reshape(len(dd), -1)
  return np.ascontiguousarray(a), valid_cell_index(tscale)


class BoundaryMatching(nn.Module):
  """BM layer + Conv3d(C -> features, kernel (N, 1, 1)), without activation.

  Parameters: 'kernel' [N, 1, 1, C, features] (Flax Conv3d layout) and 'bias'
  [features], initialised as PyTorch's Conv3d.

  Attributes:
    features: Conv3d output channels (hidden_dim_3d).
    num_samples, num_samples_per_bin, boundary_ratio: as MMAction2's BMN.
    bm_layer: 'dense' (MMAction2's formulation) or 'reassociated'.
    dtype: compute dtype.
  """
  features: int
  num_samples: int
  num_samples_per_bin: int
  boundary_ratio: float
  bm_layer: str = 'dense'
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, as_cells=False):
    """x: [B, T, C] -> [B, T(duration), T(start), features].

    With as_cells=True (bm_layer 'reassociated' only) returns
    (cells [V, B, features], bias [features]): the valid cells s+d <= T-1 in
    `valid_cell_index` order, bias included; every other cell equals `bias`.
    """
    tscale, channels = x.shape[-2], x.shape[-1]
    n = self.num_samples
    kernel = self.param('kernel', torch_kernel_init,
                        (n, 1, 1, channels, self.features))
    bias = self.param('bias', torch_bias_init(channels * n), (self.features,))
    x = x.astype(self.dtype)
    w = kernel.reshape(n, channels, self.features).astype(self.dtype)
    bias = bias.astype(self.dtype)
    args = (tscale, n, self.num_samples_per_bin, float(self.boundary_ratio))
    if self.bm_layer == 'dense' and not as_cells:
      return _dense_bm(x, w, bm_sample_mask(*args)) + bias
    if self.bm_layer != 'reassociated':
      raise ValueError(f"model.bm_layer: unknown '{self.bm_layer}' "
                       "(use 'dense' or 'reassociated')")
    a, index = _valid_cell_matrix(*args)
    cells = _reassociated_cells(x, w, a) + bias
    if as_cells:
      return cells, bias
    row = jnp.broadcast_to(bias, (1,) + cells.shape[1:])
    return grid_from_cells(jnp.concatenate([cells, row]), index)


def _dense_bm(x, w, mask):
  """MMAction2 order. x [B,T,C], w [N,C,O], mask [T,N,T,T] -> [B,T,T,O]."""
  sampled = jnp.einsum('btc,tnds->bcnds', x, jnp.asarray(mask, x.dtype))
  return jnp.einsum('bcnds,nco->bdso', sampled, w)


def _reassociated_cells(x, w, a):
  """Weights first. x [B,T,C], w [N,C,O], a [V,T*N] -> cells [V, B, O].

  One 2-D product [V, T*N] @ [T*N, B*O] (no batch dimension, no transpose of
  the [V, B, O] result).
  """
  batch, out = x.shape[0], w.shape[-1]
  y = jnp.einsum('btc,nco->tnbo', x, w).reshape(-1, batch * out)
  cells = jnp.dot(jnp.asarray(a, x.dtype), y)
  return cells.reshape(a.shape[0], batch, out)


def valid_cell_index(tscale: int) -> np.ndarray:
  """[T*T] int32: grid cell d*T+s -> its row among the V valid cells, or V."""
  dd, ss = np.nonzero(bm_valid_mask(tscale))
  index = np.full((tscale * tscale,), len(dd), np.int32)
  index[dd * tscale + ss] = np.arange(len(dd), dtype=np.int32)
  return index


@jax.custom_vjp
def _take_rows(rows, index, positions):
  del positions  # only for the backward
  return jnp.take(rows, index, axis=0)


def _take_rows_fwd(rows, index, positions):
  return _take_rows(rows, index, positions), (index, positions)


def _take_rows_bwd(res, ct):
  """Transpose of the take without a scatter: rows[v] for v < V is taken by
  exactly one grid cell (positions[v]), the last row by all the others."""
  index, positions = res
  invalid = (index == positions.shape[0])[:, None, None]
  rest = jnp.sum(jnp.where(invalid, ct, 0), axis=0, keepdims=True)
  return jnp.concatenate([jnp.take(ct, positions, axis=0), rest]), None, None


_take_rows.defvjp(_take_rows_fwd, _take_rows_bwd)


def grid_from_cells(rows, index):
  """rows [V+1, B, C] (valid cells, then the invalid-cell value) -> [B, T, T, C].

  `index` is `valid_cell_index(T)` (numpy); the backward gathers instead of
  scatter-adding.
  """
  tscale = math.isqrt(len(index))
  positions = np.nonzero(index < len(rows) - 1)[0].astype(np.int32)
  positions = positions[np.argsort(index[positions])]
  grid = _take_rows(rows, jnp.asarray(index), jnp.asarray(positions))
  return jnp.transpose(grid, (1, 0, 2)).reshape(
      rows.shape[1], tscale, tscale, rows.shape[2])
