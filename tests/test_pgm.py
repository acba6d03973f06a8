"""BSN PGM (candidates, BSP features), PEM post-processing vs MMAction2 1.2.0.

Fixtures: tests/golden/bsn_pgm.npz and bsn_pem.npz (make_bsn_golden.py): the
reference ran MMAction2's own generate_candidate_proposals and
generate_bsp_feature on TEM CSVs and proposal CSVs written as MMAction2 writes
them, so the float32 round trips are part of what is compared.
"""

import json
import os

import tal_jax  # noqa: F401  (sets the XLA flag before JAX starts)
import numpy as np
import pytest

from tal_jax.localizers.bsn import pgm
from tal_jax.errors import TalError
from tal_jax.localizers.bsn import model as bsn
from conftest import numpy_sorts_like_reference

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden')


@pytest.fixture(scope='module')
def ref():
  g = dict(np.load(os.path.join(GOLDEN, 'bsn_pgm.npz'), allow_pickle=False))
  g['records'] = json.loads(str(g['records_json']))
  g['names'] = list(g['records'])
  return g


@pytest.fixture(scope='module')
def pem_ref():
  return dict(np.load(os.path.join(GOLDEN, 'bsn_pem.npz'), allow_pickle=False))


def _rows(a):
  """The rows of [P, C] `a` in lexicographic order."""
  return a[np.lexsort(a.T[::-1])]


def _assert_same_proposals(mine, theirs, what):
  """MMAction2's proposals [P, 7] (tmin, tmax, ..., score at 4) exactly;
  where this machine's numpy orders equal scores otherwise than the reference
  machine's, the same rows, by non-increasing score."""
  if numpy_sorts_like_reference():
    np.testing.assert_array_equal(mine, theirs, err_msg=what)
    return
  np.testing.assert_array_equal(_rows(mine), _rows(theirs), err_msg=what)
  assert (np.diff(mine[:, 4]) <= 0).all(), what


def _assert_same_features(props, feats, ref_props, ref_feats, what):
  """BSP features [K, 32] of the top-K proposals exactly; where this
  machine's numpy orders ties otherwise, equal features for every proposal
  both top-K lists hold, and the lists differ only in proposals scored as
  MMAction2's K-th."""
  if numpy_sorts_like_reference():
    np.testing.assert_array_equal(feats, ref_feats, err_msg=what)
    return
  assert feats.shape == ref_feats.shape, what
  k = len(ref_feats)
  theirs = {tuple(p[:2]): f for p, f in zip(ref_props[:k], ref_feats)}
  for p, f in zip(props[:k], feats):
    if tuple(p[:2]) in theirs:
      np.testing.assert_array_equal(f, theirs[tuple(p[:2])], err_msg=what)
    else:
      assert p[4] == ref_props[k - 1, 4], what


@pytest.fixture(scope='module')
def generated(ref):
  table = pgm.tem_result_table(ref['tem_output'])
  gts = [pgm.pgm_gt_segments(ref['records'][n], n) for n in ref['names']]
  return table, pgm.generate_candidate_proposals(table, gts, 0.5)


def test_candidates_identical(ref, generated):
  _, props = generated
  for i, name in enumerate(ref['names']):
    assert props[i].dtype == np.float64
    _assert_same_proposals(props[i], ref[f'proposals_{i}'], name)
  # The fixture covers score ties (quantised video) and all-candidate bins.
  scores = ref['proposals_1'][:, 4]
  assert len(np.unique(scores)) < len(scores) / 4
  assert len(ref['proposals_2']) == 100 * 99 // 2


def test_bsp_features_identical(ref, generated):
  table, props = generated
  feats = pgm.generate_bsp_feature(table, props, top_k=1000)
  for i, name in enumerate(ref['names']):
    assert feats[i].shape == (min(len(props[i]), 1000), 32)
    _assert_same_features(props[i], feats[i], ref[f'proposals_{i}'],
                          ref[f'bsp_{i}'], name)
  train = pgm.generate_bsp_feature(table[:1], props[:1], top_k=500)[0]
  np.testing.assert_array_equal(train, ref['bsp500_0'])


def test_proposal_generation_in_memory(ref, generated):
  gts = [pgm.pgm_gt_segments(ref['records'][n], n) for n in ref['names']]
  props, feats = pgm.proposal_generation(ref['tem_output'][1:2], gts[1:2],
                                         top_k=1000)
  _assert_same_proposals(props[0], ref['proposals_1'], 'in memory')
  _assert_same_features(props[0], feats[0], ref['proposals_1'], ref['bsp_1'],
                        'in memory')


def test_tem_result_table_matches_csv_round_trip():
  out = np.random.default_rng(0).random((2, 7, 3)).astype(np.float32)
  table = pgm.tem_result_table(out)
  assert table.shape == (2, 7, 5) and table.dtype == np.float32
  np.testing.assert_array_equal(table[..., :3], out)
  np.testing.assert_array_equal(table[0, :, 3], np.float32(np.arange(7) / 7))
  assert table[1, -1, 4] == 1.0


