"""Resampling variable-length snippet features [L, D] to T temporal bins.

Two published recipes, vectorised over bins, samples and channels:

`bsn_pool_features` follows BSN's ``poolData`` (wzmsltw/BSN-boundary-sensitive-
network, data/activitynet_feature_cuhk/data_process.py), the recipe behind the
cuhk ``csv_mean_100`` features that MMAction2's BMN/BSN configs read:
- snippet i (16 frames) sits at time x_i = st/2 + i*st seconds, st = 16/fps,
  fps = duration_frame/duration_second; features are linearly interpolated
  between snippet centres (scipy ``interp1d``, no extrapolation);
- bin t covers [t/T, (t+1)/T] * corrected_second, corrected_second =
  16*L/duration_frame*duration_second, clipped to [x_0 + 1e-4, x_{L-1} - 1e-4];
- the bin's feature is the mean (or max) of `num_sample_per_bin` evenly spaced
  samples from its clipped start to its clipped end, both included;
- a bin lying wholly before x_0 or after x_{L-1} is all zeros (short videos,
  L < T/2, get zero bins at both ends); a single snippet is repeated T times.

`mmaction2_pool_features` follows MMAction2's ``pool_feature``
(tools/data/activitynet/activitynet_feature_postprocessing.py), which works
in snippet-index units: the span [1e-4, L-1-1e-4] is cut into T equal anchors
and each anchor averages `num_sample_per_bin` samples starting at its left edge.

Both compute in float64, as the originals (pandas / pickle inputs) do.
"""

import numpy as np

from tal_jax import errors

# Margin, in seconds (BSN) or snippets (MMAction2), kept from the span's ends.
EPS = 1e-4


def _interp_linear(x: np.ndarray, y: np.ndarray, x_new: np.ndarray):
  """scipy interp1d(x, y, axis=0)(x_new), kind='linear', same arithmetic.

  Args:
    x: [L] increasing sample positions, L >= 2.
    y: [L, D] values.
    x_new: [...] query positions inside [x[0], x[-1]].

  Returns:
    [..., D] float64.
  """
  hi = np.clip(np.searchsorted(x, x_new), 1, len(x) - 1)
  lo = hi - 1
  slope = (y[hi] - y[lo]) / (x[hi] - x[lo])[..., None]
  return slope * (x_new - x[lo])[..., None] + y[lo]


def _pool(samples: np.ndarray, pool_type: str) -> np.ndarray:
  """[T, S, D] -> [T, D] by mean or max over the S samples of each bin."""
  if pool_type == 'mean':
    return samples.mean(axis=1)
  if pool_type == 'max':
    return samples.max(axis=1)
  raise errors.TalError(f"pool_type must be 'mean' or 'max', got {pool_type!r}")


def _check(data: np.ndarray, temporal_dim: int, num_sample_per_bin: int,
           min_samples: int) -> np.ndarray:
  """[L, D] float64 copy of `data`; TalError for bad shapes or sizes."""
  data = np.asarray(data, np.float64)
  if data.ndim != 2 or data.shape[0] < 1:
    raise errors.TalError(f'features must be [L, D] with L >= 1, got shape '
                          f'{data.shape}')
  if temporal_dim < 1 or num_sample_per_bin < min_samples:
    raise errors.TalError(
        f'temporal_dim must be >= 1 and num_sample_per_bin >= {min_samples}, '
        f'got {temporal_dim}, {num_sample_per_bin}')
  return data


def bsn_pool_features(data: np.ndarray, temporal_dim: int,
                      duration_second: float, duration_frame: float,
                      num_sample_per_bin: int = 3, pool_type: str = 'mean',
                      snippet_frames: int = 16) -> np.ndarray:
  """BSN's poolData with num_bin=1.

  Args:
    data: [L, D] snippet features, one row per `snippet_frames` frames.
    temporal_dim: T, the number of output bins.
    duration_second: video length in seconds (annotation field).
    duration_frame: video length in frames (annotation field).
    num_sample_per_bin: interpolated samples pooled per bin (>= 2).
    pool_type: 'mean' or 'max'.
    snippet_frames: frames per snippet (16 for the cuhk TSN features).

  Returns:
    [T, D] float64.
  """
  data = _check(data, temporal_dim, num_sample_per_bin, 2)
  length = data.shape[0]
  if length == 1:
    return np.repeat(data, temporal_dim, axis=0)
  fps = float(duration_frame) / duration_second
  st = snippet_frames / fps
  corrected_second = float(length * snippet_frames) / duration_frame * (
      duration_second)
  x = st / 2 + np.arange(length) * st
  anchor = 1.0 / temporal_dim
  xmin = np.maximum(x[0] + EPS,
                    anchor * np.arange(temporal_dim) * corrected_second)
  xmax = np.minimum(x[-1] - EPS,
                    anchor * np.arange(1, temporal_dim + 1) * corrected_second)
  plen = (xmax - xmin) / (num_sample_per_bin - 1)
  x_new = xmin[:, None] + plen[:, None] * np.arange(num_sample_per_bin)
  pooled = _pool(_interp_linear(x, data, x_new), pool_type)
  outside = (xmax < x[0]) | (xmin > x[-1])
  pooled[outside] = 0.0
  return pooled


def mmaction2_pool_features(data: np.ndarray, temporal_dim: int,
                            num_sample_per_bin: int = 3,
                            pool_type: str = 'mean') -> np.ndarray:
  """MMAction2's pool_feature (snippet-index units).

  Args:
    data: [L, D] snippet features.
    temporal_dim: T, the number of output bins ('num_proposals').
    num_sample_per_bin: samples pooled per bin ('num_sample_bins').
    pool_type: 'mean' or 'max'.

  Returns:
    [T, D] float64.
  """
  data = _check(data, temporal_dim, num_sample_per_bin, 1)
  length = data.shape[0]
  if length == 1:
    return np.repeat(data, temporal_dim, axis=0)
  start, end = EPS, length - 1 - EPS
  anchor_size = (end - start) / temporal_dim
  # The original advances `ptr += anchor_size`; cumsum adds in the same order.
  ptr = np.cumsum(np.r_[start, np.full(temporal_dim - 1, anchor_size)])
  offsets = np.arange(num_sample_per_bin) / num_sample_per_bin * anchor_size
  x_new = ptr[:, None] + offsets
  x = np.arange(length, dtype=np.float64)
  return _pool(_interp_linear(x, data, x_new), pool_type)
