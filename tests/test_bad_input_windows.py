"""Bad input for the THUMOS14 window configs and the BSN folders of
MMAction2 files: one TalError line naming the file, video or config key
(exit 2 from a CLI), never a traceback nor a silently wrong split."""

import json
import os

import numpy as np
import pytest

import tal_jax  # noqa: F401

from tal_jax import config_utils
from tal_jax import errors
from tal_jax.data import thumos14_windows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIDEO = 'video_validation_0000051'


def _database():
  """Two training videos whose actions each fill a tiny-config window, and
  one test video (OpenTAD's thumos_14_anno.json form)."""
  return {'database': {
      VIDEO: {'subset': 'training', 'duration': 20.0, 'frame': 600,
              'annotations': [
                  {'segment': [2.0, 3.0], 'label': 'BaseballPitch'},
                  {'segment': ['10.0', '12.0'], 'label': 'Ambiguous'}]},
      'video_validation_0000052': {
          'subset': 'training', 'duration': 10.0, 'frame': 300,
          'annotations': [{'segment': [1.0, 3.0], 'label': 'CliffDiving'}]},
      'video_test_0000004': {
          'subset': 'validation', 'duration': 12.0, 'frame': 360,
          'annotations': [{'segment': [1.0, 3.0], 'label': 'CliffDiving'}]}}}


def _layout(tmp_path, database=None):
  """configs/bmn_thumos14.py:tiny on an OpenTAD layout under tmp_path."""
  database = database or _database()
  (tmp_path / 'anno.json').write_text(json.dumps(database))
  os.makedirs(tmp_path / 'f', exist_ok=True)
  rng = np.random.default_rng(0)
  for name, rec in database['database'].items():
    np.save(tmp_path / 'f' / f'{name}.npy',
            rng.random((600 if name == VIDEO else int(rec['frame']), 16),
                       np.float32))
  config = config_utils.load_config(
      os.path.join(ROOT, 'configs/bmn_thumos14.py:tiny'))
  config.data.feature_dir = str(tmp_path / 'f')
  for split in ('train', 'val', 'test'):
    config.data[f'ann_file_{split}'] = str(tmp_path / 'anno.json')
  return config


def test_valid_layout_windows(tmp_path):
  """The layout the cases below break: one window per training video, the
  gt in snippets from the window start ((2 s * 30 - 0) / 5 = 12)."""
  videos = thumos14_windows.load_split(_layout(tmp_path), 'train')
  assert videos.names == [f'{VIDEO}@0', 'video_validation_0000052@0']
  assert [r['annotations'][0]['segment'] for r in videos.records] == [
      [12.0, 18.0], [6.0, 18.0]]


@pytest.mark.parametrize('field, value, match', [
    ('duration', 0, 'duration must be > 0, got 0'),
    ('duration', -5.0, 'duration must be > 0, got -5.0'),
    ('duration', 'x', "duration must be > 0, got 'x'"),
    ('frame', 0, 'frame must be an integer >= 1, got 0'),
    ('frame', 600.5, 'frame must be an integer >= 1, got 600.5'),
    ('annotations', 5, 'annotations is not a list'),
    ('segment', [6.0, 2.0], r'annotation 0: segment \[6.0, 2.0\] ends before '
     'it starts'),
    ('segment', [-4.0, -1.0], r'annotation 0: segment \[-4.0, -1.0\] starts '
     'before 0'),
    ('segment', [2.0], r'annotation 0: segment must be \[start, end\] '
     r'seconds, got \[2.0\]'),
    ('segment', ['a', 2.0], 'annotation 0: segment must be'),
    ('segment', None, 'annotation 0: segment must be'),
    ('label', 'Foo', "annotation 0: label 'Foo' is not a THUMOS14 class"),
])
def test_malformed_record_names_file_video_and_field(tmp_path, field, value,
                                                     match):
  """Before: ZeroDivisionError, TypeError, ValueError (NaN to int, unknown
  label), IndexError; a negative duration, frame 0 or a reversed segment
  dropped the video's windows silently."""
  database = _database()
  rec = database['database'][VIDEO]
  if field in ('segment', 'label'):
    rec['annotations'][0][field] = value
  else:
    rec[field] = value
  config = _layout(tmp_path, database)
  with pytest.raises(errors.TalError,
                     match=f'^{tmp_path}/anno.json: video {VIDEO}: {match}'):
    thumos14_windows.load_split(config, 'train')


