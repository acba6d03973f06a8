"""THUMOS14 for BMN/BSN: per-video snippet features cut into sliding windows.

As OpenTAD's BMN THUMOS14 configs (`configs/bmn/thumos_{tsn,i3d}.py` on
`ThumosSlidingDataset`): each video's snippet features [L, D] are cut into
windows of `config.data.window_size` snippets (128) stepping by half a
window (`window_overlap_ratio` 0.5; `tal_jax.ops.windows.window_bounds`).
Training (and validation) keeps only windows holding more than `ioa_thresh`
(0.9) of some action; its labels are the gts cut to the window, in snippets
from the window's start. The test split keeps every window. Each window is
one item of the VideoSet the engine trains on: features [N, window_size, D]
and a record whose 'duration_second' = 'duration_frame' = 'feature_frame' =
window_size, annotations in snippets (so the BMN/BSN labels of the window
are OpenTAD's gt / tscale), and under 'window' where it came from (video,
first snippet, first frame, fps, duration, snippet stride, offset) and the
video's own ground truth in seconds ('video_annotations').

Real data (any `config.data.feature_dir` / `ann_file_*` set): OpenTAD's
layout. `ann_file_*`: OpenTAD's `thumos_14_anno.json`
({"database": {video: {subset, duration, frame, annotations: [{segment,
label}]}}}; `subset_{train,val,test}` pick its subsets: OpenTAD calls the
THUMOS14 validation videos 'training' and the test videos 'validation');
`feature_dir/<video>.npy`: [rows, D] features, one row per `feature_stride`
frames, of which every `sample_stride`-th is a snippet (TSN: 1 and 5, I3D:
4 and 1); `offset_frames` shifts snippet frames (I3D: 8); `block_list`: a
file of video names to skip (OpenTAD's missing_files.txt).

Embedded default (no data path): the real THUMOS14 ground truth shipped for
SSN (`embedded/thumos14_subset.json.gz`: validation videos train, test
videos test), frames = int(duration * frame_rate), with synthetic snippet
features (`thumos14.video_features` at the snippet rate: class prototype
and an actionness direction inside each action), generated in memory.
"""

import json
import math
import os
from typing import Any

import ml_collections
import numpy as np

from tal_jax import errors
from tal_jax.data import activitynet
from tal_jax.data import thumos14
from tal_jax.ops import windows

DATASET = 'thumos14_windows'


def is_windowed(config) -> bool:
  """Whether config.data reads THUMOS14 sliding windows."""
  return config.data.get('dataset') == DATASET


def video_gt_frames(record: dict[str, Any], class_names) -> tuple:
  """OpenTAD's `ThumosSlidingDataset.get_gt`: ([G, 2] float32 frames,
  [G] int labels) of one {duration, frame, annotations} record, Ambiguous
  left out, frames int(second / duration * frame), exact repeats of
  (segment, label) dropped."""
  seen, segs, labels = set(), [], []
  for a in record['annotations']:
    if a['label'] == 'Ambiguous':
      continue
    s = int(float(a['segment'][0]) / record['duration'] * record['frame'])
    e = int(float(a['segment'][1]) / record['duration'] * record['frame'])
    key = (s, e, a['label'])
    if key not in seen:
      seen.add(key)
      segs.append((s, e))
      labels.append(class_names.index(a['label']))
  return (np.asarray(segs, np.float32).reshape(-1, 2),
          np.asarray(labels, np.int64))


def split_video(record: dict[str, Any], setting: dict[str, Any],
                class_names, with_labels: bool) -> list[dict[str, Any]]:
  """The windows of one video: [{start, end, first_frame, segments [G', 2]
  snippets, labels [G']}] (segments empty for test windows).

  setting: snippet_stride, offset_frames, window_size, overlap, ioa_thresh.
  """
  stride = setting['snippet_stride']
  bounds = windows.window_bounds(record['frame'], stride,
                                 setting['window_size'], setting['overlap'])
  gt, labels = video_gt_frames(record, class_names)
  out = []
  for start, end in bounds:
    first, last = int(start) * stride, (int(end) - 1) * stride
    item = {'start': int(start), 'end': int(end), 'first_frame': first,
            'segments': np.zeros((0, 2), np.float32),
            'labels': np.zeros((0,), np.int64)}
    if with_labels:
      cut = windows.window_labels(gt, labels, first, last, stride,
                                  setting['offset_frames'],
                                  setting['ioa_thresh'])
      if cut is None:
        continue
      item['segments'], item['labels'] = cut
    out.append(item)
  return out


