"""THUMOS14 for SSN: proposal lists, per-frame features, and the embedded set.

Layout (MMAction2 0.x, `ssn_r50_450e_thumos14_rgb_{train,test}.py`):
- `config.data.ann_file_{train,val,test}`: de-normalised SSN proposal lists
  (`thumos14_tag_{val,test}_proposal_list.txt`: `#idx`, video id, num_frames,
  fps (num_frames x fps = frames), G gts `label start end`, P proposals
  `label best_iou overlap_self start end`, times in frames, labels 1..20).
  SSN trains on THUMOS14's validation videos and tests on its test videos.
- feature mode: `config.data.feature_dir/<video>.npy`, [num_frames, D] float32
  per-frame features (row i = frame img_{i+1:05d}.jpg), D = config.model.feat_dim.
- frame mode: `config.data.frame_dir/<video>/img_{:05d}.jpg` rawframes
  (tal_jax/data/rawframes.py; row i is file i + start_index).
- `config.data.frame_rate`: frames per second of the frames (30 for THUMOS14
  rawframes), converts frames to seconds for the metrics and results.

Embedded default (no data path set): real THUMOS14 ground truth (durations,
segment positions and lengths, the 20 classes of the validation / test videos,
shipped in `embedded/thumos14_subset.json.gz`, built by
`experiments/make_embedded_thumos14.py`), synthetic per-frame features (smooth
noise, a weak video-level scene vector, the segment's class prototype and a
shared "actionness" direction rising with soft edges inside each segment) and
TAG-like proposals (jittered gts, partial and over-long windows, random
windows of THUMOS-like lengths), written once into the cache with
`results_io`'s proposal-list writer and read back with its reader. In frame
mode the same videos, ground truth and proposals come with generated JPEG
frames (tal_jax/data/synthetic_frames.py: the class's shape and colour in
motion inside each segment, on a drifting scene) at config.data.frame_rate.
"""

import gzip
import json
import os
from typing import Any

import numpy as np

from tal_jax import errors
from tal_jax import results_io
from tal_jax.data import activitynet
from tal_jax.data import ssn_videos
from tal_jax.data import rawframes
from tal_jax.data import synthetic_frames

# The 20 THUMOS14 detection classes; proposal-list label i is CLASSES[i - 1].
CLASSES = ('BaseballPitch', 'BasketballDunk', 'Billiards', 'CleanAndJerk',
           'CliffDiving', 'CricketBowling', 'CricketShot', 'Diving',
           'FrisbeeCatch', 'GolfSwing', 'HammerThrow', 'HighJump',
           'JavelinThrow', 'LongJump', 'PoleVault', 'Shotput',
           'SoccerPenalty', 'TennisSwing', 'ThrowDiscus', 'VolleyballSpiking')
EMBEDDED = os.path.join(os.path.dirname(__file__), 'embedded',
                        'thumos14_subset.json.gz')
SUBSETS = {'train': 'validation', 'test': 'test'}
LIST_NAMES = {'train': 'thumos14_tag_val_proposal_list.txt',
              'test': 'thumos14_tag_test_proposal_list.txt'}
GENERATOR_VERSION = 3
FRAMES_VERSION = 1


def embedded_records(subset: str) -> dict[str, dict[str, Any]]:
  """Real records of 'validation' or 'test': {video: {duration_second,
  annotations: [{segment: [s, e] seconds, label}]}}."""
  with gzip.open(EMBEDDED, 'rt') as f:
    return json.load(f)[subset]


def pick_records(split: str, num: int, seed: int) -> dict[str, Any]:
  """`num` real records of 'train' (validation videos) or 'test', seeded.

  With num >= 20, the first picks are one video per class (in a seeded
  order), so every class has ground truth; the rest are drawn at random.
  """
  source = embedded_records(SUBSETS[split])
  if num > len(source):
    raise errors.TalError(f'the embedded THUMOS14 {SUBSETS[split]} set has '
                          f'{len(source)} videos, fewer than {num} asked')
  names = sorted(source)
  rng = np.random.default_rng([seed, 14, len(split)])
  order = list(rng.permutation(len(names)))
  chosen = []
  if num >= len(CLASSES):
    for c in rng.permutation(len(CLASSES)):
      have = [i for i in order if i not in chosen and any(
          a['label'] == CLASSES[c] for a in source[names[i]]['annotations'])]
      chosen += have[:1]
  chosen += [i for i in order if i not in chosen][:num - len(chosen)]
  return {names[i]: source[names[i]] for i in sorted(chosen)}


