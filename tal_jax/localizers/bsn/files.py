"""MMAction2 1.2.0's BSN intermediate files, byte-compatible.

  <tem_results_dir>/<video>.csv    header 'action,start,end,tmin,tmax', T rows
  <pgm_proposals_dir>/<video>.csv  header 'tmin,tmax,tmin_score,tmax_score,
                                   score,match_iou,match_ioa', P rows
  <pgm_features_dir>/<video>.npy   [P, 32] float64 BSP features (np.save)

MMAction2 writes the CSVs with `np.savetxt(..., delimiter=',', comments='')`
(each value '%.18e', an exact float64 round trip) and reads all three back as
float32 (`np.loadtxt(dtype=np.float32)`, `np.load(...).astype(np.float32)`);
the readers here return the same float32 arrays. Writes are atomic; a missing
or malformed file raises TalError naming it.
"""

import os
import warnings

import numpy as np

from tal_jax.errors import TalError, atomic_path
from tal_jax.localizers.bsn import targets as bsn_targets

TEM_HEADER = 'action,start,end,tmin,tmax'
PGM_HEADER = 'tmin,tmax,tmin_score,tmax_score,score,match_iou,match_ioa'


def _write_csv(path: str, header: str, rows) -> None:
  """Atomic `np.savetxt(path, rows, header=header, delimiter=',',
  comments='')`, same bytes."""
  rows = np.asarray(rows, np.float64)
  ncol = len(header.split(','))
  if rows.ndim != 2 or rows.shape[1] != ncol:
    raise ValueError(f'{path}: expected [rows, {ncol}], got {rows.shape}')
  # One %-format over all values: the bytes of np.savetxt's per-row loop.
  row_fmt = ','.join(['%.18e'] * ncol) + '\n'
  values = tuple(rows.ravel().tolist())
  text = header + '\n' + (row_fmt * rows.shape[0]) % values
  with atomic_path(path, '.csv') as tmp:
    with open(tmp, 'w') as f:
      f.write(text)


def _read_csv(path: str, header: str) -> np.ndarray:
  """Rows of an MMAction2 CSV as float32 [R, ncol]; TalError if malformed."""
  ncol = len(header.split(','))
  try:
    with open(path) as f:
      first = f.readline().strip()
      if first != header:
        raise TalError(f'{path}: expected header {header!r}, got {first!r}')
      with warnings.catch_warnings():  # an empty file is reported below
        warnings.simplefilter('ignore', UserWarning)
        rows = np.loadtxt(f, dtype=np.float32, delimiter=',', ndmin=2)
  except OSError as e:
    raise TalError(f'{path}: cannot read ({e.strerror})') from None
  except ValueError as e:
    reason = str(e).splitlines()[0]
    raise TalError(f'{path}: malformed CSV ({reason})') from None
  if rows.shape[0] == 0 or rows.shape[1] != ncol:
    raise TalError(f'{path}: expected rows of {ncol} values, got shape '
                   f'{rows.shape}')
  if not np.all(np.isfinite(rows)):
    row, col = (int(i) for i in np.argwhere(~np.isfinite(rows))[0])
    raise TalError(f'{path}: {rows[row, col]} value in column '
                   f'{header.split(",")[col]!r} of line {row + 2}')
  return rows


def write_tem_result(path: str, tem_output, tmin=None, tmax=None) -> None:
  """Writes one video's TEM result CSV as MMAction2's `ANetMetric` dumps it.

  Args:
    path: <tem_results_dir>/<video_name>.csv.
    tem_output: [T, 3] float32 (action, start, end).
    tmin, tmax: [T] anchors; default i/T and (i+1)/T in float64, as
      MMAction2's `TEM.predict` (`bsn_targets.tem_anchors`).
  """
  out = np.asarray(tem_output, np.float32)
  if tmin is None or tmax is None:
    tmin, tmax = bsn_targets.tem_anchors(out.shape[0])
  rows = np.concatenate([out[:, :3].astype(np.float64),
                         np.stack([tmin, tmax], axis=1)], axis=1)
  _write_csv(path, TEM_HEADER, rows)


def _check_order(path: str, rows: np.ndarray, header: str) -> None:
  """TalError naming the line whose first two columns (tmin, tmax) are
  reversed."""
  bad = np.flatnonzero(rows[:, 1] < rows[:, 0])
  if bad.size:
    names = header.split(',')
    raise TalError(f'{path}: line {int(bad[0]) + 2}: {names[1]} '
                   f'{rows[bad[0], 1]} < {names[0]} {rows[bad[0], 0]} '
                   '(reversed segment)')


def read_tem_result(path: str) -> np.ndarray:
  """TEM result CSV -> [T, 5] float32 (action, start, end, tmin, tmax).

  TalError for fewer than 2 rows, a probability (action, start, end) outside
  [0, 1] or a row with tmax < tmin."""
  rows = _read_csv(path, TEM_HEADER)
  if rows.shape[0] < 2:
    raise TalError(f'{path}: a TEM result needs at least 2 rows')
  outside = (rows[:, :3] < 0) | (rows[:, :3] > 1)
  if outside.any():
    row, col = (int(i) for i in np.argwhere(outside)[0])
    raise TalError(f'{path}: line {row + 2}: {TEM_HEADER.split(",")[col]} '
                   f'{rows[row, col]} is not a probability in [0, 1]')
  _check_order(path, rows[:, 3:], 'tmin,tmax')
  return rows


def write_pgm_proposals(path: str, proposals) -> None:
  """Writes one video's PGM proposals [P, 7] float64 as MMAction2 does."""
  _write_csv(path, PGM_HEADER, proposals)


def read_pgm_proposals(path: str, top_k: int | None = None) -> np.ndarray:
  """PGM proposal CSV -> [min(P, top_k), 7] float32 (as `LoadProposals`)."""
  rows = _read_csv(path, PGM_HEADER)
  _check_order(path, rows, PGM_HEADER)
  return rows[:top_k] if top_k is not None else rows


def write_bsp_feature(path: str, bsp_feature) -> None:
  """Writes one video's BSP features [P, 32] as a float64 .npy (np.save)."""
  feature = np.asarray(bsp_feature, np.float64)
  if feature.ndim != 2:
    raise ValueError(f'{path}: expected [P, D] features, got {feature.shape}')
  with atomic_path(path, '.npy') as tmp:
    with open(tmp, 'wb') as f:
      np.save(f, feature)


def read_bsp_feature(path: str, top_k: int | None = None) -> np.ndarray:
  """BSP feature .npy -> [min(P, top_k), D] float32 (as `LoadProposals`)."""
  if not os.path.isfile(path):
    raise TalError(f'{path}: BSP feature file not found')
  try:
    feature = np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError) as e:
    raise TalError(f'{path}: not a readable .npy file ({e})') from None
  if feature.ndim != 2 or not np.issubdtype(feature.dtype, np.floating):
    raise TalError(f'{path}: expected a 2-d float array, got '
                   f'{feature.dtype} {feature.shape}')
  if not np.all(np.isfinite(feature)):
    row = int(np.argwhere(~np.isfinite(feature))[0, 0])
    raise TalError(f'{path}: NaN or inf in BSP feature row {row} (0-based)')
  feature = feature.astype(np.float32)
  return feature[:top_k] if top_k is not None else feature


def video_path(directory: str, video_name: str, ext: str) -> str:
  """<directory>/<video_name><ext>, MMAction2's per-video file naming."""
  return os.path.join(directory, video_name + ext)
