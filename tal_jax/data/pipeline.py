"""Splits for training and evaluation: loading, labels once per split, batching.

`load_splits(config)` returns the train / val / test VideoSets: from
`config.data.feature_dir` and the `ann_file_*` fields, or, when `feature_dir` is
empty, from the embedded synthetic dataset (generated once into the cache).

Batches are drawn by index from arrays held in memory: `epoch_order(seed,
epoch, n)` is the shuffled order of an epoch, so a resumed run repeats exactly
the same batches; the last incomplete batch is dropped (MMAction2's BMN config
sets drop_last=True).
"""

import ml_collections
import numpy as np

from tal_jax.data import activitynet
from tal_jax.data import synthetic


def _data_paths(config: ml_collections.ConfigDict, progress: bool) -> dict:
  data = config.data
  if data.feature_dir:
    return {'feature_dir': data.feature_dir,
            'ann_file_train': data.ann_file_train,
            'ann_file_val': data.ann_file_val,
            'ann_file_test': data.ann_file_test or data.ann_file_val}
  paths = synthetic.ensure_dataset(
      data.cache_dir, data.synthetic_train, data.synthetic_val,
      data.synthetic_seed, config.model.temporal_dim, progress)
  paths['ann_file_test'] = paths['ann_file_val']
  return paths


def load_split(config: ml_collections.ConfigDict, split: str,
               progress: bool = False) -> activitynet.VideoSet:
  """One split ('train', 'val' or 'test') as a VideoSet (packed on first use)."""
  paths = _data_paths(config, progress)
  ann_file = paths[f'ann_file_{split}']
  if not ann_file:
    from tal_jax import errors  # pylint: disable=g-import-not-at-top
    raise errors.TalError(f'config.data.ann_file_{split} is empty but '
                          'config.data.feature_dir is set')
  return activitynet.load_split(
      paths['feature_dir'], ann_file, config.data.cache_dir,
      config.model.temporal_dim, config.model.feat_dim,
      config.data.skip_bad_videos, progress)


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
  """[n] permutation of an epoch, a function of (seed, epoch) only."""
  return np.random.default_rng([seed, epoch]).permutation(n)


def epoch_batches(seed: int, epoch: int, n: int, batch_size: int) -> np.ndarray:
  """[steps, batch_size] indices of an epoch's batches (last partial dropped)."""
  steps = n // batch_size
  return epoch_order(seed, epoch, n)[:steps * batch_size].reshape(
      steps, batch_size)


def eval_batches(n: int, batch_size: int) -> list[np.ndarray]:
  """Indices covering 0..n-1 in order, in batches of at most batch_size."""
  return [np.arange(i, min(n, i + batch_size)) for i in range(0, n, batch_size)]