# ------------------------------------------------------------- features


def _prototypes(feat_dim: int) -> np.ndarray:
  """[21, D]: 20 class prototypes and an 'actionness' direction (row 20)."""
  rng = np.random.default_rng(20140)
  p = rng.standard_normal((len(CLASSES) + 1, feat_dim))
  return (p / np.linalg.norm(p, axis=1, keepdims=True) *
          np.sqrt(feat_dim)).astype(np.float32)


def _smooth_noise(rng, num_frames, feat_dim, frame_rate):
  """[F, D] noise: a 2 Hz random walk interpolated, plus white noise."""
  knots = max(2, int(num_frames / frame_rate * 2) + 2)
  coarse = rng.standard_normal((knots, feat_dim)).astype(np.float32)
  x = np.linspace(0, knots - 1, num_frames)
  lo = np.minimum(x.astype(int), knots - 2)
  w = (x - lo)[:, None].astype(np.float32)
  smooth = coarse[lo] * (1 - w) + coarse[lo + 1] * w
  return 0.6 * smooth + 0.4 * rng.standard_normal(
      (num_frames, feat_dim)).astype(np.float32)


def video_features(gts: np.ndarray, num_frames: int, feat_dim: int,
                   frame_rate: float, rng: np.random.Generator) -> np.ndarray:
  """Synthetic per-frame features of one video: [num_frames, D] float32.

  Args:
    gts: [G, 3] (label 1..20, start, end) frames.
  """
  proto = _prototypes(feat_dim)
  feats = _smooth_noise(rng, num_frames, feat_dim, frame_rate)
  frames = np.arange(num_frames, dtype=np.float32) + 0.5
  scene = int(gts[0, 0]) if rng.random() < 0.7 else int(
      rng.integers(1, len(CLASSES) + 1))
  feats += 0.3 * proto[scene - 1]
  for label, start, end in gts:
    width = rng.uniform(0.1, 0.4) * frame_rate
    rise = np.clip((frames - start) / width, -30, 30)
    fall = np.clip((end - frames) / width, -30, 30)
    box = (1 / (1 + np.exp(-rise)) / (1 + np.exp(-fall)))[:, None]
    strength = rng.uniform(0.3, 0.8)
    feats += box * (strength * proto[int(label) - 1] + 0.5 * proto[-1])
  return feats.astype(np.float32)


# ------------------------------------------------------------ proposals


def _windows(centers, lengths, num_frames):
  """[P, 2] int64 (start, end) frames, clipped, each at least 2 frames."""
  start = np.clip(np.round(centers - lengths / 2), 0, num_frames - 2)
  end = np.clip(np.round(centers + lengths / 2), start + 2, num_frames)
  return np.stack([start, end], axis=1).astype(np.int64)


def tag_like_proposals(gts: np.ndarray, num_frames: int, frame_rate: float,
                       rng: np.random.Generator) -> np.ndarray:
  """[P, 2] int64 frames: TAG-like proposals of one video.

  Per gt: 4 jittered copies (IoU mostly > 0.7), 3 partial windows (a fifth to
  a half of it: incompletes) and 2 wider ones; per video: random windows of
  1-40 s (log-uniform), 3 per minute and at least 20.
  """
  out = []
  for _, s, e in gts:
    c, length = (s + e) / 2, max(e - s, 2)
    out.append(_windows(c + rng.normal(0, 0.06, 4) * length,
                        length * np.exp(rng.normal(0, 0.08, 4)), num_frames))
    frac = rng.uniform(0.2, 0.5, 3)
    part_c = s + length * (frac / 2 + rng.uniform(0, 1, 3) * (1 - frac))
    out.append(_windows(part_c, frac * length, num_frames))
    out.append(_windows(c + rng.normal(0, 0.3, 2) * length,
                        length * rng.uniform(1.8, 3.0, 2), num_frames))
  count = max(20, int(3 * num_frames / frame_rate / 60))
  lengths = np.exp(rng.uniform(np.log(1.0), np.log(40.0), count)) * frame_rate
  out.append(_windows(rng.uniform(0, num_frames, count), lengths,
                      num_frames))
  return np.concatenate(out)


def _video_gts(record, frame_rate, num_frames):
  """[G, 3] int64 (label 1..20, start, end) frames of a record."""
  rows = [(CLASSES.index(a['label']) + 1,
           int(round(a['segment'][0] * frame_rate)),
           int(round(a['segment'][1] * frame_rate)))
          for a in record['annotations']]
  g = np.array(rows, np.int64).reshape(-1, 3)
  g[:, 1:] = np.clip(g[:, 1:], 0, num_frames)
  return g


