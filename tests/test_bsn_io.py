"""MMAction2's BSN files: byte layout, float32 round trips, errors."""

import os

import tal_jax  # noqa: F401
import numpy as np
import pytest

from tal_jax.localizers.bsn import files as bsn_io
from tal_jax.localizers.bsn import targets as bsn_targets
from tal_jax.localizers.bsn import pgm
from tal_jax.errors import TalError


def _savetxt(path, rows, header):
  """What MMAction2 runs (ANetMetric.dump_results, bsn_proposal_generation)."""
  np.savetxt(path, rows, header=header, delimiter=',', comments='')


def test_tem_csv_bytes_and_round_trip(tmp_path):
  out = np.random.default_rng(0).random((10, 3)).astype(np.float32)
  tmin, tmax = bsn_targets.tem_anchors(10)
  ours, theirs = tmp_path / 'a.csv', tmp_path / 'b.csv'
  bsn_io.write_tem_result(str(ours), out)
  # MMAction2's TEM.predict stacks float32 outputs with float64 anchors.
  _savetxt(theirs, np.stack((out[:, 0], out[:, 1], out[:, 2], list(tmin),
                             list(tmax)), axis=1), bsn_io.TEM_HEADER)
  assert ours.read_bytes() == theirs.read_bytes()
  rows = bsn_io.read_tem_result(str(ours))
  want = np.loadtxt(theirs, dtype=np.float32, delimiter=',', skiprows=1)
  np.testing.assert_array_equal(rows, want)
  np.testing.assert_array_equal(rows, pgm.tem_result_table(out[None])[0])
  assert not [p for p in os.listdir(tmp_path) if p.startswith('.')]


def test_proposal_csv_and_feature_round_trip(tmp_path):
  rng = np.random.default_rng(1)
  props = rng.random((6, 7))
  props[:, :2].sort(axis=1)  # tmin <= tmax, as PGM writes them
  path = bsn_io.video_path(str(tmp_path), 'v_x', '.csv')
  bsn_io.write_pgm_proposals(path, props)
  _savetxt(tmp_path / 'ref.csv', props, bsn_io.PGM_HEADER)
  assert open(path, 'rb').read() == (tmp_path / 'ref.csv').read_bytes()
  np.testing.assert_array_equal(bsn_io.read_pgm_proposals(path),
                                props.astype(np.float32))
  assert bsn_io.read_pgm_proposals(path, top_k=4).shape == (4, 7)
  feats = rng.random((6, 32))
  fpath = str(tmp_path / 'v_x.npy')
  bsn_io.write_bsp_feature(fpath, feats)
  np.testing.assert_array_equal(np.load(fpath), feats)
  got = bsn_io.read_bsp_feature(fpath, top_k=5)
  assert got.dtype == np.float32
  np.testing.assert_array_equal(got, feats[:5].astype(np.float32))


def test_single_row_proposal_file_stays_2d(tmp_path):
  path = str(tmp_path / 'one.csv')
  bsn_io.write_pgm_proposals(path, np.ones((1, 7)) * 0.5)
  assert bsn_io.read_pgm_proposals(path).shape == (1, 7)


@pytest.mark.parametrize('content, message', [
    ('tmin,tmax\n1,2\n', 'expected header'),
    ('action,start,end,tmin,tmax\n1,2,3\n1,2,3\n', 'malformed|expected rows'),
    ('action,start,end,tmin,tmax\n', 'expected rows'),
    ('action,start,end,tmin,tmax\n1,2,3,4,x\n1,2,3,4,5\n', 'malformed'),
    ('action,start,end,tmin,tmax\n1,2,3,4,nan\n1,2,3,4,5\n',
     "nan value in column 'tmax' of line 2$"),
])
def test_bad_tem_csv_raises(tmp_path, content, message):
  path = tmp_path / 'v_bad.csv'
  path.write_text(content)
  with pytest.raises(TalError, match=message) as info:
    bsn_io.read_tem_result(str(path))
  assert 'v_bad.csv' in str(info.value) and '\n' not in str(info.value)


def test_missing_and_bad_files_raise(tmp_path):
  with pytest.raises(TalError, match='cannot read'):
    bsn_io.read_pgm_proposals(str(tmp_path / 'none.csv'))
  with pytest.raises(TalError, match='not found'):
    bsn_io.read_bsp_feature(str(tmp_path / 'none.npy'))
  bad = tmp_path / 'bad.npy'
  bad.write_bytes(b'not numpy')
  with pytest.raises(TalError, match='bad.npy'):
    bsn_io.read_bsp_feature(str(bad))
  np.save(tmp_path / 'vec.npy', np.ones(3))
  with pytest.raises(TalError, match='2-d'):
    bsn_io.read_bsp_feature(str(tmp_path / 'vec.npy'))


def test_failed_write_keeps_old_file(tmp_path):
  path = str(tmp_path / 'v.csv')
  bsn_io.write_pgm_proposals(path, np.zeros((2, 7)))
  before = open(path).read()
  with pytest.raises(ValueError):
    bsn_io.write_pgm_proposals(path, np.zeros((2, 5)))
  assert open(path).read() == before
  assert sorted(os.listdir(tmp_path)) == ['v.csv']
