"""ActivityNet data exactly as MMAction2 reads it, and the packed split format.

MMAction2 (``LoadLocalizationFeature``) reads one CSV per video, ``v_<id>.csv``:
a header row, then T rows (100 for the cuhk features) of D columns (400: 200 RGB
+ 200 flow TSN class scores), and transposes it to [D, T]. tal_jax keeps the
channels-last layout [T, D]. A folder of ``.npy`` files of shape [T, D] works too.

Annotation files (``anet_anno_{train,val,test,full}.json``) map ``v_<id>`` to
``{duration_second, duration_frame, feature_frame, annotations: [{segment: [s, e],
label}]}`` with segments in seconds.

Annotation rules (documented decisions):
- ``end < start``, a negative start, or a start at/after ``duration_second`` is an
  error naming the file and video.
- A segment ending after ``duration_second`` is kept (the real annotations have 215);
  targets clip it to the feature span, as MMAction2 does.
- A zero-length segment is kept (the real annotations have 12); its IoU with any
  proposal is 0, exactly as in MMAction2.

A packed split is a folder with ``features.npy`` [N, T, D] float32 (memory-mapped
on load) and ``videos.json`` (names, sorted, and their annotation records), so a
training run parses text once, not every epoch.
"""

import dataclasses
import json
import math
import os
import shutil
import warnings
from concurrent import futures
from typing import Any, Sequence

import numpy as np

from tal_jax import errors

REQUIRED_FIELDS = ('duration_second', 'duration_frame', 'feature_frame',
                   'annotations')


