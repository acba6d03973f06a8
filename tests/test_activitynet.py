"""Tests for tal_jax/data/activitynet.py and tools/pack_features.py."""

import json
import math
import os
import re
import tempfile
import warnings

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
import numpy as np
import pytest

import tal_jax  # pylint: disable=unused-import
from tal_jax import errors
from tal_jax.data import activitynet
from tal_jax.tools import pack_features

T, D = 4, 3


def _record(duration=10.0, segments=((1.0, 2.0),)):
  return {'duration_second': duration, 'duration_frame': 300,
          'feature_frame': 288,
          'annotations': [{'segment': list(s), 'label': 'a'}
                          for s in segments]}


def _one_line_error(fn, *args, match):
  with pytest.raises(errors.TalError, match=match) as e:
    fn(*args)
  assert '\n' not in str(e.value)
  return str(e.value)


# ---------------------------------------------------------------- readers


def test_csv_round_trip_with_header(tmp_path):
  x = np.random.default_rng(0).normal(size=(T, D)).astype(np.float32)
  path = str(tmp_path / 'v_a.csv')
  activitynet.write_features_csv(path, x, significant_digits=9)
  with open(path) as f:
    lines = f.read().splitlines()
  assert lines[0] == 'f0,f1,f2' and len(lines) == T + 1
  np.testing.assert_array_equal(activitynet.read_features(path, T, D), x)
  activitynet.write_features_csv(path, x)  # default: 6 significant digits
  np.testing.assert_allclose(activitynet.read_features(path, T, D), x,
                             rtol=5e-6)


def test_csv_values_by_hand(tmp_path):
  path = tmp_path / 'v_a.csv'
  path.write_text('a,b\n1,2.5\r\n-3e2,  4\n\n')  # CRLF, spaces, blank line
  got = activitynet.read_features(str(path), 2, 2)
  np.testing.assert_array_equal(got, [[1.0, 2.5], [-300.0, 4.0]])
  assert got.dtype == np.float32
  assert activitynet.read_feature_array(str(path), np.float64).dtype == (
      np.float64)


def test_npy(tmp_path):
  x = np.arange(T * D, dtype=np.float64).reshape(T, D)
  np.save(tmp_path / 'v_a.npy', x)
  got = activitynet.read_features(str(tmp_path / 'v_a.npy'), T, D)
  np.testing.assert_array_equal(got, x)
  assert got.dtype == np.float32
  np.save(tmp_path / 'v_b.npy', np.zeros(3))
  _one_line_error(activitynet.read_features, str(tmp_path / 'v_b.npy'), T, D,
                  match='v_b.npy: expected a 2-d array')
  np.save(tmp_path / 'v_c.npy', np.array(['x'] * 12).reshape(T, D))
  _one_line_error(activitynet.read_features, str(tmp_path / 'v_c.npy'), T, D,
                  match='v_c.npy: non-numeric dtype')
  (tmp_path / 'v_d.npy').write_bytes(b'')
  _one_line_error(activitynet.read_features, str(tmp_path / 'v_d.npy'), T, D,
                  match='v_d.npy: cannot read .npy')
  np.save(tmp_path / 'v_e.npy', np.array([{'a': 1}], dtype=object))
  _one_line_error(activitynet.read_features, str(tmp_path / 'v_e.npy'), T, D,
                  match='v_e.npy: cannot read .npy')


@pytest.mark.parametrize('text,match', [
    ('h\n1,2,3\n1,2,3\n1,2,3\n', r'shape 3 rows x 3 columns, expected 4 x 3'),
    ('h\n1,2\n1,2\n1,2\n1,2\n', r'shape 4 rows x 2 columns, expected 4 x 3'),
    ('h\n1,2,3\n1,2\n', r'row 3 has 2 columns, row 2 has 3'),
    ('h\n1,2,3\n1,x,3\n', r"non-numeric value 'x'"),
    ('h\n1,2,3\n1,,3\n', r"non-numeric value ''"),
    ('h\n1,2,3\n1,2,3\n1,nan,3\n1,2,3\n', r'nan value in line 4, column 2$'),
    ('h\n1,2,3\n1,2,inf\n1,2,3\n1,2,3\n', r'inf value in line 3, column 3$'),
    ('h\n', r'no feature rows after the header'),
    ('', r'no feature rows after the header'),
])
def test_csv_errors(tmp_path, text, match):
  path = tmp_path / 'v_bad.csv'
  path.write_text(text)
  msg = _one_line_error(activitynet.read_features, str(path), T, D,
                        match=match)
  assert 'v_bad.csv' in msg