def test_nan_duration_in_json(tmp_path):
  config = _layout(tmp_path)
  text = (tmp_path / 'anno.json').read_text().replace('20.0', 'NaN', 1)
  (tmp_path / 'anno.json').write_text(text)
  with pytest.raises(errors.TalError, match='duration must be > 0, got nan'):
    thumos14_windows.load_split(config, 'train')


@pytest.mark.parametrize('database, match', [
    ([], '"database" is not an object'),
    ({VIDEO: 3}, f'video {VIDEO}: record is not an object'),
])
def test_malformed_database(tmp_path, database, match):
  config = _layout(tmp_path)
  (tmp_path / 'anno.json').write_text(json.dumps({'database': database}))
  with pytest.raises(errors.TalError, match=match):
    thumos14_windows.load_split(config, 'train')


@pytest.mark.parametrize('key, value, match', [
    ('window_size', 0, 'window_size=0 must be an integer >= 1'),
    ('sample_stride', -1, 'sample_stride=-1 must be an integer >= 1'),
    ('feature_stride', 0, 'feature_stride=0 must be an integer >= 1'),
    ('window_overlap_ratio', 1.0, r'window_overlap_ratio=1.0 must be in '
     r'\[0, 1\)'),
    ('window_overlap_ratio', 0.99, 'window_overlap_ratio=0.99 must be'),
    ('window_overlap_ratio', -0.5, 'window_overlap_ratio=-0.5 must be'),
    ('test_window_overlap_ratio', 1.0, 'test_window_overlap_ratio=1.0'),
    ('ioa_thresh', 1.5, r'ioa_thresh=1.5 must be in \[0, 1\]'),
    ('fps', 0.0, 'fps=0.0 must be > 0, or -1'),
    ('test_windows', 'fulll', "test_windows='fulll' must be 'test' or"),
])
def test_window_setting_out_of_range(tmp_path, key, value, match):
  """Before: ZeroDivisionError (exit 1) for a zero step, range() ValueError
  for a zero stride; a negative overlap, ioa_thresh or fps 0, or an unknown
  test_windows ran on silently."""
  config = _layout(tmp_path)
  config.data[key] = value
  with pytest.raises(errors.TalError, match=f'^config.data.{match}'):
    thumos14_windows.load_split(config, 'train')


@pytest.mark.parametrize('array, match', [
    (np.zeros((0, 16), np.float32), r'float32 \(0, 16\), expected numbers'),
    (np.zeros((600, 16), 'U3'), r'<U3 \(600, 16\), expected numbers'),
    (np.concatenate([np.zeros((7, 16), np.float32),
                     np.full((593, 16), np.inf, np.float32)]),
     r'NaN or inf in row 10 \(0-based\)'),  # snippet rows: every 5th
    (None, r'cannot read .* \(No data left in file\)'),  # empty file
])
def test_bad_feature_file_names_video_and_file(tmp_path, array, match):
  config = _layout(tmp_path)
  path = tmp_path / 'f' / f'{VIDEO}.npy'
  if array is None:
    path.write_bytes(b'')
  else:
    np.save(path, array)
  with pytest.raises(errors.TalError, match=f'^video {VIDEO}: .*{match}'):
    thumos14_windows.load_split(config, 'train')


def test_block_list_not_text(tmp_path):
  config = _layout(tmp_path)
  (tmp_path / 'b.txt').write_bytes(b'\xff\xfe\x00')
  config.data.block_list = str(tmp_path / 'b.txt')
  with pytest.raises(errors.TalError,
                     match=f'^config.data.block_list {tmp_path}/b.txt: '):
    thumos14_windows.load_split(config, 'train')


@pytest.mark.parametrize('kind, match', [
    ('npz', r'an .npz archive, expected the .npy array \[videos, 101\]'),
    ('nan', r'NaN or inf in row 1 \(video 2\)'),
    ('empty', 'cannot read the UntrimmedNet scores'),
    ('text', r'<U1 \(3, 101\), expected numbers'),
])
def test_untrimmednet_scores_file(tmp_path, kind, match):
  path = tmp_path / ('u.npz' if kind == 'npz' else 'u.npy')
  table = np.zeros((3, 101), np.float32)
  if kind == 'npz':
    np.savez(path, scores=table)
  elif kind == 'nan':
    table[1, 4] = np.nan
    np.save(path, table)
  elif kind == 'text':
    np.save(path, np.full((3, 101), 'a'))
  else:
    path.write_bytes(b'')
  with pytest.raises(errors.TalError, match=f'^{path}: {match}'):
    thumos14_windows.untrimmednet_scores(str(path))