@dataclasses.dataclass
class VideoSet:
  """A split in memory.

  Attributes:
    names: N video names as in the annotation file ('v_<id>').
    features: [N, T, D] float32 (possibly a read-only memory map).
    records: N annotation records (dicts with REQUIRED_FIELDS).
  """
  names: list[str]
  features: np.ndarray
  records: list[dict[str, Any]]

  def __len__(self) -> int:
    return len(self.names)

  def field(self, key: str, dtype=np.float64) -> np.ndarray:
    """[N] array of one scalar annotation field, e.g. 'duration_second'."""
    return np.asarray([r[key] for r in self.records], dtype)

  def gt_segments(self) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth in seconds, padded: ([N, G, 2] float64, [N, G] bool)."""
    counts = [len(r['annotations']) for r in self.records]
    g = max([1] + counts)
    seg = np.zeros((len(self), g, 2), np.float64)
    mask = np.zeros((len(self), g), bool)
    for i, r in enumerate(self.records):
      for j, a in enumerate(r['annotations']):
        seg[i, j] = a['segment']
        mask[i, j] = True
    return seg, mask


def _check_record(path: str, name: str, rec: Any) -> None:
  """Raises TalError for a malformed annotation record."""
  if not isinstance(rec, dict):
    raise errors.TalError(f'{path}: video {name}: record is not an object')
  for key in REQUIRED_FIELDS:
    if key not in rec:
      raise errors.TalError(f"{path}: video {name}: missing field '{key}'")
  duration = rec['duration_second']
  if (not isinstance(duration, (int, float)) or not duration > 0 or
      not math.isfinite(duration)):
    raise errors.TalError(
        f'{path}: video {name}: duration_second must be > 0, got {duration!r}')
  for k in ('duration_frame', 'feature_frame'):
    if (not isinstance(rec[k], (int, float)) or not rec[k] > 0 or
        not math.isfinite(rec[k])):
      raise errors.TalError(
          f'{path}: video {name}: {k} must be > 0, got {rec[k]!r}')
  if not isinstance(rec['annotations'], list):
    raise errors.TalError(f'{path}: video {name}: annotations is not a list')
  for a in rec['annotations']:
    seg = a.get('segment') if isinstance(a, dict) else None
    if (not isinstance(seg, (list, tuple)) or len(seg) != 2 or
        not all(isinstance(v, (int, float)) and math.isfinite(v)
                for v in seg)):
      raise errors.TalError(
          f'{path}: video {name}: segment must be [start, end], got {seg!r}')
    start, end = seg
    if end < start:
      raise errors.TalError(
          f'{path}: video {name}: segment {list(seg)} ends before it starts')
    if start < 0 or start >= duration:
      raise errors.TalError(
          f'{path}: video {name}: segment {list(seg)} lies outside the video '
          f'(duration_second {duration})')


def load_annotations(path: str) -> dict[str, dict[str, Any]]:
  """Reads and validates an MMAction2 annotation JSON; returns {name: record}."""
  if not os.path.isfile(path):
    raise errors.TalError(f'annotation file not found: {path}')
  try:
    with open(path) as f:
      data = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise errors.TalError(f'{path}: not valid JSON ({e})') from None
  if not isinstance(data, dict):
    raise errors.TalError(f'{path}: expected an object mapping video names '
                          'to records')
  for name, rec in data.items():
    _check_record(path, name, rec)
  return data


def feature_path(feature_dir: str, name: str) -> str:
  """The feature file of video `name` ('v_<id>.csv', '<id>.csv' or '.npy')."""
  bare = name[2:] if name.startswith('v_') else name
  for stem in (name, 'v_' + bare, bare):
    for ext in ('.csv', '.npy'):
      p = os.path.join(feature_dir, stem + ext)
      if os.path.isfile(p):
        return p
  raise errors.TalError(
      f'video {name}: no feature file {name}.csv or {name}.npy in {feature_dir}')


def _parse_csv(path: str, dtype=np.float32) -> np.ndarray:
  """Parses a feature CSV (header row + numeric rows) into [T, D] `dtype`."""
  try:
    with open(path) as f:
      lines = f.read().splitlines()
  except OSError as e:
    raise errors.TalError(f'{path}: cannot read ({e.strerror})') from None
  except UnicodeDecodeError:
    raise errors.TalError(f'{path}: not a text CSV file') from None
  rows = [ln for ln in lines[1:] if ln.strip()]
  if not rows:
    raise errors.TalError(f'{path}: no feature rows after the header')
  width = rows[0].count(',') + 1
  for i, ln in enumerate(rows):
    if ln.count(',') + 1 != width:
      raise errors.TalError(f'{path}: row {i + 2} has {ln.count(",") + 1} '
                            f'columns, row 2 has {width}')
  values = ','.join(rows).split(',')
  try:
    flat = np.array(values, dtype=dtype)
  except (ValueError, TypeError, OverflowError):
    bad = next((v for v in values if not _is_number(v)), '?')
    raise errors.TalError(f'{path}: non-numeric value {bad[:40]!r}') from None
  return flat.reshape(len(rows), width)


def _is_number(text: str) -> bool:
  try:
    np.array([text], dtype=np.float64)
    return True
  except (ValueError, TypeError, OverflowError):
    return False


def read_feature_array(path: str, dtype=np.float32) -> np.ndarray:
  """Reads one feature file of any length: [L, D] `dtype`, finite values.

  Args:
    path: a CSV (header + L rows of D values) or a .npy of shape [L, D].
    dtype: float32 (what the models read) or float64 (resampling input).
  """
  if path.endswith('.npy'):
    try:
      x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
      msg = str(e).splitlines()[0] if str(e) else type(e).__name__
      raise errors.TalError(f'{path}: cannot read .npy ({msg})') from None
    if not (np.issubdtype(x.dtype, np.integer) or
            np.issubdtype(x.dtype, np.floating)):
      raise errors.TalError(f'{path}: non-numeric dtype {x.dtype}')
    if x.ndim != 2:
      raise errors.TalError(f'{path}: expected a 2-d array, got shape '
                            f'{x.shape}')
    x = x.astype(dtype)
  else:
    x = _parse_csv(path, dtype)
  if not np.all(np.isfinite(x)):
    row, col = (int(i) for i in np.argwhere(~np.isfinite(x))[0])
    where = (f'row {row}, column {col} (0-based)' if path.endswith('.npy')
             else f'line {row + 2}, column {col + 1}')
    raise errors.TalError(f'{path}: {x[row, col]} value in {where}')
  return x


def read_features(path: str, temporal_dim: int, feat_dim: int) -> np.ndarray:
  """Reads one video's features, checking shape and values.

  Args:
    path: a CSV (header + T rows of D values) or a .npy of shape [T, D].
    temporal_dim: expected T.
    feat_dim: expected D.

  Returns:
    [T, D] float32.
  """
  x = read_feature_array(path)
  if x.shape != (temporal_dim, feat_dim):
    raise errors.TalError(
        f'{path}: features have shape {x.shape[0]} rows x {x.shape[1]} '
        f'columns, expected {temporal_dim} x {feat_dim}')
  return x


def write_features_csv(path: str, features: np.ndarray,
                       significant_digits: int = 6) -> None:
  """Writes [T, D] features as an MMAction2 CSV (header + T rows), atomically.

  9 significant digits round-trip float32 exactly; the default 6 is smaller.
  """
  _, d = features.shape
  header = ','.join(f'f{i}' for i in range(d))
  fmt = f'.{significant_digits}g'
  body = '\n'.join(','.join(format(float(v), fmt) for v in row)
                   for row in features)
  errors.write_text(path, header + '\n' + body + '\n')


def _read_one(args) -> tuple[str, np.ndarray | None, str | None]:
  name, feature_dir, t, d = args
  try:
    return name, read_features(feature_path(feature_dir, name), t, d), None
  except errors.TalError as e:
    return name, None, str(e)


def pack_split(feature_dir: str, ann_file: str, out_dir: str,
               temporal_dim: int, feat_dim: int, skip_bad_videos: bool = False,
               progress: bool = False) -> VideoSet:
  """Reads every video of `ann_file` once and writes a packed split to `out_dir`.

  The folder appears only when complete (written beside it, then renamed).
  With `skip_bad_videos`, a video whose features are missing or malformed is
  left out and counted in a warning; otherwise its error stops the packing.
  """
  records = load_annotations(ann_file)
  names = sorted(records)
  jobs = [(n, feature_dir, temporal_dim, feat_dim) for n in names]
  kept, feats, bad = [], [], []
  with futures.ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as ex:
    results = ex.map(_read_one, jobs, chunksize=16)
    if progress:
      from tqdm import tqdm  # pylint: disable=g-import-not-at-top
      results = tqdm(results, total=len(jobs), desc=f'packing {ann_file}')
    for name, x, err in results:
      if err is not None:
        if not skip_bad_videos:
          raise errors.TalError(err)
        bad.append(err)
        continue
      kept.append(name)
      feats.append(x)
  if bad:
    warnings.warn(f'skipped {len(bad)} of {len(names)} videos with bad '
                  f'features; first: {bad[0]}')
  if not kept:
    raise errors.TalError(f'{ann_file}: no video with usable features')
  features = np.stack(feats)
  bad_names = sorted(set(names) - set(kept))
  meta = {'skipped_stamps': {n: feature_stamp(feature_dir, n)
                             for n in bad_names},
          'names': kept, 'records': [records[n] for n in kept],
          'temporal_dim': temporal_dim, 'feat_dim': feat_dim,
          'feature_dir': os.path.abspath(feature_dir),
          'ann_file': os.path.abspath(ann_file), 'skipped': bad}
  _write_packed(out_dir, features, meta)
  return VideoSet(kept, features, meta['records'])


def _write_packed(out_dir: str, features: np.ndarray, meta: dict) -> None:
  parent = os.path.dirname(os.path.abspath(out_dir))
  os.makedirs(parent, exist_ok=True)
  tmp = os.path.abspath(out_dir) + f'.tmp{os.getpid()}'
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  try:
    np.save(os.path.join(tmp, 'features.npy'), features.astype(np.float32))
    with open(os.path.join(tmp, 'videos.json'), 'w') as f:
      json.dump(meta, f)
    if os.path.isdir(out_dir):
      shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def load_packed(packed_dir: str, mmap: bool = True) -> VideoSet:
  """Loads a packed split; features are memory-mapped unless `mmap` is False."""
  meta_path = os.path.join(packed_dir, 'videos.json')
  feat_path = os.path.join(packed_dir, 'features.npy')
  if not (os.path.isfile(meta_path) and os.path.isfile(feat_path)):
    raise errors.TalError(f'{packed_dir}: not a packed split '
                          '(needs features.npy and videos.json)')
  delete = f'; delete {packed_dir} to pack the split again'
  try:
    with open(meta_path) as f:
      meta = json.load(f)
    names, records = list(meta['names']), list(meta['records'])
  except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
    raise errors.TalError(f'{meta_path}: damaged cache file '
                          f'({errors.one_line(str(e), 100)}){delete}') from None
  try:
    features = np.load(feat_path, mmap_mode='r' if mmap else None)
  except (ValueError, OSError, EOFError) as e:
    raise errors.TalError(f'{feat_path}: damaged cache file '
                          f'({errors.one_line(str(e), 100)}){delete}') from None
  if features.ndim != 3 or features.shape[0] != len(names):
    raise errors.TalError(f'{packed_dir}: features.npy has shape '
                          f'{features.shape}, videos.json {len(names)} '
                          f'videos{delete}')
  return VideoSet(names, features, records)


def feature_stamp(feature_dir: str, name: str) -> list[int] | None:
  """[size, mtime_ns] of a video's feature file; None when it has none."""
  try:
    st = os.stat(feature_path(feature_dir, name))
  except (errors.TalError, OSError):
    return None
  return [st.st_size, st.st_mtime_ns]


