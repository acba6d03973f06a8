"""THUMOS14 sliding windows against OpenTAD's own functions.

Fixtures: tests/golden/windows_opentad.{npz,json.gz} from
tests/golden/make_windows_golden.py (OpenTAD commit 3dd7b03).
"""

import gzip
import json
import os

import ml_collections
import numpy as np
import pytest

from tal_jax import errors
from tal_jax import evaluation
from tal_jax.data import thumos14
from tal_jax.data import thumos14_windows
from tal_jax.engine import window_test
from tal_jax.localizers.bmn import windows as bmn_windows
from tal_jax.ops import windows

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, 'golden')


@pytest.fixture(scope='module')
def arrays():
  with np.load(os.path.join(GOLDEN, 'windows_opentad.npz')) as z:
    return dict(z)


@pytest.fixture(scope='module')
def golden():
  with gzip.open(os.path.join(GOLDEN, 'windows_opentad.json.gz'), 'rt') as f:
    return json.load(f)


def test_window_bounds_by_hand():
  # 1000 frames at stride 5: 200 snippets; windows of 128 step 64
  # (200 // 64 = 3 of them), the third moved back to end at snippet 200.
  assert windows.window_bounds(1000, 5, 128, 0.5).tolist() == [
      [0, 128], [64, 192], [72, 200]]
  # Shorter than a window: one, cut short.
  assert windows.window_bounds(100, 5, 128, 0.5).tolist() == [[0, 20]]
  # Exactly aligned, 256 snippets: 256 // 64 = 4 steps, the fourth moved
  # back onto the third (OpenTAD repeats that window).
  assert windows.window_bounds(1280, 5, 128, 0.5).tolist() == [
      [0, 128], [64, 192], [128, 256], [128, 256]]


@pytest.mark.parametrize('case', ['tsn/train', 'tsn/test', 'i3d/train',
                                  'i3d/test', 'small/train', 'small/test'])
def test_windows_equal_opentad(golden, case):
  fixture = golden['windows'][case]
  stride, sample, offset, size, overlap = fixture['setting']
  setting = {'snippet_stride': stride * sample, 'offset_frames': offset,
             'window_size': size, 'overlap': overlap, 'ioa_thresh': 0.9}
  videos = golden['windows']['videos']
  with_labels = case.endswith('train')
  count = 0
  for vid, record in videos.items():
    items = thumos14_windows.split_video(record, setting, thumos14.CLASSES,
                                         with_labels)
    want = fixture['videos'].get(vid, [])
    assert len(items) == len(want), vid
    for got, ref in zip(items, want):
      assert got['start'] == ref['feature_start_idx']
      assert got['end'] - 1 == ref['feature_end_idx']
      assert got['first_frame'] == ref['window_start_frame']
      if with_labels:
        np.testing.assert_allclose(got['segments'],
                                   np.asarray(ref['gt_segments']),
                                   rtol=1e-6, atol=1e-5)
        assert got['labels'].tolist() == ref['gt_labels']
      count += 1
  assert count > 5


def test_gt_completeness_equals_opentad(arrays):
  for anchor, comp, trunc in zip(arrays['ioa_anchors'],
                                 arrays['ioa_completeness'],
                                 arrays['ioa_truncated']):
    got_c, got_t = windows.gt_completeness(arrays['ioa_gt'], anchor)
    np.testing.assert_allclose(got_c, comp, rtol=1e-6)
    np.testing.assert_array_equal(got_t, trunc)


def test_window_features_equal_opentad(arrays):
  for i in range(3):
    start, end = arrays[f'trunc_{i}_bounds']
    feats, mask = windows.window_features(arrays['trunc_feats'], start,
                                          end + 1, 128)
    np.testing.assert_array_equal(feats, arrays[f'trunc_{i}_feats'])
    np.testing.assert_array_equal(mask, arrays[f'trunc_{i}_mask'])


@pytest.mark.parametrize('name', ['default', 'novote', 'prune', 'short'])
def test_batched_nms_equals_opentad(arrays, name):
  sigma, min_score, max_num, vote = arrays[f'nms_{name}_params']
  segs, scores, labels = windows.batched_nms(
      arrays[f'nms_{name}_in_segs'], arrays[f'nms_{name}_in_scores'],
      arrays[f'nms_{name}_in_labels'], sigma, min_score, int(max_num), vote)
  assert len(scores) == len(arrays[f'nms_{name}_scores'])
  np.testing.assert_allclose(scores, arrays[f'nms_{name}_scores'],
                             rtol=2e-6, atol=1e-7)
  np.testing.assert_allclose(segs, arrays[f'nms_{name}_segs'], rtol=1e-6,
                             atol=1e-5)
  np.testing.assert_array_equal(labels, arrays[f'nms_{name}_labels'])


