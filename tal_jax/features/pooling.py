"""Post-processing of MMAction2's
`tools/data/activitynet/activitynet_feature_postprocessing.py`.

`pool_feature`: features of any length L (one row per clip) become 100 rows:
with eps = 1e-4 the span [eps, L - 1 - eps] is cut into 100 anchors of width
a = (L - 1 - 2 eps) / 100; row k is the mean of the piecewise-linear
interpolation (scipy interp1d, linear) at ptr_k + i / 3 * a, i = 0, 1, 2,
where ptr advances by a from eps (accumulated, as upstream). A single row is
repeated 100 times. RGB and flow are pooled separately and concatenated
([100, D_rgb + D_flow]); the CSV has a header `f0,...,f{399}` (upstream
always writes 400 names), rows of `{:.4f}` values, lines joined by '\\n'
without a final newline.
"""

import numpy as np

from tal_jax import errors

NUM_BINS = 100
NUM_SAMPLE_BINS = 3
EPS = 1e-4
CSV_HEADER_COLUMNS = 400


def _sample_points(length: int, num_bins: int, num_sample_bins: int
                   ) -> np.ndarray:
  """[num_bins, num_sample_bins] float64 positions, upstream's accumulation."""
  start, end = EPS, length - 1 - EPS
  anchor = (end - start) / num_bins
  points = np.empty((num_bins, num_sample_bins))
  ptr = start
  for k in range(num_bins):
    points[k] = [ptr + i / num_sample_bins * anchor
                 for i in range(num_sample_bins)]
    ptr += anchor
  return points


def _interp(data: np.ndarray, x: np.ndarray) -> np.ndarray:
  """Linear interpolation of rows data [L, D] at positions x [...] in
  [0, L - 1] -> [..., D] float64 (scipy interp1d's formula: slope times
  offset from the left knot)."""
  lo = np.clip(np.searchsorted(np.arange(len(data)), x, side='left') - 1, 0,
               len(data) - 2)
  y0, y1 = data[lo], data[lo + 1]
  slope = (y1 - y0)  # knots are 1 apart
  return slope * (x - lo)[..., None] + y0


def pool_feature(data, num_bins: int = NUM_BINS,
                 num_sample_bins: int = NUM_SAMPLE_BINS,
                 pool_type: str = 'mean') -> np.ndarray:
  """[L, D] features -> [num_bins, D] float64 (see the module docstring)."""
  data = np.asarray(data, np.float64)
  if data.ndim != 2 or not len(data):
    raise errors.TalError(f'pool_feature needs [L > 0, D] features, got '
                          f'shape {data.shape}')
  if len(data) == 1:
    return np.concatenate([data] * num_bins)
  y = _interp(data, _sample_points(len(data), num_bins, num_sample_bins))
  if pool_type == 'mean':
    return y.mean(axis=1)
  if pool_type == 'max':
    return y.max(axis=1)
  raise errors.TalError(f'pool_type {pool_type!r} is not mean or max')


def merge_streams(rgb: np.ndarray, flow: np.ndarray | None) -> np.ndarray:
  """Pooled RGB [100, Dr] (+ flow [100, Df]) -> [100, Dr + Df] float64."""
  pooled = [pool_feature(rgb)]
  if flow is not None:
    pooled.append(pool_feature(flow))
  return np.concatenate(pooled, axis=-1)


def csv_text(feat: np.ndarray) -> str:
  """Upstream's CSV text of [100, D] features (header of 400 names)."""
  lines = [','.join(f'f{i}' for i in range(CSV_HEADER_COLUMNS))]
  lines += [','.join(f'{x:.4f}' for x in row) for row in feat.tolist()]
  return '\n'.join(lines)