def test_missing_and_binary_files(tmp_path):
  _one_line_error(activitynet.read_features, str(tmp_path / 'v_x.csv'), T, D,
                  match='v_x.csv: cannot read')
  _one_line_error(activitynet.read_features, str(tmp_path / 'v_x.npy'), T, D,
                  match='v_x.npy: cannot read')
  _one_line_error(activitynet.feature_path, str(tmp_path), 'v_x',
                  match='video v_x: no feature file')
  (tmp_path / 'v_y.csv').write_bytes(b'h\n\xff\xfe1,2\n')
  _one_line_error(activitynet.read_features, str(tmp_path / 'v_y.csv'), T, D,
                  match='v_y.csv: not a text CSV')


def test_feature_path_name_forms(tmp_path):
  (tmp_path / 'abc.npy').write_bytes(b'')
  (tmp_path / 'v_def.csv').write_text('')
  assert activitynet.feature_path(str(tmp_path), 'v_abc').endswith('abc.npy')
  assert activitynet.feature_path(str(tmp_path), 'def').endswith('v_def.csv')


@settings(max_examples=60, deadline=None, database=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2,
                                               max_side=6),
                  elements=st.floats(width=32, allow_nan=False,
                                     allow_infinity=False)))
def test_csv_round_trip_property(x):
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, 'v.csv')
    activitynet.write_features_csv(path, x, significant_digits=9)
    got = activitynet.read_features(path, *x.shape)
  np.testing.assert_array_equal(got, x)


@settings(max_examples=200, deadline=None, database=None)
@given(st.one_of(
    st.binary(max_size=200),
    st.text(alphabet=st.sampled_from('0123456789.,-+_eEnaifxX \n\r\t\x00\x0b'),
            max_size=200).map(lambda s: s.encode()),
    st.text(max_size=100).map(lambda s: s.encode('utf-8', 'ignore'))))
def test_csv_garbage_raises_only_tal_error(data):
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, 'v.csv')
    with open(path, 'wb') as f:
      f.write(data)
    try:
      x = activitynet.read_feature_array(path)
    except errors.TalError as e:
      assert '\n' not in str(e) and 'v.csv' in str(e)
    else:
      assert x.ndim == 2 and np.all(np.isfinite(x))


# ------------------------------------------------------------ annotations


def _write_ann(tmp_path, data, name='ann.json'):
  path = tmp_path / name
  path.write_text(data if isinstance(data, str) else json.dumps(data))
  return str(path)


@pytest.mark.parametrize('record,match', [
    (_record(segments=((3.0, 2.0),)), r'segment \[3.0, 2.0\] ends before'),
    (_record(segments=((-1.0, 2.0),)), r'lies outside the video'),
    (_record(segments=((10.0, 12.0),)), r'lies outside the video'),
    ({k: v for k, v in _record().items() if k != 'feature_frame'},
     r"missing field 'feature_frame'"),
    (dict(_record(), duration_frame=float('inf')),
     r'duration_frame must be > 0, got inf'),
    (dict(_record(), feature_frame=float('nan')),
     r'feature_frame must be > 0, got nan'),
    (dict(_record(), annotations=[{'label': 'a'}]),
     r'segment must be \[start, end\]'),
    (dict(_record(), annotations=[{'segment': [1.0], 'label': 'a'}]),
     r'segment must be \[start, end\]'),
    (dict(_record(), annotations=[{'segment': [math.nan, 1.0]}]),
     r'segment must be \[start, end\]'),
    (dict(_record(), duration_second=0), r'duration_second must be > 0'),
    (dict(_record(), duration_frame=-1), r'duration_frame must be > 0'),
    (dict(_record(), annotations={}), r'annotations is not a list'),
    ([1, 2], r'record is not an object'),
])
def test_annotation_errors(tmp_path, record, match):
  path = _write_ann(tmp_path, {'v_ok': _record(), 'v_bad': record})
  msg = _one_line_error(activitynet.load_annotations, path, match=match)
  assert msg.startswith(path + ': video v_bad')


def test_annotation_file_errors(tmp_path):
  _one_line_error(activitynet.load_annotations,
                  _write_ann(tmp_path, '{"v_a": '), match='not valid JSON')
  _one_line_error(activitynet.load_annotations,
                  _write_ann(tmp_path, '[1, 2]'), match='expected an object')
  _one_line_error(activitynet.load_annotations, str(tmp_path / 'none.json'),
                  match='annotation file not found')