def dataset_dir(cache_dir, num_train, num_test, feat_dim, frame_rate, seed):
  return os.path.join(
      os.path.expanduser(cache_dir), 'synthetic',
      f'thumos14_v{GENERATOR_VERSION}_{num_train}x{num_test}_d{feat_dim}_'
      f'r{frame_rate:g}_s{seed}')


def _write_split(root, split, records, frame_rate, seed, write_video):
  """Writes one split's proposal list, and each video's features or frames
  with write_video(video, gts [G, 3], num_frames, rng)."""
  blocks = []
  for i, (vid, rec) in enumerate(records.items()):
    rng = np.random.default_rng([seed, len(split), i])
    num_frames = int(rec['duration_second'] * frame_rate)
    gts = _video_gts(rec, frame_rate, num_frames)
    props = tag_like_proposals(gts, num_frames, frame_rate, rng)
    blocks.append(results_io.format_proposal_list_video(
        i, vid, num_frames, 1, gts[:, [1, 2, 0]], props))
    write_video(vid, gts, num_frames, rng)
  results_io.write_proposal_list(os.path.join(root, LIST_NAMES[split]),
                                 blocks)


def _feature_writer(root, feat_dim, frame_rate):
  def write(vid, gts, num_frames, rng):
    with errors.atomic_path(os.path.join(root, 'features', vid + '.npy'),
                            '.npy') as tmp:
      with open(tmp, 'wb') as f:
        np.save(f, video_features(gts, num_frames, feat_dim, frame_rate, rng))
  return write


def _frame_writer(root, frame_size):
  def write(vid, gts, num_frames, rng):
    frames = synthetic_frames.synthetic_frames(
        gts, num_frames, frame_size[0], frame_size[1],
        int(rng.integers(2**31)))
    rawframes.write_frames(os.path.join(root, 'rawframes', vid), frames)
  return write


def _ensure(root: str, media: str, folder: str, num_train: int,
            num_test: int, frame_rate: float, seed: int, writer) -> dict:
  """Writes an embedded set under `root` once (a DONE marker); returns
  {media: <root>/<folder>, 'ann_file_{train,val,test}'}. ann_file_val is the
  test list (SSN validates on the test videos)."""
  paths = {media: os.path.join(root, folder),
           'ann_file_train': os.path.join(root, LIST_NAMES['train']),
           'ann_file_val': os.path.join(root, LIST_NAMES['test']),
           'ann_file_test': os.path.join(root, LIST_NAMES['test'])}
  if os.path.isfile(os.path.join(root, 'DONE')):
    return paths
  os.makedirs(paths[media], exist_ok=True)
  for split, num in (('train', num_train), ('test', num_test)):
    _write_split(root, split, pick_records(split, num, seed), frame_rate,
                 seed, writer)
  errors.write_text(os.path.join(root, 'DONE'), 'ok\n')
  return paths


def ensure_dataset(cache_dir: str, num_train: int, num_test: int,
                   feat_dim: int, frame_rate: float, seed: int) -> dict:
  """The embedded set with per-frame features, written once; returns
  feature_dir and ann_file_* paths."""
  root = dataset_dir(cache_dir, num_train, num_test, feat_dim, frame_rate,
                     seed)
  return _ensure(root, 'feature_dir', 'features', num_train, num_test,
                 frame_rate, seed, _feature_writer(root, feat_dim, frame_rate))


def frames_dataset_dir(cache_dir, num_train, num_test, frame_size, frame_rate,
                       seed):
  h, w = frame_size
  return os.path.join(
      os.path.expanduser(cache_dir), 'synthetic',
      f'thumos14_frames_v{FRAMES_VERSION}_{num_train}x{num_test}_{h}x{w}_'
      f'r{frame_rate:g}_s{seed}')


def ensure_frames_dataset(cache_dir: str, num_train: int, num_test: int,
                          frame_size, frame_rate: float, seed: int) -> dict:
  """The embedded set as rawframes (`synthetic_frames.synthetic_frames`,
  frame_size (H, W), JPEG), written once; returns frame_dir and ann_file_*
  paths. Same videos, ground truth and proposals as the feature set of the
  same seed."""
  root = frames_dataset_dir(cache_dir, num_train, num_test, frame_size,
                            frame_rate, seed)
  return _ensure(root, 'frame_dir', 'rawframes', num_train, num_test,
                 frame_rate, seed, _frame_writer(root, tuple(frame_size)))