def test_soft_nms_by_hand():
  # Two identical segments: the second decays by exp(-1 / 0.5); a disjoint
  # one keeps its score.
  segs = np.array([[0, 10], [0, 10], [20, 30]], np.float32)
  s, c, idx = windows.soft_nms_1d(segs, np.array([0.9, 0.8, 0.5]), 0.5, 0.)
  assert idx.tolist() == [0, 2, 1]
  np.testing.assert_allclose(c, [0.9, 0.5, 0.8 * np.exp(-2)], rtol=1e-6)


def test_untrimmednet_fusion_equals_opentad(arrays):
  scores_of = thumos14_windows.untrimmednet_scores('')
  for vid in ('video_test_0000004', 'video_test_0000131'):
    segs, labels, scores = windows.untrimmednet_fusion(
        scores_of(vid), arrays['fusion_segs'], arrays['fusion_scores'], 2)
    np.testing.assert_array_equal(segs, arrays[f'fusion_{vid}_segs'])
    np.testing.assert_array_equal(labels, arrays[f'fusion_{vid}_labels'])
    np.testing.assert_allclose(scores, arrays[f'fusion_{vid}_scores'],
                               rtol=1e-7)


def _test_config(max_duration, per_window, per_video):
  return ml_collections.ConfigDict({
      'test': {'nms_sigma': 0.3, 'nms_min_score': 0.0001,
               'nms_max_seg_num': per_window, 'nms_voting_thresh': 0.95,
               'proposal_max_seg_num': per_video, 'classifier_topk': 2,
               'max_duration': max_duration}})


def _bmn_windows(arrays, golden, config):
  """Per-window seconds from the golden BMN outputs, tal_jax's way."""
  tem, iou = arrays['bmn_tem_probs'], arrays['bmn_iou_probs']
  n, _, t = tem.shape
  conf = np.zeros((n, t, t, 2), np.float32)
  conf[:, :iou.shape[2]] = np.transpose(iou, (0, 2, 3, 1))
  props, valid = bmn_windows.decode_windows(
      (conf, tem[:, 0], tem[:, 1]), config.test)
  per_window = {}
  for b, meta in enumerate(golden['bmn']['metas']):
    window = {'snippet_stride': meta['snippet_stride'],
              'first_frame': meta['window_start_frame'],
              'offset_frames': meta['offset_frames'], 'fps': meta['fps'],
              'duration': meta['duration']}
    secs = window_test.window_seconds(props[b][valid[b]], window, t)
    per_window.setdefault(meta['video_name'], []).append(
        (secs[:, :2], secs[:, 2]))
  return per_window


def _by_score(items):
  """Items by descending score, then segment: torch's final (unstable) sort
  orders equal scores its own way."""
  def key(item):
    a, b = item['segment']
    empty = not a < b  # NaN (OpenTAD) or zero-length (tal_jax)
    return (-item['score'], item.get('label', ''),
            (-1., -1.) if empty else (round(a, 2), round(b, 2)))
  return sorted(items, key=key)


def _check_items(got, want):
  """Same items; where OpenTAD's voting made a zero-length segment NaN
  (0/0), tal_jax keeps the zero-length segment."""
  assert len(got) == len(want)
  got, want = _by_score(got), _by_score(want)
  got_segs = np.array([g['segment'] for g in got])
  want_segs = np.array([w['segment'] for w in want])
  nan = np.isnan(want_segs).any(axis=1)
  np.testing.assert_allclose(got_segs[~nan], want_segs[~nan], atol=0.0101)
  np.testing.assert_array_equal(got_segs[nan, 0], got_segs[nan, 1])
  np.testing.assert_allclose([g['score'] for g in got],
                             [w['score'] for w in want], atol=1.01e-4)