def test_annotations_kept_as_mmaction2_does(tmp_path):
  data = {'v_zero': _record(segments=((2.0, 2.0),)),
          'v_past_end': _record(segments=((8.0, 11.5),)),
          'v_empty': _record(segments=())}
  got = activitynet.load_annotations(_write_ann(tmp_path, data))
  assert got == data
  videos = activitynet.VideoSet(sorted(got), np.zeros((3, T, D)),
                                [got[n] for n in sorted(got)])
  seg, mask = videos.gt_segments()
  np.testing.assert_array_equal(seg[:, 0], [[0, 0], [8.0, 11.5], [2.0, 2.0]])
  np.testing.assert_array_equal(mask[:, 0], [False, True, True])


# ---------------------------------------------------------- packed splits


def _split(tmp_path, names=('v_a', 'v_b', 'v_c'), bad=()):
  """Writes features (CSV for v_a, .npy otherwise) and an annotation file."""
  feat_dir = tmp_path / 'feat'
  feat_dir.mkdir(exist_ok=True)
  feats = {}
  for i, name in enumerate(names):
    feats[name] = np.full((T, D), i, np.float32) + np.arange(D) / 8
    if name in bad:
      (feat_dir / f'{name}.csv').write_text('h\n1,2\n')
    elif name == 'v_a':
      activitynet.write_features_csv(str(feat_dir / 'v_a.csv'), feats[name])
    else:
      np.save(feat_dir / f'{name}.npy', feats[name])
  ann = _write_ann(tmp_path, {n: _record(5.0 + i) for i, n in
                              enumerate(reversed(names))})
  return str(feat_dir), ann, feats


def test_pack_load_round_trip(tmp_path):
  feat_dir, ann, feats = _split(tmp_path)
  out = str(tmp_path / 'packed')
  packed = activitynet.pack_split(feat_dir, ann, out, T, D)
  assert sorted(os.listdir(out)) == ['features.npy', 'videos.json']
  loaded = activitynet.load_packed(out)
  assert isinstance(loaded.features, np.memmap)
  assert loaded.names == packed.names == ['v_a', 'v_b', 'v_c']  # sorted
  for i, name in enumerate(loaded.names):
    np.testing.assert_array_equal(loaded.features[i], feats[name])
  assert loaded.records == [activitynet.load_annotations(ann)[n]
                            for n in loaded.names]
  np.testing.assert_array_equal(loaded.field('duration_second'),
                                [7.0, 6.0, 5.0])
  sub = activitynet.subset(loaded, ['v_c', 'v_a'])
  np.testing.assert_array_equal(sub.features[:, 0, 0], [2.0, 0.0])


def test_pack_failure_leaves_no_folder(tmp_path):
  feat_dir, ann, _ = _split(tmp_path, bad=('v_b',))
  out = tmp_path / 'packed'
  _one_line_error(activitynet.pack_split, feat_dir, ann, str(out), T, D,
                  match=r'v_b.csv: row 2 has 2 columns|v_b.csv: features')
  assert not out.exists()
  assert [p for p in os.listdir(tmp_path) if 'packed' in p] == []


def test_write_failure_keeps_old_folder(tmp_path, monkeypatch):
  feat_dir, ann, _ = _split(tmp_path)
  out = str(tmp_path / 'packed')
  activitynet.pack_split(feat_dir, ann, out, T, D)
  before = open(os.path.join(out, 'videos.json')).read()

  def broken_dump(*args, **kwargs):
    raise OSError('disk full')
  monkeypatch.setattr(activitynet.json, 'dump', broken_dump)
  with pytest.raises(OSError, match='disk full'):
    activitynet.pack_split(feat_dir, ann, out, T, D)
  assert open(os.path.join(out, 'videos.json')).read() == before
  assert sorted(os.listdir(tmp_path)) == ['ann.json', 'feat', 'packed']


def test_skip_bad_videos_counts(tmp_path):
  names = ('v_a', 'v_b', 'v_c', 'v_d', 'v_e')
  feat_dir, ann, _ = _split(tmp_path, names, bad=('v_b', 'v_d'))
  os.remove(os.path.join(feat_dir, 'v_e.npy'))
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    videos = activitynet.pack_split(feat_dir, ann, str(tmp_path / 'p'), T, D,
                                    skip_bad_videos=True)
  assert videos.names == ['v_a', 'v_c']
  assert 'skipped 3 of 5 videos' in str(caught[0].message)
  with open(tmp_path / 'p' / 'videos.json') as f:
    skipped = json.load(f)['skipped']
  assert len(skipped) == 3 and 'video v_e: no feature file' in skipped[2]


