"""Tests for tal_jax/data/resample.py and tools/resample_features.py."""

import os

import numpy as np
import pytest
import scipy.interpolate

import tal_jax  # pylint: disable=unused-import
from tal_jax import errors
from tal_jax.data import activitynet
from tal_jax.data import resample
from tal_jax.tools import resample_features


def _bsn_loop(data, num_prop, duration_second, duration_frame, num_sample=3,
              pool_type='mean'):
  """BSN's poolData (num_bin=1) written as a plain loop over scipy interp1d."""
  feature_frame = len(data) * 16
  corrected_second = float(feature_frame) / duration_frame * duration_second
  st = 16 / (float(duration_frame) / duration_second)
  if len(data) == 1:
    return np.concatenate([data] * num_prop)
  x = [st / 2 + ii * st for ii in range(len(data))]
  f = scipy.interpolate.interp1d(x, data, axis=0)
  out = []
  for idx in range(num_prop):
    xmin = max(x[0] + 0.0001, 1.0 / num_prop * idx * corrected_second)
    xmax = min(x[-1] - 0.0001, 1.0 / num_prop * (idx + 1) * corrected_second)
    if xmax < x[0] or xmin > x[-1]:
      out.append(np.zeros(data.shape[1]))
      continue
    plen = (xmax - xmin) / (num_sample - 1)
    y = f([xmin + plen * ii for ii in range(num_sample)])
    out.append(y.mean(0) if pool_type == 'mean' else y.max(0))
  return np.stack(out)


def _mmaction2_loop(data, num_proposals, num_sample_bins=3):
  """MMAction2's pool_feature written as a plain loop over scipy interp1d."""
  if len(data) == 1:
    return np.concatenate([data] * num_proposals)
  f = scipy.interpolate.interp1d(list(range(len(data))), data, axis=0)
  start, end = 1e-4, len(data) - 1 - 1e-4
  anchor_size = (end - start) / num_proposals
  ptr, out = start, []
  for _ in range(num_proposals):
    y = f([ptr + i / num_sample_bins * anchor_size
           for i in range(num_sample_bins)])
    out.append(y.mean(0))
    ptr += anchor_size
  return np.stack(out)


def test_bsn_hand_worked():
  # fps 16 -> st = 1 s: snippet centres 0.5, 1.5, 2.5, 3.5; span 4 s.
  # Linear data y = 10*(x - 0.5), so each bin's mean is y at its midpoint.
  data = np.array([[0.0], [10.0], [20.0], [30.0]])
  out = resample.bsn_pool_features(data, 2, duration_second=4.0,
                                   duration_frame=64)
  # bin 0 = [0.5001, 2.0] -> mid 1.25005; bin 1 = [2.0, 3.4999] -> 2.74995.
  np.testing.assert_allclose(out[:, 0], [7.5005, 22.4995], rtol=1e-12)


def test_bsn_zero_bins_for_short_video():
  # Two snippets at 0.5 s and 1.5 s, span 2 s, 10 bins of 0.2 s.
  data = np.array([[0.0, 1.0], [10.0, 1.0]])
  out = resample.bsn_pool_features(data, 10, 2.0, 32)
  np.testing.assert_array_equal(out[[0, 1, 8, 9]], 0.0)
  # bin 2 = [0.5001, 0.6] -> mid 0.55005 -> 0.5005.
  np.testing.assert_allclose(out[2], [0.5005, 1.0], rtol=1e-12)
  assert np.all(out[2:8, 1] == 1.0)


def test_mmaction2_hand_worked():
  data = np.array([[0.0], [3.0], [6.0]])  # y = 3x on snippet indices
  out = resample.mmaction2_pool_features(data, 2)
  # anchors of 0.9999 from 1e-4; sample means at 0.3334 and 1.3333.
  np.testing.assert_allclose(out[:, 0], [1.0002, 3.9999], rtol=1e-12)


def test_single_snippet_repeats():
  data = np.array([[1.0, 2.0]])
  for out in (resample.bsn_pool_features(data, 5, 1.0, 30),
              resample.mmaction2_pool_features(data, 5)):
    np.testing.assert_array_equal(out, np.tile(data, (5, 1)))


