"""The embedded default dataset: real ActivityNet ground truth, synthetic features.

Ground truth (durations, frame counts, segment positions and class labels) comes
from 2,000 training and 1,000 validation videos of the real ActivityNet-1.3
annotations shipped in ``embedded/anet_subset.json.gz`` (built by
``experiments/make_embedded_annotations.py`` from the BSN/BMN repositories'
``anet_anno_action.json``). Larger sets reuse those records under new names.

Features mimic the cuhk features, which are TSN class scores of 200 RGB and 200
flow classes per snippet:
- background: temporally smooth noise on every class score, plus a weak video-level
  "scene" class (the video's own class or a random one), present everywhere;
- inside each ground-truth segment: the segment's class rises in both streams with
  a smooth onset and offset (a few bins wide), with a random strength, and a fixed
  confusable class rises less; flow reacts a little later and noisier than RGB;
- distractors: short bursts of random classes outside the actions.
So a model has to find boundaries from noisy, smooth evidence, and an untrained
model scores poorly. Everything is deterministic given (seed, split, index).

The set is written once into the cache as MMAction2 files (``v_<id>.csv`` and
``anet_anno_{train,val}.json``), so the default run exercises the real reading path.
"""

import gzip
import json
import multiprocessing
import os
from concurrent import futures
from typing import Any

import numpy as np

from tal_jax import errors
from tal_jax.data import activitynet

NUM_CLASSES = 200
EMBEDDED = os.path.join(os.path.dirname(__file__), 'embedded',
                        'anet_subset.json.gz')
SPLITS = {'train': 'training', 'val': 'validation'}


def embedded_records() -> dict[str, dict[str, dict[str, Any]]]:
  """The shipped real annotations: {'training': {...}, 'validation': {...}}."""
  with gzip.open(EMBEDDED, 'rt') as f:
    return json.load(f)


def class_names(records: dict[str, dict[str, Any]]) -> list[str]:
  """Sorted class labels occurring in `records` (at most 200)."""
  return sorted({a['label'] for r in records.values() for a in r['annotations']})