def test_load_split_cache_reuse(tmp_path, monkeypatch):
  feat_dir, ann, feats = _split(tmp_path)
  cache = str(tmp_path / 'cache')
  first = activitynet.load_split(feat_dir, ann, cache, T, D)
  calls = []
  real_pack = activitynet.pack_split
  monkeypatch.setattr(activitynet, 'pack_split',
                      lambda *a, **k: calls.append(a) or real_pack(*a, **k))
  second = activitynet.load_split(feat_dir, ann, cache, T, D)
  assert calls == [] and second.names == first.names
  np.testing.assert_array_equal(second.features, first.features)
  # A changed annotation file gets a new cache folder.
  _write_ann(tmp_path, {'v_a': _record(9.0)})
  third = activitynet.load_split(feat_dir, ann, cache, T, D)
  assert len(calls) == 1 and third.names == ['v_a']
  np.testing.assert_array_equal(third.features[0], feats['v_a'])
  assert len(os.listdir(os.path.join(cache, 'packed'))) == 2
  _one_line_error(activitynet.load_split, str(tmp_path / 'no'), ann, cache,
                  T, D, match='feature folder not found')


def test_load_split_cache_packed_with_skips(tmp_path):
  feat_dir, ann, _ = _split(tmp_path, bad=('v_b',))
  cache = str(tmp_path / 'cache')
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    got = activitynet.load_split(feat_dir, ann, cache, T, D,
                                 skip_bad_videos=True)
  assert got.names == ['v_a', 'v_c']
  _one_line_error(activitynet.load_split, feat_dir, ann, cache, T, D,
                  match='packed with skip_bad_videos and left out 1 videos')
  # The bad CSV fixed in place (the folder's mtime does not change): the
  # cache that left it out is stale and the split is packed again.
  activitynet.write_features_csv(str(tmp_path / 'feat' / 'v_b.csv'),
                                 np.full((T, D), 5, np.float32))
  got = activitynet.load_split(feat_dir, ann, cache, T, D)
  assert got.names == ['v_a', 'v_b', 'v_c']
  np.testing.assert_array_equal(got.features[1], 5)


@pytest.mark.parametrize('damage, match', [
    ('features.npy', r'features.npy: damaged cache file \(.*\); delete '
     r'(\S+) to pack the split again$'),
    ('videos.json', r'videos.json: damaged cache file \(.*\); delete '
     r'(\S+) to pack the split again$'),
])
def test_truncated_packed_cache_names_the_folder(tmp_path, damage, match):
  feat_dir, ann, _ = _split(tmp_path)
  cache = str(tmp_path / 'cache')
  activitynet.load_split(feat_dir, ann, cache, T, D)
  packed = activitynet.packed_cache_dir(cache, feat_dir, ann, T, D)
  path = os.path.join(packed, damage)
  with open(path, 'rb') as f:
    blob = f.read()
  with open(path, 'wb') as f:
    f.write(blob[:len(blob) // 3])
  msg = _one_line_error(activitynet.load_split, feat_dir, ann, cache, T, D,
                        match=match)
  assert re.search(match, msg).group(1) == packed


def test_npy_non_finite_names_row_and_column(tmp_path):
  x = np.zeros((T, D), np.float32)
  x[0, 2] = np.nan
  np.save(tmp_path / 'v_n.npy', x)
  _one_line_error(activitynet.read_features, str(tmp_path / 'v_n.npy'), T, D,
                  match=r'v_n.npy: nan value in row 0, column 2 \(0-based\)$')


def test_pack_features_cli(tmp_path, capsys):
  feat_dir, ann, _ = _split(tmp_path, bad=('v_c',))
  out = str(tmp_path / 'packed')
  args = ['--feature-dir', feat_dir, '--ann-file', ann, '--out', out,
          '--temporal-dim', str(T), '--feat-dim', str(D)]
  with pytest.raises(SystemExit) as e:
    errors.run_cli(lambda: pack_features.main(args))
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and 'v_c.csv' in err
  videos = pack_features.main(args + ['--skip-bad-videos'])
  assert videos.names == ['v_a', 'v_b']
  captured = capsys.readouterr()
  assert 'skipped 1 of 3 videos' in captured.err
  assert '2 videos, features (2, 4, 3)' in captured.out