@pytest.mark.parametrize('length', [2, 3, 7, 49, 50, 51, 100, 237, 1000])
def test_bsn_matches_loop_on_random_data(length):
  rng = np.random.default_rng(length)
  data = rng.normal(size=(length, 6))
  duration_frame = int(length * 16 + rng.integers(0, 16))
  duration_second = duration_frame / rng.uniform(12.0, 60.0)
  for pool_type in ('mean', 'max'):
    got = resample.bsn_pool_features(data, 100, duration_second,
                                     duration_frame, pool_type=pool_type)
    want = _bsn_loop(data, 100, duration_second, duration_frame,
                     pool_type=pool_type)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
  got5 = resample.bsn_pool_features(data, 37, duration_second, duration_frame,
                                    num_sample_per_bin=5)
  want5 = _bsn_loop(data, 37, duration_second, duration_frame, num_sample=5)
  np.testing.assert_allclose(got5, want5, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('length', [2, 5, 99, 100, 101, 640])
def test_mmaction2_matches_loop_on_random_data(length):
  data = np.random.default_rng(length).normal(size=(length, 4))
  got = resample.mmaction2_pool_features(data, 100)
  np.testing.assert_allclose(got, _mmaction2_loop(data, 100), rtol=1e-12,
                             atol=1e-12)


def test_bad_arguments():
  with pytest.raises(errors.TalError, match='shape'):
    resample.bsn_pool_features(np.zeros((0, 3)), 10, 1.0, 30)
  with pytest.raises(errors.TalError, match='num_sample_per_bin'):
    resample.bsn_pool_features(np.zeros((4, 3)), 10, 1.0, 30,
                               num_sample_per_bin=1)
  with pytest.raises(errors.TalError, match='pool_type'):
    resample.mmaction2_pool_features(np.zeros((4, 3)), 10, pool_type='sum')


def _snippets(tmp_path):
  in_dir = tmp_path / 'snippets'
  in_dir.mkdir()
  rng = np.random.default_rng(0)
  a = rng.normal(size=(40, 3)).astype(np.float32)
  b = rng.normal(size=(7, 3)).astype(np.float32)
  activitynet.write_features_csv(str(in_dir / 'v_a.csv'), a,
                                 significant_digits=9)
  np.save(in_dir / 'v_b.npy', b)
  # The tool parses CSVs as float64, as BSN's pandas does.
  a = activitynet.read_feature_array(str(in_dir / 'v_a.csv'), np.float64)
  return in_dir, a, b.astype(np.float64)


def test_cli_with_annotations(tmp_path):
  in_dir, a, b = _snippets(tmp_path)
  ann = {'v_a': {'duration_second': 25.0, 'duration_frame': 650,
                 'feature_frame': 640, 'annotations': []},
         'v_b': {'duration_second': 4.0, 'duration_frame': 120,
                 'feature_frame': 112, 'annotations': []}}
  errors.write_json(str(tmp_path / 'ann.json'), ann)
  out_dir = tmp_path / 'out'
  resample_features.main(['--in-dir', str(in_dir), '--out-dir', str(out_dir),
                          '--temporal-dim', '10', '--ann-file',
                          str(tmp_path / 'ann.json')])
  assert sorted(os.listdir(out_dir)) == ['v_a.csv', 'v_b.csv']
  got = activitynet.read_features(str(out_dir / 'v_a.csv'), 10, 3)
  want = _bsn_loop(a.astype(np.float64), 10, 25.0, 650).astype(np.float32)
  np.testing.assert_array_equal(got, want)  # 9 digits: exact float32
  got = activitynet.read_features(str(out_dir / 'v_b.csv'), 10, 3)
  want = _bsn_loop(b.astype(np.float64), 10, 4.0, 120).astype(np.float32)
  np.testing.assert_array_equal(got, want)


def test_cli_without_annotations_npy_and_mmaction2(tmp_path):
  in_dir, a, _ = _snippets(tmp_path)
  out_dir = tmp_path / 'out'
  resample_features.main(['--in-dir', str(in_dir), '--out-dir', str(out_dir),
                          '--temporal-dim', '10', '--format', 'npy'])
  got = np.load(out_dir / 'v_a.npy')
  # Without annotations: duration_frame = 16 L, fps 30.
  want = _bsn_loop(a.astype(np.float64), 10, 40 * 16 / 30.0, 40 * 16)
  np.testing.assert_array_equal(got, want.astype(np.float32))
  resample_features.main(['--in-dir', str(in_dir), '--out-dir', str(out_dir),
                          '--temporal-dim', '10', '--format', 'npy',
                          '--method', 'mmaction2'])
  np.testing.assert_array_equal(
      np.load(out_dir / 'v_a.npy'),
      _mmaction2_loop(a.astype(np.float64), 10).astype(np.float32))


def test_cli_errors(tmp_path):
  in_dir, _, _ = _snippets(tmp_path)
  errors.write_json(str(tmp_path / 'ann.json'), {})
  with pytest.raises(errors.TalError, match='video v_a.*not in'):
    resample_features.main(['--in-dir', str(in_dir), '--out-dir',
                            str(tmp_path / 'o'), '--ann-file',
                            str(tmp_path / 'ann.json')])
  with pytest.raises(errors.TalError, match='no .csv or .npy'):
    resample_features.main(['--in-dir', str(tmp_path / 'o2'), '--out-dir',
                            str(tmp_path / 'o')])
