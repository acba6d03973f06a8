"""A tensorflow-datasets builder for ActivityNet features, without TensorFlow.

The dataset is written as ArrayRecord files (``file_format='array_record'``) and
read back with ``tfds.data_source``, a random-access Python sequence of numpy
examples; neither step imports TensorFlow (only the default tfrecord format and
``tfds.load`` need it). Build once, then read from anywhere:

  from tal_jax.data import tfds_builder
  tfds_builder.build('~/tensorflow_datasets', name='csv_mean_100',
                     packed_dirs={'train': 'packed/train', 'val': 'packed/val'})
  import tensorflow_datasets as tfds
  val = tfds.data_source('tal_activitynet/csv_mean_100', split='val',
                         data_dir='~/tensorflow_datasets')
  val[0]['features']  # [T, D] float32

Sources: packed splits (`activitynet.pack_split`) or a feature folder plus one
annotation file per split. Examples keep the source order (shuffling disabled),
sorted by video name as in a packed split. Each example:
  video_name: str ('v_<id>'; decoded as bytes)
  features: [T, D] float32
  duration_second: float64 seconds; duration_frame, feature_frame: int64 frames
  segments: [G, 2] float64 seconds (G may be 0)
  labels: G class names (decoded as a list of bytes)
"""

import dataclasses
import os
from typing import Any, Iterator

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from tal_jax import errors
from tal_jax.data import activitynet

FILE_FORMAT = 'array_record'


@dataclasses.dataclass(eq=False)
class ActivityNetConfig(tfds.core.BuilderConfig):
  """Where the examples come from.

  Attributes:
    packed_dirs: {split: packed split folder}; or else
    feature_dir: folder of v_<id>.csv/.npy files, with
    ann_files: {split: MMAction2 annotation JSON}.
    temporal_dim: T.
    feat_dim: D.
  """
  packed_dirs: dict[str, str] = dataclasses.field(default_factory=dict)
  feature_dir: str = ''
  ann_files: dict[str, str] = dataclasses.field(default_factory=dict)
  temporal_dim: int = 100
  feat_dim: int = 400


def _frames(name: str, record: dict[str, Any], key: str) -> int:
  value = record[key]
  if int(value) != value:
    raise errors.TalError(f'video {name}: {key} must be a whole number, got '
                          f'{value!r}')
  return int(value)


def to_example(name: str, features: np.ndarray,
               record: dict[str, Any]) -> dict[str, Any]:
  """One annotation record + [T, D] features as a tfds example dict."""
  anns = record['annotations']
  return {
      'video_name': name,
      'features': np.asarray(features, np.float32),
      'duration_second': float(record['duration_second']),
      'duration_frame': _frames(name, record, 'duration_frame'),
      'feature_frame': _frames(name, record, 'feature_frame'),
      'segments': np.asarray([a['segment'] for a in anns],
                             np.float64).reshape(-1, 2),
      'labels': [str(a.get('label', '')) for a in anns],
  }


class TalActivitynet(tfds.core.GeneratorBasedBuilder):
  """ActivityNet snippet features + MMAction2 annotations, per video."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}
  BUILDER_CONFIGS = [ActivityNetConfig(name='default')]

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # tfds 4.9.10 resolves a package builder's file through the
    # `importlib_resources` backport, which is not installed; this file is it.
    return epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    return tfds.core.DatasetInfo(
        builder=self,
        description='ActivityNet features in the MMAction2 layout.',
        features=tfds.features.FeaturesDict({
            'video_name': tfds.features.Text(),
            'features': tfds.features.Tensor(
                shape=(cfg.temporal_dim, cfg.feat_dim), dtype=np.float32),
            'duration_second': tfds.features.Scalar(dtype=np.float64),
            'duration_frame': tfds.features.Scalar(dtype=np.int64),
            'feature_frame': tfds.features.Scalar(dtype=np.int64),
            'segments': tfds.features.Tensor(shape=(None, 2),
                                             dtype=np.float64),
            'labels': tfds.features.Sequence(tfds.features.Text()),
        }),
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Local files only.
    cfg = self.builder_config
    if cfg.packed_dirs:
      return {s: self._from_packed(d) for s, d in cfg.packed_dirs.items()}
    if cfg.feature_dir and cfg.ann_files:
      return {s: self._from_files(a) for s, a in cfg.ann_files.items()}
    raise errors.TalError(f'tfds config {cfg.name}: give packed_dirs, or '
                          'feature_dir and ann_files')

  def _generate_examples(self):
    raise NotImplementedError  # The split generators above do the work.

  def _from_packed(self, packed_dir: str) -> Iterator[tuple[str, dict]]:
    cfg = self.builder_config
    videos = activitynet.load_packed(packed_dir)
    if videos.features.shape[1:] != (cfg.temporal_dim, cfg.feat_dim):
      raise errors.TalError(
          f'{packed_dir}: features are {videos.features.shape[1:]}, config '
          f'{cfg.name} expects ({cfg.temporal_dim}, {cfg.feat_dim})')
    for i, name in enumerate(videos.names):
      yield name, to_example(name, videos.features[i], videos.records[i])

  def _from_files(self, ann_file: str) -> Iterator[tuple[str, dict]]:
    cfg = self.builder_config
    records = activitynet.load_annotations(ann_file)
    for name in sorted(records):
      path = activitynet.feature_path(cfg.feature_dir, name)
      x = activitynet.read_features(path, cfg.temporal_dim, cfg.feat_dim)
      yield name, to_example(name, x, records[name])


def build(data_dir: str, name: str = 'default', **config) -> TalActivitynet:
  """Builds (once) dataset 'tal_activitynet/<name>' under `data_dir`.

  Args:
    data_dir: tfds data folder.
    name: config name; the data lands in data_dir/tal_activitynet/<name>/.
    **config: ActivityNetConfig fields (packed_dirs, or feature_dir and
      ann_files; temporal_dim; feat_dim).

  Returns:
    The prepared builder; `builder.as_data_source(split)` reads it.
  """
  builder = TalActivitynet(
      data_dir=os.path.expanduser(data_dir), file_format=FILE_FORMAT,
      config=ActivityNetConfig(name=name, **config))
  builder.download_and_prepare(file_format=FILE_FORMAT)
  return builder