# -------------------------------------------------------------- loading


def data_paths(config) -> dict[str, str]:
  """feature_dir (feature mode) or frame_dir (frame mode) and
  ann_file_{train,val,test}: the embedded set's when no data path is
  configured."""
  d = config.data
  media = 'frame_dir' if d.mode == 'frames' else 'feature_dir'
  if d[media] or d.ann_file_train or d.ann_file_val or d.ann_file_test:
    return {media: d[media], 'ann_file_train': d.ann_file_train,
            'ann_file_val': d.ann_file_val or d.ann_file_test,
            'ann_file_test': d.ann_file_test or d.ann_file_val}
  if d.mode == 'frames':
    return ensure_frames_dataset(d.cache_dir, d.synthetic_train,
                                 d.synthetic_val, d.synthetic_frame_size,
                                 d.frame_rate, d.synthetic_seed)
  return ensure_dataset(d.cache_dir, d.synthetic_train, d.synthetic_val,
                        config.model.feat_dim, d.frame_rate, d.synthetic_seed)


def video_record(video: ssn_videos.SSNVideo, frame_rate: float) -> dict:
  """MMAction2-style record (seconds, class names) of an SSNVideo; the
  SSNVideo itself rides along under 'ssn_video'."""
  return {'duration_second': video.num_frames / frame_rate,
          'duration_frame': video.num_frames,
          'feature_frame': video.num_frames,
          'annotations': [{'segment': [g[1] / frame_rate, g[2] / frame_rate],
                           'label': CLASSES[int(g[0]) - 1]}
                          for g in video.gts],
          'ssn_video': video}


def _check_labels(videos, path):
  for v in videos:
    labels = np.concatenate([v.gts[:, 0], v.proposals[:, 0]])
    if len(labels) and (labels.min() < 0 or labels.max() > len(CLASSES)):
      raise errors.TalError(f'{path}: video {v.video_id}: label outside '
                            f'0..{len(CLASSES)}')


def load_split(config, split: str, progress: bool = False):
  """A split as an activitynet.VideoSet (features [N, 0]; read them with
  `load_frame_features`); videos without gts are dropped (SSNDataset's
  default filter_gt=True, in every split)."""
  del progress
  if config.data.mode not in ('features', 'frames'):
    raise errors.TalError(f"config.data.mode='{config.data.mode}' is not "
                          "'features' or 'frames'")
  path = data_paths(config)[f'ann_file_{split}']
  if not path:
    raise errors.TalError(f'config.data.ann_file_{split} is empty (an SSN '
                          'proposal list)')
  videos = ssn_videos.load_videos(results_io.read_proposal_list(path),
                                   filter_gt=True)
  _check_labels(videos, path)
  return activitynet.VideoSet(
      [v.video_id for v in videos], np.zeros((len(videos), 0), np.float32),
      [video_record(v, config.data.frame_rate) for v in videos])


def open_feature_file(name: str, path: str) -> np.ndarray:
  """Video `name`'s .npy features, memory-mapped; TalError naming the video
  and the file when it is missing or unreadable."""
  if not os.path.isfile(path):
    raise errors.TalError(f'video {name}: feature file {path} not found')
  try:
    return np.load(path, mmap_mode='r')
  except (ValueError, OSError, EOFError) as e:  # EOFError: an empty file
    raise errors.TalError(f'video {name}: cannot read {path} ({e})') from None


def load_frame_features(config, videos) -> list[np.ndarray]:
  """Per-frame features of a split: per video [num_frames, D], memory-mapped.

  Each <feature_dir>/<video>.npy must be a float array [>= num_frames, D]; a
  missing or malformed file is a TalError naming it and the video.
  """
  feature_dir = os.path.expanduser(data_paths(config)['feature_dir'])
  if not feature_dir:
    raise errors.TalError('config.data.feature_dir is empty (a folder of '
                          '<video>.npy per-frame features)')
  d = config.model.feat_dim
  arrays = []
  for name, rec in zip(videos.names, videos.records):
    path = os.path.join(feature_dir, name + '.npy')
    a = open_feature_file(name, path)
    n = rec['duration_frame']
    if (a.ndim != 2 or a.shape[1] != d or a.shape[0] < n or
        a.dtype.kind != 'f'):
      raise errors.TalError(f'video {name}: {path} is {a.dtype} {a.shape}, '
                            f'expected float [>= {n}, {d}] (frames, feat_dim)')
    arrays.append(a[:n])
  return arrays
