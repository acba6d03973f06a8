"""Tests for tal_jax/data/tfds_builder.py: build, then tfds.data_source."""

import json
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tal_jax  # pylint: disable=unused-import
from tal_jax import errors
from tal_jax.data import activitynet
from tal_jax.data import tfds_builder

T, D = 5, 3
RECORDS = {
    'v_b': {'duration_second': 12.5, 'duration_frame': 375,
            'feature_frame': 368,
            'annotations': [{'segment': [1.25, 4.0], 'label': 'Ballet'},
                            {'segment': [6.0, 13.0], 'label': 'Long jump'}]},
    'v_a': {'duration_second': 7.0, 'duration_frame': 210,
            'feature_frame': 208, 'annotations': []},
    'v_c': {'duration_second': 30.0, 'duration_frame': 900,
            'feature_frame': 896,
            'annotations': [{'segment': [0.0, 0.0], 'label': 'Ballet'}]},
}


def _features(name):
  seed = ord(name[-1])
  return np.random.default_rng(seed).normal(size=(T, D)).astype(np.float32)


@pytest.fixture(name='files')
def _files(tmp_path):
  feat_dir = tmp_path / 'feat'
  feat_dir.mkdir()
  for name in RECORDS:
    np.save(feat_dir / f'{name}.npy', _features(name))
  ann = tmp_path / 'ann.json'
  ann.write_text(json.dumps(RECORDS))
  return tmp_path, str(feat_dir), str(ann)


def _check(source):
  assert len(source) == 3
  for i, name in enumerate(sorted(RECORDS)):  # source order: sorted names
    ex, rec = source[i], RECORDS[name]
    assert ex['video_name'].decode() == name
    np.testing.assert_array_equal(ex['features'], _features(name))
    assert ex['features'].dtype == np.float32
    assert ex['duration_second'] == rec['duration_second']
    assert ex['duration_frame'] == rec['duration_frame']
    assert ex['feature_frame'] == rec['feature_frame']
    want = np.array([a['segment'] for a in rec['annotations']]).reshape(-1, 2)
    np.testing.assert_array_equal(ex['segments'], want)
    assert ex['segments'].shape == (len(rec['annotations']), 2)
    assert [l.decode() for l in ex['labels']] == [
        a['label'] for a in rec['annotations']]


def test_packed_round_trip_via_data_source(files):
  root, feat_dir, ann = files
  activitynet.pack_split(feat_dir, ann, str(root / 'packed'), T, D)
  tfds_builder.build(str(root / 'tfds'), name='tiny',
                     packed_dirs={'val': str(root / 'packed')},
                     temporal_dim=T, feat_dim=D)
  source = tfds.data_source('tal_activitynet/tiny', split='val',
                            data_dir=str(root / 'tfds'))
  _check(source)
  assert 'tensorflow' not in sys.modules


def test_feature_dir_round_trip_two_splits(files):
  root, feat_dir, ann = files
  builder = tfds_builder.build(
      str(root / 'tfds'), name='files', feature_dir=feat_dir,
      ann_files={'train': ann, 'val': ann}, temporal_dim=T, feat_dim=D)
  assert set(builder.info.splits) == {'train', 'val'}
  _check(builder.as_data_source('train'))
  _check(tfds.data_source('tal_activitynet/files', split='val',
                          data_dir=str(root / 'tfds')))


def test_errors(files):
  root, feat_dir, ann = files
  activitynet.pack_split(feat_dir, ann, str(root / 'packed'), T, D)
  with pytest.raises(errors.TalError, match='expects'):
    tfds_builder.build(str(root / 'tfds'), name='bad_t',
                       packed_dirs={'val': str(root / 'packed')},
                       temporal_dim=T + 1, feat_dim=D)
  with pytest.raises(errors.TalError, match='give packed_dirs'):
    tfds_builder.build(str(root / 'tfds'), name='empty')
  rec = dict(RECORDS['v_a'], duration_frame=210.5)
  with pytest.raises(errors.TalError, match='video v_a: duration_frame'):
    tfds_builder.to_example('v_a', _features('v_a'), rec)