def test_boundary_candidates_by_hand():
  s = np.array([[0.1, 0.3, 0.2, 0.2, 0.9, 0.5, 0.46, 0.4, 0.3, 0.8]],
               np.float32)
  # bins 0 and 9 always; 1 and 4 peaks; 5, 6 > 0.45 = 0.5 * max; 2-3 no.
  np.testing.assert_array_equal(
      pgm.boundary_candidates(s, 0.5)[0],
      [1, 1, 0, 0, 1, 1, 1, 0, 0, 1])


def test_candidates_by_hand():
  # T=4: starts at bins 0 and 3, ends at bins 0, 2 (peak) and 3.
  tem = np.zeros((1, 4, 3), np.float32)
  tem[0, :, 1] = [0.8, 0.1, 0.05, 0.2]
  tem[0, :, 2] = [0.1, 0.0, 0.3, 0.25]
  props = pgm.generate_candidate_proposals(tem, [np.array([[0.0, 0.5]])])[0]
  # pairs tmin < tmax: (0.125, 0.625) 0.8*0.3 and (0.125, 0.875) 0.8*0.25.
  np.testing.assert_allclose(props[:, :5], [
      [0.125, 0.625, 0.8, 0.3, 0.24], [0.125, 0.875, 0.8, 0.25, 0.2]],
                             rtol=1e-6)
  np.testing.assert_allclose(props[:, 5], [0.375 / 0.625, 0.375 / 0.875])
  np.testing.assert_allclose(props[:, 6], [0.75, 0.375 / 0.75])


def test_window_means_match_numpy_mean():
  values = np.random.default_rng(1).random((50, 49)) * 10.0**np.arange(49)[
      None, ::-1] % 7
  got = pgm._window_means(values, 16, 3)
  want = np.array([[np.mean(v[k * 3:k * 3 + 4]) for k in range(16)]
                   for v in values])
  np.testing.assert_array_equal(got, want)


def test_pgm_gt_segments_unclipped_and_errors():
  record = {'duration_second': 10.0, 'duration_frame': 100,
            'feature_frame': 80, 'annotations': [{'segment': [2.0, 9.0]}]}
  np.testing.assert_allclose(pgm.pgm_gt_segments(record), [[0.25, 1.125]])
  with pytest.raises(TalError, match='v_x'):
    pgm.pgm_gt_segments({'annotations': []}, 'v_x')


def _pem_inputs(ref, outputs, k=1000):
  n = len(ref['names'])
  props = np.zeros((n, k, 7), np.float32)
  pem_out = np.zeros((n, k), np.float32)
  valid = np.zeros((n, k), bool)
  for i in range(n):
    p = ref[f'proposals_{i}'].astype(np.float32)[:k]
    props[i, :len(p)], valid[i, :len(p)] = p, True
    pem_out[i, :len(p)] = outputs[i]
  return props, pem_out, valid


def _check_results(ref, pem_ref, picks, ok):
  recs = [ref['records'][n] for n in ref['names']]
  seconds = pgm.to_seconds(picks, [r['duration_frame'] for r in recs],
                           [r['duration_second'] for r in recs])
  for i in range(len(recs)):
    want = pem_ref[f'result_{i}']
    got = seconds[i][ok[i]]
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-5


def test_pem_post_processing(ref, pem_ref):
  outputs = [pem_ref[f'pem_output_{i}'] for i in range(len(ref['names']))]
  picks, ok = pgm.pem_post_processing(*_pem_inputs(ref, outputs))
  assert picks.shape == (4, 100, 3) and ok.all()
  _check_results(ref, pem_ref, picks, ok)


def test_pem_forward_then_post_processing(ref, pem_ref):
  import jax  # pylint: disable=g-import-not-at-top
  sd = {k[3:]: v for k, v in pem_ref.items() if k.startswith('sd/')}
  params = bsn.params_from_state_dict(sd)
  apply = jax.jit(bsn.PEM().apply)
  outputs = []
  for i in range(len(ref['names'])):
    feature = ref[f'bsp_{i}'].astype(np.float32)
    out = np.asarray(apply({'params': params}, feature))
    assert np.abs(out - pem_ref[f'pem_output_{i}']).max() <= 1e-5
    outputs.append(out)
  _check_results(ref, pem_ref, *pgm.pem_post_processing(
      *_pem_inputs(ref, outputs)))


def test_to_seconds_float32():
  picks = np.array([[[0.1, 0.7, 0.5]]], np.float32)
  sec = pgm.to_seconds(picks, [1000], [33.3])
  duration = np.float32(992 / 1000 * 33.3)
  assert sec[0, 0, 0] == np.float32(0.1) * duration
  assert sec[0, 0, 1] == np.float32(0.7) * duration
  assert sec[0, 0, 2] == np.float32(0.5)