def pick_records(split: str, num: int, seed: int) -> dict[str, dict[str, Any]]:
  """`num` real records of `split` ('train'/'val') under synthetic names.

  The first pass takes records without repetition in a seeded order; beyond the
  shipped count, records repeat (with new names and new features).
  """
  source = embedded_records()[SPLITS[split]]
  names = sorted(source)
  rng = np.random.default_rng([seed, 7, len(split)])
  order = np.concatenate([rng.permutation(len(names))
                          for _ in range(-(-num // len(names)))])[:num]
  return {f'v_syn{split}{i:05d}': source[names[j]] for i, j in enumerate(order)}


def _smooth_noise(rng, t: int, d: int, scale: float, rho: float) -> np.ndarray:
  """[t, d] AR(1) noise with stationary std `scale`."""
  eps = rng.standard_normal((t, d)).astype(np.float32) * scale * np.sqrt(
      1 - rho**2)
  out = np.empty((t, d), np.float32)
  out[0] = rng.standard_normal(d) * scale
  for i in range(1, t):
    out[i] = rho * out[i - 1] + eps[i]
  return out


def _ramp(centres: np.ndarray, start: float, end: float,
          width: float) -> np.ndarray:
  """Smooth box on [start, end] with logistic edges of `width` (normalised)."""
  rise = 1 / (1 + np.exp(-(centres - start) / width))
  fall = 1 / (1 + np.exp(-(end - centres) / width))
  return (rise * fall).astype(np.float32)


# Magnitudes of TSN "fc-action" logits, which the cuhk features are.
NOISE_MEAN, NOISE_STD, NOISE_RHO = -2.0, 1.5, 0.7
SCENE_RGB, SCENE_FLOW = 2.0, 1.2
ACTION_STRENGTH = (4.0, 9.0)
DISTRACTOR_STRENGTH = (2.5, 6.0)


def video_features(record: dict[str, Any], class_index: dict[str, int],
                   temporal_dim: int, rng: np.random.Generator) -> np.ndarray:
  """Synthetic cuhk-like features of one video: [T, 400] float32."""
  t = temporal_dim
  feats = NOISE_MEAN + _smooth_noise(rng, t, 2 * NUM_CLASSES, NOISE_STD,
                                     NOISE_RHO)
  centres = (np.arange(t) + 0.5) / t
  span = (record['feature_frame'] / record['duration_frame'] *
          record['duration_second'])
  labels = [class_index[a['label']] for a in record['annotations']]
  scene = labels[0] if labels and rng.random() < 0.7 else int(
      rng.integers(NUM_CLASSES))
  feats[:, scene] += SCENE_RGB
  feats[:, NUM_CLASSES + scene] += SCENE_FLOW
  action = np.zeros(t, np.float32)
  for a, c in zip(record['annotations'], labels):
    s, e = np.clip(np.asarray(a['segment']) / span, 0, 1)
    strength = rng.uniform(*ACTION_STRENGTH)
    width = rng.uniform(0.3, 1.2) / t
    rgb = _ramp(centres, s, e, width)
    flow = _ramp(centres, s + 0.5 / t, e + 0.5 / t, 1.5 * width)
    feats[:, c] += strength * rgb
    feats[:, NUM_CLASSES + c] += strength * 0.8 * flow
    feats[:, (c * 37 + 11) % NUM_CLASSES] += 0.4 * strength * rgb
    action = np.maximum(action, rgb)
  for _ in range(int(rng.integers(0, 4))):
    c = int(rng.integers(NUM_CLASSES))
    mid, half = rng.uniform(0, 1), rng.uniform(1, 4) / t
    burst = _ramp(centres, mid - half, mid + half, 0.5 / t) * (1 - action)
    feats[:, c] += rng.uniform(*DISTRACTOR_STRENGTH) * burst
    feats[:, NUM_CLASSES + c] += 0.5 * rng.uniform(*DISTRACTOR_STRENGTH) * burst
  return feats


def _write_video(args) -> None:
  path, record, class_index, temporal_dim, seed = args
  rng = np.random.default_rng(seed)
  activitynet.write_features_csv(
      path, video_features(record, class_index, temporal_dim, rng))


# Part of the cache folder's name: bump it when the features change.
GENERATOR_VERSION = 2


def dataset_dir(cache_dir: str, num_train: int, num_val: int, seed: int) -> str:
  return os.path.join(os.path.expanduser(cache_dir), 'synthetic',
                      f'anet_v{GENERATOR_VERSION}_{num_train}x{num_val}_s{seed}')


def _write_annotations(root: str, num_train: int, num_val: int,
                       seed: int) -> dict[str, dict[str, Any]]:
  """anet_anno_{train,val,full}.json (full = train + val); returns the splits."""
  splits = {s: pick_records(s, n, seed)
            for s, n in (('train', num_train), ('val', num_val))}
  full = {**splits['train'], **splits['val']}
  for name, records in (*splits.items(), ('full', full)):
    path = os.path.join(root, f'anet_anno_{name}.json')
    if not os.path.isfile(path):
      errors.write_json(path, records)
  return splits


def ensure_dataset(cache_dir: str, num_train: int, num_val: int, seed: int,
                   temporal_dim: int | None = 100,
                   progress: bool = False) -> dict[str, str]:
  """Writes the synthetic set once; returns its feature_dir and ann_file_* paths.

  Output (MMAction2's layout): <dir>/anet_anno_{train,val,full}.json and, unless
  `temporal_dim` is None (annotations only), <dir>/csv_mean_<T>/v_<id>.csv. A
  finished feature folder is marked by a DONE file; an interrupted generation
  is resumed (existing CSVs are kept).
  """
  root = dataset_dir(cache_dir, num_train, num_val, seed)
  os.makedirs(root, exist_ok=True)
  paths = {f'ann_file_{s}': os.path.join(root, f'anet_anno_{s}.json')
           for s in ('train', 'val', 'full')}
  splits = _write_annotations(root, num_train, num_val, seed)
  if temporal_dim is None:
    return paths
  paths['feature_dir'] = os.path.join(root, f'csv_mean_{temporal_dim}')
  done = os.path.join(paths['feature_dir'], 'DONE')
  if os.path.isfile(done):
    return paths
  os.makedirs(paths['feature_dir'], exist_ok=True)
  shipped = embedded_records()
  class_index = {c: i for i, c in enumerate(
      class_names({**shipped['training'], **shipped['validation']}))}
  jobs = []
  for split, records in splits.items():
    for i, (name, rec) in enumerate(records.items()):
      path = os.path.join(paths['feature_dir'], name + '.csv')
      if not os.path.isfile(path):
        jobs.append((path, rec, class_index, temporal_dim,
                     [seed, len(split), i]))
  _run_jobs(jobs, progress)
  errors.write_text(done, 'ok\n')
  return paths


def _run_jobs(jobs: list, progress: bool) -> None:
  """Writes the CSVs of `jobs` in worker processes."""
  if not jobs:
    return
  # 'spawn': the caller may already run JAX threads, which fork would copy.
  context = multiprocessing.get_context('spawn')
  workers = max(1, min(len(jobs), os.cpu_count() or 1))
  with futures.ProcessPoolExecutor(workers, mp_context=context) as ex:
    results = ex.map(_write_video, jobs, chunksize=8)
    if progress:
      from tqdm import tqdm  # pylint: disable=g-import-not-at-top
      results = tqdm(results, total=len(jobs), desc='generating embedded set')
    for _ in results:
      pass