def window_info(name, record, item, setting) -> dict[str, Any]:
  """Where one `split_video` window of video `name` sits in it: what
  `window_test.window_seconds` needs to map its proposals to seconds."""
  fps = (setting['fps'] if setting['fps'] > 0 else
         record['frame'] / record['duration'])
  return {'video': name, 'start': item['start'], 'end': item['end'],
          'first_frame': item['first_frame'], 'fps': float(fps),
          'duration': float(record['duration']),
          'snippet_stride': setting['snippet_stride'],
          'offset_frames': setting['offset_frames']}


def _window_record(name, record, item, setting, class_names):
  w = setting['window_size']
  return {'duration_second': float(w), 'duration_frame': w,
          'feature_frame': w,
          'annotations': [{'segment': [float(s), float(e)],
                           'label': class_names[int(c)]}
                          for (s, e), c in zip(item['segments'],
                                               item['labels'])],
          'window': window_info(name, record, item, setting),
          'video_annotations': [a for a in record['annotations']
                                if a['label'] != 'Ambiguous']}


def window_set(videos: dict[str, dict[str, Any]], features, setting,
               class_names, with_labels: bool) -> activitynet.VideoSet:
  """Windows of `videos` ({name: {duration, frame, annotations}}) as a
  VideoSet: features [N, window_size, D] float32 (zero-padded), records as
  the module docstring says. `features(name)` -> the video's [L, D]
  snippet features; None: no features ([N, window_size, 0])."""
  names, feats, records = [], [], []
  for name in sorted(videos):
    rec = videos[name]
    items = split_video(rec, setting, class_names, with_labels)
    if not items:
      continue
    video_feats = (features(name) if features else
                   np.zeros((max(i['end'] for i in items), 0), np.float32))
    for item in items:
      names.append(f"{name}@{item['start']}")
      feats.append(windows.window_features(
          video_feats, item['start'], item['end'],
          setting['window_size'])[0])
      records.append(_window_record(name, rec, item, setting, class_names))
  if not names:
    raise errors.TalError('THUMOS14 windows: no window holds a complete '
                          'action (check ann_file and ioa_thresh)')
  return activitynet.VideoSet(names, np.stack(feats), records)


def check_data_config(data: ml_collections.ConfigDict) -> None:
  """TalError naming a window field of config.data out of range: strides
  and window_size >= 1, overlaps in [0, 1) leaving a step of >= 1 snippet,
  ioa_thresh in [0, 1], fps > 0 or -1, test_windows 'test' or 'full'."""
  for key in ('feature_stride', 'sample_stride', 'window_size'):
    if not (float(data[key]) >= 1 and float(data[key]) == int(data[key])):
      raise errors.TalError(f'config.data.{key}={data[key]!r} must be an '
                            'integer >= 1')
  for key in ('window_overlap_ratio', 'test_window_overlap_ratio'):
    ratio = float(data[key])
    if not 0 <= ratio < 1 or int(data.window_size * (1 - ratio)) < 1:
      raise errors.TalError(
          f'config.data.{key}={data[key]!r} must be in [0, 1) and leave a '
          f'step int(window_size * (1 - ratio)) >= 1 (window_size '
          f'{data.window_size})')
  if not 0 <= float(data.ioa_thresh) <= 1:
    raise errors.TalError(f'config.data.ioa_thresh={data.ioa_thresh!r} must '
                          'be in [0, 1]')
  if not (float(data.fps) > 0 or float(data.fps) == -1):
    raise errors.TalError(f'config.data.fps={data.fps!r} must be > 0, or -1 '
                          "(each video's frame / duration)")
  if data.test_windows not in ('test', 'full'):
    raise errors.TalError(f'config.data.test_windows={data.test_windows!r} '
                          "must be 'test' or 'full'")


def setting_of(config, split: str) -> dict[str, Any]:
  """Window setting of a split from config.data (checked:
  `check_data_config`)."""
  d = config.data
  check_data_config(d)
  return {'snippet_stride': int(d.feature_stride * d.sample_stride),
          'offset_frames': int(d.offset_frames),
          'window_size': int(d.window_size),
          'overlap': float(d.test_window_overlap_ratio if split == 'test'
                           else d.window_overlap_ratio),
          'ioa_thresh': float(d.ioa_thresh), 'fps': float(d.fps)}


# --------------------------------------------------------------- config


