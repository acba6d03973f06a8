"""Tests for tal_jax.localizers.bmn.postprocess against MMAction2 1.2.0 (golden fixture).

Fixture: tests/golden/postprocess_bmn.npz, made by
tests/golden/make_postprocess_golden.py with MMAction2's own BMN.predict,
post_processing, soft_nms and ANetMetric.proposals2json.
"""

import json
import os

import numpy as np
import pytest

import tal_jax  # pylint: disable=unused-import  (sets the XLA guard flag)
from tal_jax.localizers.bmn import postprocess
from tal_jax.ops import segments
from tal_jax.ops import soft_nms
from tal_jax import results_io
from conftest import numpy_sorts_like_reference

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden',
                      'postprocess_bmn.npz')
BMN_NMS = (0.4, 0.5, 0.9, 100)
BSN_NMS = (0.75, 0.65, 0.9, 100)
RTOL = 1e-6


@pytest.fixture(scope='module')
def golden():
  with np.load(GOLDEN) as data:
    return {k: data[k] for k in data.files}


@pytest.fixture(scope='module')
def candidates(golden):
  return postprocess.decode_bmn(golden['confidence_map'], golden['start'],
                                golden['end'])


def _split(flat, counts):
  offsets = np.concatenate([[0], np.cumsum(counts)])
  return [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def _numpy_sorts_like_reference(golden, video):
  """Whether this machine's numpy orders the fixture's ties as MMAction2 did."""
  scores = _split(golden['cand'], golden['cand_counts'])[video][:, 2]
  ref = _split(golden['cand_argsort'], golden['cand_counts'])[video]
  return np.array_equal(scores.argsort(), ref)


def _assert_same_proposals(mine, valid, ref, what):
  mine = np.asarray(mine)[np.asarray(valid)]
  assert mine.shape == ref.shape, what
  # Same proposals in the same order: bounds exact, scores to float tolerance.
  np.testing.assert_array_equal(mine[:, :2], ref[:, :2], err_msg=what)
  np.testing.assert_allclose(mine[:, 2], ref[:, 2], rtol=RTOL, err_msg=what)


def test_candidate_cells_order():
  d, s = postprocess.candidate_cells(4)
  np.testing.assert_array_equal(d, [0, 0, 0, 1, 1, 2])
  np.testing.assert_array_equal(s, [0, 1, 2, 0, 1, 0])


def test_decode_matches_mmaction2(golden, candidates):
  proposals = np.asarray(candidates.proposals)
  valid = np.asarray(candidates.valid)
  assert proposals.shape == (7, 4950, 3) and proposals.dtype == np.float64
  refs = _split(golden['cand'], golden['cand_counts'])
  for video, ref in enumerate(refs):
    # Same candidates in the same order, float32 scores bit for bit.
    np.testing.assert_array_equal(proposals[video][valid[video]], ref)


def test_decode_by_hand():
  """T=4: starts {0, 2 (peak)}, ends {3, 1 (> 0.5 max)}."""
  start = np.array([[0.1, 0.2, 0.6, 0.3]], np.float32)
  end = np.array([[0.2, 0.9, 0.4, 0.1]], np.float32)
  cmap = np.zeros((1, 4, 4, 2), np.float32)
  cmap[0, :, :, 0] = 0.5
  cmap[0, :, :, 1] = np.arange(16).reshape(4, 4) / 16
  got = postprocess.decode_bmn(cmap, start, end)
  props = np.asarray(got.proposals)[0][np.asarray(got.valid)[0]]
  # Cells in (d, s) order: (0, 0) -> [0, 1/4]; (0, 2) -> [2/4, 3/4];
  # (2, 0) -> [0, 3/4].
  np.testing.assert_array_equal(props[:, :2], [[0, 0.25], [0.5, 0.75],
                                               [0, 0.75]])
  f = np.float32
  want = [((f(0.1) * f(0.9)) * f(0)) * f(0.5),
          ((f(0.6) * f(0.1)) * f(2 / 16)) * f(0.5),
          ((f(0.1) * f(0.1)) * f(8 / 16)) * f(0.5)]
  np.testing.assert_array_equal(props[:, 2], want)


@pytest.fixture(scope='module')
def bmn_seconds(golden, candidates):
  proposals, valid = soft_nms.post_processing(candidates.proposals,
                                                 candidates.valid, *BMN_NMS)
  seconds = segments.to_seconds(proposals, golden['duration_frame'],
                                   golden['duration_second'])
  return seconds, np.asarray(valid)


@pytest.mark.parametrize('video', range(7))
def test_post_processing_matches_mmaction2(golden, bmn_seconds, video):
  if not _numpy_sorts_like_reference(golden, video):
    pytest.skip("this numpy's unstable argsort orders the ties differently")
  seconds, valid = bmn_seconds
  ref = _split(golden['final'], golden['final_counts'])[video]
  _assert_same_proposals(seconds[video], valid[video], ref, f'video {video}')


def test_batched_equals_per_video(candidates):
  batched = soft_nms.post_processing(candidates.proposals,
                                        candidates.valid, *BMN_NMS)
  for video in range(7):
    single = soft_nms.post_processing(candidates.proposals[video:video + 1],
                                         candidates.valid[video:video + 1],
                                         *BMN_NMS)
    np.testing.assert_array_equal(batched[1][video], single[1][0])
    np.testing.assert_array_equal(batched[0][video], single[0][0])


def test_bmn_post_processing_chunked(golden, candidates):
  """Chunks sorted by candidate count give the per-batch results."""
  counts = postprocess._candidate_counts(golden['start'], golden['end'])
  np.testing.assert_array_equal(counts, np.asarray(candidates.valid).sum(-1))
  whole = soft_nms.post_processing(candidates.proposals, candidates.valid,
                                      *BMN_NMS)
  chunked = postprocess.bmn_post_processing(
      golden['confidence_map'], golden['start'], golden['end'], *BMN_NMS,
      chunk_size=3)
  np.testing.assert_array_equal(chunked[1], whole[1])
  np.testing.assert_array_equal(chunked[0], whole[0])


def test_bsn_parameters_match_mmaction2(golden, candidates):
  proposals, valid = soft_nms.post_processing(candidates.proposals,
                                                 candidates.valid, *BSN_NMS)
  seconds = segments.to_seconds(proposals, golden['duration_frame'],
                                   golden['duration_second'])
  refs = _split(golden['bsn_final'], golden['bsn_counts'])
  for video, ref in enumerate(refs):
    if _numpy_sorts_like_reference(golden, video):
      _assert_same_proposals(seconds[video], valid[video], ref, f'{video}')


def test_soft_nms_float32_matches_mmaction2(golden):
  """Generic [N, 3] float32 soft-NMS (top_k + 1 picks, pick order)."""
  if not numpy_sorts_like_reference():
    pytest.skip("this machine's numpy argsort orders the ties differently")
  proposals = golden['f32_proposals'][None]
  picks, picked = soft_nms.soft_nms(proposals, np.ones((1, 300), bool),
                                       *BSN_NMS)
  assert picks.dtype == np.float32 and picks.shape == (1, 101, 3)
  ref = golden['f32_picks']
  assert np.asarray(picked).all()
  np.testing.assert_array_equal(np.asarray(picks)[0, :, :2], ref[:, :2])
  np.testing.assert_allclose(np.asarray(picks)[0, :, 2], ref[:, 2], rtol=RTOL)


def test_stable_tie_break_without_ties(golden, candidates):
  """On device ordering equals MMAction2's wherever numpy's sort is stable."""
  proposals, valid = soft_nms.post_processing(
      candidates.proposals, candidates.valid, *BMN_NMS, tie_break='stable')
  seconds = segments.to_seconds(proposals, golden['duration_frame'],
                                   golden['duration_second'])
  refs = _split(golden['final'], golden['final_counts'])
  for video in (0, 1, 2, 4, 5, 6):  # 3 has ties numpy orders unstably
    _assert_same_proposals(seconds[video], valid[video], refs[video],
                           f'video {video}')


def test_soft_nms_by_hand():
  """Three proposals: the overlapping one decays, the disjoint one does not."""
  props = np.array([[[0.0, 0.5, 0.9], [0.0, 0.4, 0.8], [0.6, 0.9, 0.7]]])
  picks, picked = soft_nms.soft_nms(props, np.ones((1, 3), bool), 0.4,
                                       0.5, 0.9, 100)
  # Pick [0, .5]: threshold 0.5 + 0.4 * 0.5 = 0.7; iou([0,.4]) = 0.8 > 0.7.
  decayed = 0.8 * np.exp(-0.8**2 / 0.4)
  np.testing.assert_allclose(np.asarray(picks)[0],
                             [[0, 0.5, 0.9], [0.6, 0.9, 0.7],
                              [0, 0.4, decayed]], rtol=1e-12)
  assert np.asarray(picked).all()


def test_threshold_not_fused_into_fma():
  """iou 0.7200000000000001 > 0.5 + 0.4 * 0.55 == 0.72 in numpy (decays).

  With a fused multiply-add the threshold would be 0.7200000000000001 and the
  second proposal would keep its score.
  """
  props = np.array([[[24 / 100, 79 / 100, 0.9], [25 / 100, 99 / 100, 0.5]]])
  iou = (79 / 100 - 25 / 100) / ((79 / 100 - 24 / 100) -
                                 (79 / 100 - 25 / 100) + 99 / 100 - 25 / 100)
  assert iou > 0.5 + 0.4 * (79 / 100 - 24 / 100)
  picks, _ = soft_nms.soft_nms(props, np.ones((1, 2), bool), *BMN_NMS)
  assert np.asarray(picks)[0, 1, 2] == pytest.approx(
      0.5 * np.exp(-iou**2 / 0.4), rel=1e-12)


def test_fewer_candidates_than_top_k():
  props = np.array([[[0.1, 0.2, 0.3], [0.5, 0.7, 0.6], [0.0, 0.0, 0.0]]])
  valid = np.array([[True, True, False]])
  out, keep = soft_nms.post_processing(props, valid, *BMN_NMS)
  assert out.shape == (1, 3, 3)
  np.testing.assert_array_equal(keep, [[True, True, False]])
  np.testing.assert_array_equal(np.asarray(out)[0, :2],
                                [[0.5, 0.7, 0.6], [0.1, 0.2, 0.3]])


def test_to_seconds_factor():
  props = np.array([[[0.0, 0.5, 0.9], [-0.1, 1.2, 0.1]]])
  got = segments.to_seconds(props, [1000], [40.0])
  factor = 992 / 1000 * 40.0  # 1000 // 16 * 16 = 992 frames used
  np.testing.assert_array_equal(got[0], [[0, 0.5 * factor, 0.9],
                                         [0, factor, 0.1]])


def test_results_match_proposals2json(golden, bmn_seconds):
  seconds, valid = bmn_seconds
  got = results_io.proposals_to_results(list(golden['names']), seconds, valid)
  ref = json.loads(str(golden['results_json']))
  assert list(got) == list(ref) == [n[2:] for n in golden['names']]
  for video, (name, rows) in enumerate(ref.items()):
    if not _numpy_sorts_like_reference(golden, video):
      continue
    assert len(got[name]) == len(rows)
    for mine, theirs in zip(got[name], rows):
      assert set(mine) == {'score', 'segment'}
      assert mine['segment'] == theirs['segment']
      assert mine['score'] == pytest.approx(theirs['score'], rel=RTOL)


def test_bad_tie_break():
  with pytest.raises(ValueError, match='tie_break'):
    soft_nms.soft_nms(np.zeros((1, 2, 3)), np.ones((1, 2), bool), 0.4, 0.5,
                         0.9, 100, tie_break='quick')