def skipped_files_changed(packed_dir: str, feature_dir: str) -> bool:
  """Whether a video a packed split left out (skip_bad_videos) has had its
  feature file added or changed since: the cache is stale then."""
  try:
    with open(os.path.join(packed_dir, 'videos.json')) as f:
      meta = json.load(f)
  except (OSError, ValueError):
    return False  # load_packed names the damage
  if not meta.get('skipped'):
    return False
  stamps = meta.get('skipped_stamps')
  if not isinstance(stamps, dict):
    return True  # packed before the stamps were kept
  return any(feature_stamp(feature_dir, n) != s for n, s in stamps.items())


def packed_cache_dir(cache_dir: str, feature_dir: str, ann_file: str,
                     temporal_dim: int, feat_dim: int) -> str:
  """Cache folder of a packed split.

  It changes when the annotation file changes (size or mtime) or when files
  are added to, removed from or renamed in `feature_dir` (its mtime); editing a
  feature file in place is not noticed.
  """
  import hashlib  # pylint: disable=g-import-not-at-top
  st = os.stat(ann_file)
  dir_mtime = os.stat(feature_dir).st_mtime_ns if os.path.isdir(
      feature_dir) else 0
  key = '|'.join(map(str, (os.path.abspath(feature_dir),
                           os.path.abspath(ann_file), st.st_size,
                           st.st_mtime_ns, temporal_dim, feat_dim, dir_mtime)))
  digest = hashlib.sha1(key.encode()).hexdigest()[:16]
  stem = os.path.splitext(os.path.basename(ann_file))[0]
  return os.path.join(os.path.expanduser(cache_dir), 'packed',
                      f'{stem}-{digest}')


