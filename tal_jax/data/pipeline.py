"""Splits for training and evaluation: loading, labels once per split, batching.

`load_split(config, split)` returns the train / val / test VideoSet: from
`config.data.feature_dir` and the `ann_file_*` fields, or, when no data path
is set, from the embedded synthetic dataset (generated once into the cache).

Batches are drawn by index from arrays held in memory: `epoch_order(seed,
epoch, n)` is the shuffled order of an epoch, so a resumed run repeats exactly
the same batches; the last incomplete batch is dropped (MMAction2's BMN config
sets drop_last=True).
"""

import ml_collections
import numpy as np

from tal_jax import errors
from tal_jax.data import activitynet
from tal_jax.data import synthetic
from tal_jax.data import thumos14
from tal_jax.data import thumos14_windows


def data_config(synthetic_test_split: str = 'val') -> ml_collections.ConfigDict:
  """The `config.data` fields every model's config shares (defined only here)."""
  data = ml_collections.ConfigDict()
  # 'activitynet' (MMAction2's ActivityNet feature layout) or 'thumos14' (SSN's
  # proposal lists and per-frame features).
  data.dataset = 'activitynet'
  # Folder of MMAction2 feature CSVs (v_<id>.csv, header + T rows x D columns)
  # or .npy files [T, D]. Empty: use the embedded synthetic dataset.
  data.feature_dir = ''
  # MMAction2 annotation files (anet_anno_{train,val,test}.json).
  data.ann_file_train = ''
  data.ann_file_val = ''
  data.ann_file_test = ''
  # Where packed arrays (and the embedded dataset) are cached.
  data.cache_dir = '~/.cache/tal_jax'
  # Embedded dataset: number of train / val videos and its seed. The default
  # is sized for a few minutes of BMN on a 2-core CPU; ':full' presets are
  # ActivityNet-sized.
  data.synthetic_train = 64
  data.synthetic_val = 32
  data.synthetic_seed = 0
  # Which embedded split --mode=test reads: 'val', or 'full' (train + val, as
  # MMAction2's TEM test on anet_anno_full.json).
  data.synthetic_test_split = synthetic_test_split
  # Skip (and count) videos whose features are missing or malformed instead
  # of stopping with an error.
  data.skip_bad_videos = False
  # BSN PEM: the folder tal_jax.tools.bsn_proposal_generation wrote
  # (pgm_train.npz, pgm_test.npz).
  data.pgm_dir = ''
  return data


def apply_data_preset(data: ml_collections.ConfigDict, preset: str) -> None:
  """Embedded-set sizes of a config preset: 'full' is ActivityNet-sized
  (9,649 / 4,728 videos), 'tiny' is 16 / 8 videos for tests."""
  sizes = {'full': (9649, 4728), 'tiny': (16, 8)}
  if preset in sizes:
    data.synthetic_train, data.synthetic_val = sizes[preset]


def use_embedded(config: ml_collections.ConfigDict) -> bool:
  """The embedded set is used when no data path at all is configured."""
  d = config.data
  return not (d.feature_dir or d.ann_file_train or d.ann_file_val or
              d.ann_file_test)


def annotation_paths(config: ml_collections.ConfigDict,
                     temporal_dim: int | None = None,
                     progress: bool = False) -> dict[str, str]:
  """ann_file_{train,val,test} (and feature_dir) of the config.

  For the embedded set, generates its annotations and, when `temporal_dim` is
  given, its features at that T.
  """
  data = config.data
  if not use_embedded(config):
    return {'feature_dir': data.feature_dir,
            'ann_file_train': data.ann_file_train,
            'ann_file_val': data.ann_file_val,
            'ann_file_test': data.ann_file_test or data.ann_file_val}
  paths = synthetic.ensure_dataset(
      data.cache_dir, data.synthetic_train, data.synthetic_val,
      data.synthetic_seed, temporal_dim, progress)
  paths['ann_file_test'] = paths[f'ann_file_{data.synthetic_test_split}']
  return paths


def load_split(config: ml_collections.ConfigDict, split: str,
               progress: bool = False,
               uses_features: bool = True) -> activitynet.VideoSet:
  """One split ('train', 'val' or 'test') as a VideoSet (packed on first use).

  `uses_features`: whether the model reads the split's feature files (its
  ModelDef's); without, the VideoSet holds the annotations alone.
  """
  if config.data.dataset == 'thumos14':
    return thumos14.load_split(config, split, progress)
  if thumos14_windows.is_windowed(config):
    return thumos14_windows.load_split(config, split, progress, uses_features)
  features = uses_features
  paths = annotation_paths(
      config, config.model.temporal_dim if features else None, progress)
  ann_file = paths[f'ann_file_{split}']
  if not ann_file:
    raise errors.TalError(f'config.data.ann_file_{split} is empty (set it, or '
                          'no data path at all for the embedded dataset)')
  if not features:
    records = activitynet.load_annotations(ann_file)
    names = sorted(records)
    return activitynet.VideoSet(names, np.zeros((len(names), 0), np.float32),
                                [records[n] for n in names])
  if not paths['feature_dir']:
    raise errors.TalError('config.data.feature_dir is empty but annotation '
                          'files are set')
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