def add_data_fields(data: ml_collections.ConfigDict) -> None:
  """Makes `data` (pipeline.data_config()) the config.data of the THUMOS14
  window configs (configs/*_thumos14.py), with OpenTAD's values
  (configs/bmn/thumos_tsn.py and its dataset file)."""
  data.dataset = 'thumos14_windows'
  # OpenTAD thumos_14_anno.json subsets: 'training' holds the THUMOS14
  # validation videos, 'validation' the test videos (features_tsn_sw.py:
  # train subset_name="training", val and test "validation").
  data.subset_train = 'training'
  data.subset_val = 'validation'
  data.subset_test = 'validation'
  # Videos to skip (features_tsn_sw.py: block_list = missing_files.txt).
  data.block_list = ''
  # Frames per feature row, rows per snippet, frame of row 0 (thumos_tsn.py:
  # feature_stride=1, sample_stride=5; thumos_i3d.py: 4, 1, offset_frames=8).
  data.feature_stride = 1
  data.sample_stride = 5
  data.offset_frames = 0
  # Snippets per window; overlap of train/val and test windows; a train/val
  # window is kept when it holds more than ioa_thresh of an action
  # (thumos_tsn.py: window_size=128, window_overlap_ratio=0.5 in all three
  # splits, ioa_thresh=0.9 in train and val).
  data.window_size = 128
  data.window_overlap_ratio = 0.5
  data.test_window_overlap_ratio = 0.5
  data.ioa_thresh = 0.9
  # Video fps for frames -> seconds; -1: frame / duration of each video
  # (SlidingWindowDataset's fps=-1).
  data.fps = -1.0
  # Embedded set: frames per second of its videos (THUMOS14 is 30 fps).
  data.frame_rate = 30.0
  # What --mode=test reads: 'test' (every window of the test videos) or
  # 'full' (the train windows too: BSN's TEM test feeds PGM's train mode).
  data.test_windows = 'test'


def test_config() -> ml_collections.ConfigDict:
  """config.test of the window configs: OpenTAD's post-processing of
  thumos_tsn.py (the merge of a video's windows, the classifier)."""
  test = ml_collections.ConfigDict()
  # post_processing.nms: use_soft_nms=True, sigma=0.3, max_seg_num=200,
  # min_score=0.0001, multiclass=False, voting_thresh=0.95 (per window, then
  # again per video after merging the windows).
  test.nms_sigma = 0.3
  test.nms_max_seg_num = 200
  test.nms_min_score = 0.0001
  test.nms_voting_thresh = 0.95
  # Proposals kept per video for AR@AN (tal_jax's: AR@1000 needs 1000).
  test.proposal_max_seg_num = 1000
  # post_processing.external_cls: UntrimmedNetTHUMOSClassifier, topk=2.
  # Empty file: the shipped uNet_test.npy rows of the THUMOS14 test videos.
  test.classifier_file = ''
  test.classifier_topk = 2
  # roi_head.proposal_generator dscale=64: longest decoded proposal.
  test.max_duration = 64
  # Windows per inference batch (solver.test batch_size=16).
  test.batch_size = 16
  return test


def check_test_config(test: ml_collections.ConfigDict) -> None:
  """TalError naming a field of `test_config()` out of range: counts and
  max_duration >= 1, classifier_topk in [1, 20], nms_sigma > 0,
  nms_min_score in [0, 1), nms_voting_thresh in [0, 1]."""
  for key in ('nms_max_seg_num', 'proposal_max_seg_num', 'max_duration',
              'classifier_topk'):
    if key in test and not (test[key] >= 1 and test[key] == int(test[key])):
      raise errors.TalError(f'config.test.{key}={test[key]!r} must be an '
                            'integer >= 1')
  if 'classifier_topk' in test and test.classifier_topk > len(
      thumos14.CLASSES):
    raise errors.TalError(f'config.test.classifier_topk='
                          f'{test.classifier_topk!r} must be <= '
                          f'{len(thumos14.CLASSES)} (the THUMOS14 classes)')
  checks = (('nms_sigma', lambda v: v > 0, '> 0'),
            ('nms_min_score', lambda v: 0 <= v < 1, 'in [0, 1)'),
            ('nms_voting_thresh', lambda v: 0 <= v <= 1, 'in [0, 1]'))
  for key, ok, what in checks:
    if key in test and not ok(float(test[key])):
      raise errors.TalError(f'config.test.{key}={test[key]!r} must be {what}')


# ------------------------------------------------------------- embedded


def embedded_videos(split: str, num: int, seed: int, frame_rate: float
                    ) -> dict[str, dict[str, Any]]:
  """`num` real THUMOS14 records ('train': validation videos, else test) in
  OpenTAD's form {duration, frame, annotations}."""
  picked = thumos14.pick_records('train' if split == 'train' else 'test',
                                 num, seed)
  return {n: {'duration': r['duration_second'],
              'frame': int(r['duration_second'] * frame_rate),
              'annotations': r['annotations']} for n, r in picked.items()}