def _skipped_videos(packed_dir: str) -> list[str]:
  """The errors of the videos a packed split left out (skip_bad_videos)."""
  try:
    with open(os.path.join(packed_dir, 'videos.json')) as f:
      return json.load(f).get('skipped', [])
  except (OSError, ValueError):
    return []


def load_split(feature_dir: str, ann_file: str, cache_dir: str,
               temporal_dim: int, feat_dim: int, skip_bad_videos: bool = False,
               progress: bool = False) -> VideoSet:
  """A split as a VideoSet, packing it into the cache on first use."""
  if not os.path.isdir(feature_dir):
    raise errors.TalError(f'feature folder not found: {feature_dir}')
  if not os.path.isfile(ann_file):
    raise errors.TalError(f'annotation file not found: {ann_file}')
  packed = packed_cache_dir(cache_dir, feature_dir, ann_file, temporal_dim,
                            feat_dim)
  if os.path.isdir(packed) and not skipped_files_changed(packed, feature_dir):
    skipped = _skipped_videos(packed)
    if skipped and not skip_bad_videos:
      raise errors.TalError(f'{packed} was packed with skip_bad_videos and '
                            f'left out {len(skipped)} videos; first: '
                            f'{skipped[0]}')
    return load_packed(packed)
  pack_split(feature_dir, ann_file, packed, temporal_dim, feat_dim,
             skip_bad_videos, progress)
  return load_packed(packed)


def subset(videos: VideoSet, names: Sequence[str]) -> VideoSet:
  """The videos of `names`, in that order."""
  index = {n: i for i, n in enumerate(videos.names)}
  idx = [index[n] for n in names]
  return VideoSet(list(names), np.asarray(videos.features[idx]),
                  [videos.records[i] for i in idx])