def test_bmn_window_detections_equal_opentad(arrays, golden):
  config = _test_config(golden['bmn']['dscale'], 200, 200)
  per_window = _bmn_windows(arrays, golden, config)
  _, detections = window_test.video_results(
      per_window, thumos14_windows.untrimmednet_scores(''), config.test)
  for vid, want in golden['bmn']['detections'].items():
    _check_items(detections[vid], want)
    assert ([i['label'] for i in _by_score(detections[vid])] ==
            [i['label'] for i in _by_score(want)])


def test_bmn_window_proposals_equal_opentad(arrays, golden):
  config = _test_config(golden['bmn']['dscale'], 300, 300)
  per_window = _bmn_windows(arrays, golden, config)
  proposals, _ = window_test.video_results(
      per_window, thumos14_windows.untrimmednet_scores(''), config.test)
  for vid, want in golden['bmn']['proposals'].items():
    got = [{'segment': p[:2].tolist(), 'score': float(p[2])}
           for p in proposals[vid]]
    _check_items(got, want)


def test_thumos14_map_equals_opentad(golden, real_data):
  gt = json.load(open(real_data('thumos_gt.json')))['database']
  gt = {v: r['annotations'] for v, r in gt.items() if r['subset'] == 'test'}
  got = evaluation.thumos14_opentad_map(gt, golden['map']['detections'])
  want = golden['map']['metrics']
  for t in (0.3, 0.4, 0.5, 0.6, 0.7):
    assert got[f'mAP@{t:.2f}'] == pytest.approx(want[f'mAP@{t}'], abs=1e-9)
  assert got['average_mAP'] == pytest.approx(want['average_mAP'], abs=1e-9)


def test_thumos14_ar_an_by_hand():
  # One video, two gts; proposals exactly on the first gt only: recall 0.5 at
  # every tIoU threshold, from the first proposal on.
  gt = {'v': np.array([[0., 10.], [20., 30.]])}
  props = {'v': np.array([[0., 10., 1.]] * 1000)}
  ar = evaluation.thumos14_ar_an(gt, props)
  assert ar == {f'AR@{n}': 0.5 for n in (50, 100, 200, 500, 1000)}


def test_bad_inputs_name_the_file_or_video(tmp_path):
  scores_of = thumos14_windows.untrimmednet_scores('')
  with pytest.raises(errors.TalError, match='video_test_0001570'):
    scores_of('video_test_0001570')  # a row the shipped file lacks
  with pytest.raises(errors.TalError, match='not a THUMOS14 test video'):
    scores_of('my_video')
  bad = tmp_path / 'unet.npy'
  np.save(bad, np.zeros((3, 20), np.float32))
  with pytest.raises(errors.TalError, match='expected'):
    thumos14_windows.untrimmednet_scores(str(bad))
  ann = tmp_path / 'anno.json'
  ann.write_text(json.dumps({'database': {'v1': {'subset': 'training',
                                                 'duration': 10.0}}}))
  with pytest.raises(errors.TalError, match='v1: no "frame"'):
    thumos14_windows.read_database(str(ann), 'training', '')
  with pytest.raises(errors.TalError, match='no video of subset'):
    thumos14_windows.read_database(str(ann), 'validation', '')
  with pytest.raises(errors.TalError, match='block_list'):
    thumos14_windows.read_database(str(ann), 'training',
                                   str(tmp_path / 'missing.txt'))


def test_to_video_seconds_by_hand():
  # I3D: snippets of 4 frames, offset 8, window from frame 400, 30 fps:
  # snippet 10 -> (10 * 4 + 400 + 8) / 30 = 14.9333 s; clipped to [0, 20].
  got = windows.to_video_seconds(np.array([[10., 20.], [-200., 200.]]), 4,
                                 400, 8, 30., 20.)
  np.testing.assert_allclose(got, [[448 / 30, 488 / 30], [0., 20.]],
                             rtol=1e-6)


def test_remove_duplicate_annotations_by_hand():
  anns = [{'segment': [1.0, 2.0], 'label': 'a'},
          {'segment': [1.0005, 2.0], 'label': 'a'},   # repeat within 1e-3
          {'segment': [1.0, 2.0], 'label': 'b'},      # other label: kept
          {'segment': [3.0, 3.0], 'label': 'a'},      # zero length: dropped
          {'segment': ['4.0', '5.5'], 'label': 'a'}]  # strings, as gtad's json
  kept = evaluation.remove_duplicate_annotations(anns)
  assert kept == [anns[0], anns[2], anns[4]]