def synthetic_features(videos, setting, feat_dim: int, seed: int):
  """features(name) -> synthetic [L, D] snippet features of an embedded
  video (seeded by the video's name)."""
  stride = setting['snippet_stride']

  def features(name):
    rec = videos[name]
    num = len(range(0, rec['frame'], stride))
    gt, labels = video_gt_frames(rec, thumos14.CLASSES)
    rows = np.concatenate([labels[:, None] + 1, gt / stride], axis=1)
    rate = rec['frame'] / rec['duration'] / stride
    rng = np.random.default_rng([seed, *name.encode()])
    return thumos14.video_features(rows, num, feat_dim, rate, rng)
  return features


# ------------------------------------------------------------ real files


def read_database(path: str, subset: str, block_list: str
                  ) -> dict[str, dict[str, Any]]:
  """{video: {duration, frame, annotations}} of one subset of OpenTAD's
  THUMOS14 annotation json, blocked videos left out."""
  try:
    with open(os.path.expanduser(path)) as f:
      database = json.load(f)['database']
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise errors.TalError(f'{path}: not an OpenTAD annotation json with '
                          f'"database" ({e})') from None
  blocked = set()
  if block_list:
    try:
      with open(os.path.expanduser(block_list)) as f:
        blocked = {line.strip() for line in f if line.strip()}
    except (OSError, ValueError) as e:  # ValueError: not text
      raise errors.TalError(f'config.data.block_list {block_list}: {e}'
                            ) from None
  if not isinstance(database, dict):
    raise errors.TalError(f'{path}: "database" is not an object mapping '
                          'video names to records')
  out = {}
  for name, rec in database.items():
    if not isinstance(rec, dict):
      raise errors.TalError(f'{path}: video {name}: record is not an object')
    if rec.get('subset') != subset or name in blocked:
      continue
    check_record(path, name, rec)
    out[name] = rec
  if not out:
    raise errors.TalError(f'{path}: no video of subset "{subset}"')
  return out


def _number(value) -> float:
  """A finite float of a json number or numeric string (OpenTAD's
  segments are strings); NaN when it is neither."""
  if isinstance(value, bool):
    return math.nan
  try:
    return float(value)
  except (TypeError, ValueError):
    return math.nan


def check_record(path: str, name: str, rec: dict[str, Any]) -> None:
  """TalError naming the file, the video and the field of a record of
  OpenTAD's annotation json that windows cannot be cut from: duration not
  > 0, frame not an integer >= 1, an annotation without a [start, end] of
  finite numbers, one ending before it starts or starting before 0, a label
  not among THUMOS14's 20 classes (or 'Ambiguous')."""
  where = f'{path}: video {name}'
  for key in ('duration', 'frame', 'annotations'):
    if key not in rec:
      raise errors.TalError(f'{where}: no "{key}"')
  duration = _number(rec['duration'])
  if not (math.isfinite(duration) and duration > 0):
    raise errors.TalError(f'{where}: duration must be > 0, got '
                          f'{rec["duration"]!r}')
  frame = _number(rec['frame'])
  if not (math.isfinite(frame) and frame >= 1 and frame == int(frame)):
    raise errors.TalError(f'{where}: frame must be an integer >= 1, got '
                          f'{rec["frame"]!r}')
  if not isinstance(rec['annotations'], list):
    raise errors.TalError(f'{where}: annotations is not a list')
  for i, a in enumerate(rec['annotations']):
    seg = a.get('segment') if isinstance(a, dict) else None
    bounds = ([_number(v) for v in seg] if isinstance(seg, (list, tuple))
              else [])
    if len(bounds) != 2 or not all(math.isfinite(v) for v in bounds):
      raise errors.TalError(f'{where}: annotation {i}: segment must be '
                            f'[start, end] seconds, got {seg!r}')
    if bounds[1] < bounds[0] or bounds[0] < 0:
      raise errors.TalError(f'{where}: annotation {i}: segment {list(seg)} '
                            + ('ends before it starts' if bounds[1] < bounds[0]
                               else 'starts before 0'))
    label = a.get('label')
    if label != 'Ambiguous' and label not in thumos14.CLASSES:
      raise errors.TalError(f'{where}: annotation {i}: label {label!r} is '
                            "not a THUMOS14 class (nor 'Ambiguous')")


def file_features(config):
  """features(name) -> <feature_dir>/<name>.npy rows [::sample_stride]."""
  d = config.data

  def features(name):
    path = os.path.join(os.path.expanduser(d.feature_dir), name + '.npy')
    a = thumos14.open_feature_file(name, path)
    if (a.ndim != 2 or a.shape[1] != config.model.feat_dim or
        a.shape[0] < 1 or a.dtype.kind not in 'fiu'):
      raise errors.TalError(f'video {name}: {path} is {a.dtype} {a.shape}, '
                            f'expected numbers [rows >= 1, '
                            f'{config.model.feat_dim}]')
    rows = a[::int(d.sample_stride)]
    bad = ~np.isfinite(rows)
    if bad.any():
      raise errors.TalError(f'video {name}: {path}: NaN or inf in row '
                            f'{int(np.argwhere(bad)[0, 0]) * int(d.sample_stride)}'
                            ' (0-based)')
    return rows
  return features


def load_split(config, split: str, progress: bool = False,
               uses_features: bool = True) -> activitynet.VideoSet:
  """A split ('train', 'val', 'test') as a VideoSet of windows; train and
  val keep windows with a complete action, test keeps every window (and,
  with data.test_windows 'full', the train windows first). Without
  `uses_features` (BSN's PGM and PEM) the features are [N, window, 0]."""
  del progress
  if split == 'test' and config.data.test_windows == 'full':
    train, test = (_load(config, s, uses_features) for s in ('train', 'test'))
    return activitynet.VideoSet(
        train.names + test.names,
        np.concatenate([train.features, test.features]),
        train.records + test.records)
  return _load(config, split, uses_features)


def _load(config, split: str, uses_features: bool) -> activitynet.VideoSet:
  d = config.data
  setting = setting_of(config, split)
  if d.feature_dir or d.ann_file_train or d.ann_file_val or d.ann_file_test:
    ann = d[f'ann_file_{split}']
    if not ann or not d.feature_dir:
      raise errors.TalError(f'config.data.ann_file_{split} and feature_dir '
                            'must be set (OpenTAD THUMOS14 layout)')
    videos = read_database(ann, d[f'subset_{split}'], d.block_list)
    features = file_features(config) if uses_features else None
  else:
    num = d.synthetic_train if split == 'train' else d.synthetic_val
    videos = embedded_videos(split, num, d.synthetic_seed, d.frame_rate)
    features = (synthetic_features(videos, setting, config.model.feat_dim,
                                   d.synthetic_seed) if uses_features
                else None)
  return window_set(videos, features, setting, thumos14.CLASSES,
                    with_labels=split != 'test')


# ----------------------------------------------------------- classifier

UNTRIMMEDNET = os.path.join(os.path.dirname(__file__), 'embedded',
                            'thumos14_untrimmednet_test.npz')


def untrimmednet_scores(path: str = ''):
  """scores(video) -> [101] UntrimmedNet class scores of a THUMOS14 test
  video: from `path` (uNet_test.npy [1574, 101], row = video number - 1),
  or the shipped rows of the embedded test videos when path is empty."""
  if path:
    try:
      table = np.load(os.path.expanduser(path))
    except (OSError, ValueError, EOFError) as e:
      raise errors.TalError(f'{path}: cannot read the UntrimmedNet scores '
                            f'({e})') from None
    if not isinstance(table, np.ndarray):  # an .npz archive
      table.close()
      raise errors.TalError(f'{path}: an .npz archive, expected the .npy '
                            'array [videos, 101] (uNet_test.npy)')
    if (table.ndim != 2 or table.shape[1] != 101 or
        table.dtype.kind not in 'fiu'):
      raise errors.TalError(f'{path}: {table.dtype} {table.shape}, expected '
                            'numbers [videos, 101] (uNet_test.npy)')
    if not np.all(np.isfinite(table)):
      row = int(np.argwhere(~np.isfinite(table))[0, 0])
      raise errors.TalError(f'{path}: NaN or inf in row {row} (video '
                            f'{row + 1}) of the UntrimmedNet scores')
    rows = {i + 1: r for i, r in enumerate(table)}
  else:
    with np.load(UNTRIMMEDNET) as z:
      rows = dict(zip(z['video_numbers'].tolist(), z['scores']))

  def scores(video):
    try:
      number = windows.untrimmednet_row(video) + 1
    except ValueError:
      raise errors.TalError(f'video {video}: not a THUMOS14 test video name '
                            '(video_test_NNNNNNN) for UntrimmedNet scores'
                            ) from None
    if number not in rows:
      raise errors.TalError(f'video {video}: no UntrimmedNet scores '
                            f'(row {number - 1}) in {path or UNTRIMMEDNET}')
    return rows[number]
  return scores
