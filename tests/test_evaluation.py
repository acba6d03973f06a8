"""Tests for tal_jax.evaluation: MMAction2 goldens, hand-worked cases, real
data.

Goldens come from tests/golden/make_metrics_golden.py (MMAction2 1.2.0's own
functions); equality is required to 1e-9.
"""

import csv
import json
import os
import warnings

import tal_jax  # pylint: disable=unused-import
import numpy as np
import pytest

from tal_jax import evaluation as ev
from tal_jax.errors import TalError

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden')


def _golden(name):
  with open(os.path.join(GOLDEN, f'metrics_{name}.json')) as f:
    return json.load(f)


# ------------------------------------------------------------------ IoU


def test_pairwise_temporal_iou_hand_worked():
  cand = np.array([[0., 2.], [1., 3.], [5., 5.]])
  tgt = np.array([[1., 3.], [5., 5.]])
  iou, iop = ev.pairwise_temporal_iou(cand, tgt, calculate_overlap_self=True)
  assert iou.dtype == np.float32 and iou.shape == (2, 3)
  np.testing.assert_allclose(iou[0], [1 / 3, 1., 0.], rtol=1e-7)
  assert iou[1, 0] == 0 and np.isnan(iou[1, 2])  # 0/0 as upstream
  np.testing.assert_allclose(iop[0, :2], [0.5, 1.0])
  np.testing.assert_allclose(ev.temporal_iop(cand[:2], tgt[:1]), [[0.5, 1.]])
  one = ev.pairwise_temporal_iou(np.array([0., 2.]), tgt)
  assert one.shape == (2,) and one[0] == np.float32(1 / 3)


def test_iou_float32_arithmetic_like_mmaction2():
  # float32 inputs: intersection and union in float32, division in float64.
  c = np.array([[0.1, 0.7]], np.float32)
  t = np.array([[0.3, 0.9]], np.float32)
  inter = np.float32(0.7) - np.float32(0.3)
  union = (np.float32(0.9) - np.float32(0.3)) + (
      np.float32(0.7) - np.float32(0.1)) - inter
  expected = np.float32(np.float64(inter) / np.float64(union))
  assert ev.pairwise_temporal_iou(c, t)[0, 0] == expected


def test_match_video_ids_either_way():
  m = ev.match_video_ids(['abc', 'v_def'], ['v_abc', 'def', 'abc', 'zzz'])
  assert m == {'v_abc': 'abc', 'def': 'v_def', 'abc': 'abc', 'zzz': None}


# ---------------------------------------------------------------- AR@AN


def test_ar_an_golden():
  d = _golden('ar_an')
  gt = {k: np.array(v) for k, v in d['ground_truth'].items()}
  props = {k: np.array(v).reshape(-1, 3) for k, v in d['proposals'].items()}
  assert any(len(p) == 0 for p in props.values())
  for case in d['cases']:
    recall, avg, ppv, auc = ev.average_recall_at_avg_proposals(
        gt, props, d['total_num_proposals'], case['max_avg_proposals'])
    np.testing.assert_allclose(recall, case['recall'], rtol=0, atol=1e-9)
    np.testing.assert_allclose(avg, case['avg_recall'], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ppv, case['proposals_per_video'], rtol=0,
                               atol=1e-9)
    assert abs(auc - case['auc']) < 1e-9


def test_ar_an_hand_worked():
  # One gt [0, 10]; best-scored proposal has IoU 0.62 (hits 0.5, 0.55, 0.6),
  # the second IoU 1. 2 proposals, AN 100 -> AN point j keeps min(j, 2).
  gt = {'a': np.array([[0., 10.]])}
  props = {'a': np.array([[0., 6.2, 0.9], [0., 10., 0.5]])}
  recall, avg, ppv, auc = ev.average_recall_at_avg_proposals(gt, props, 2)
  np.testing.assert_allclose(recall[:, 0], [1, 1, 1] + [0] * 7)
  np.testing.assert_allclose(avg[:3], [0.3, 1.0, 1.0])
  np.testing.assert_allclose(ppv, np.arange(1, 101))
  # trapz: (0.3 + 1) / 2 over [1, 2] + 1.0 over [2, 100] = 98.65 of 100.
  assert abs(auc - 98.65) < 1e-9
  m = ev.ar_an_metrics({'v_a': gt['a']}, props)
  assert m == pytest.approx({'AR@1': 0.3, 'AR@5': 1.0, 'AR@10': 1.0,
                             'AR@100': 1.0, 'AUC': 98.65}, abs=1e-12)


def test_ar_an_missing_video_zero_recall_and_warning():
  gt = {'a': np.array([[0., 10.]]), 'b': np.array([[0., 5.], [6., 8.]])}
  props = {'a': np.array([[0., 10., 0.9]])}
  with pytest.warns(UserWarning, match='1 of 2 ground-truth videos'):
    recall, _, _, _ = ev.average_recall_at_avg_proposals(gt, props, 1)
  np.testing.assert_allclose(recall[:, -1], 1 / 3)  # 1 of 3 gt segments


def test_ar_an_v_prefix_and_unknown_videos():
  gt = {'v_a': np.array([[0., 10.]]), 'b': np.array([[2., 4.]])}
  props = {'a': np.array([[0., 10., 0.9]]), 'v_b': np.array([[2., 4., .5]]),
           'c': np.array([[0., 1., 1.]])}
  with pytest.warns(UserWarning, match='1 proposal videos are not in'):
    m = ev.ar_an_metrics(gt, props)
  # 3 proposals counted in the total (as ANetMetric), 2 videos: each video
  # keeps int(1 * 100 * 2 / 3) = 1 of its 1 proposal.
  assert m['AR@100'] == 1.0


def test_ar_an_zero_length_gt_never_recalled():
  gt = {'a': np.array([[3., 3.], [0., 10.]])}
  props = {'a': np.array([[3., 3., 0.9], [0., 10., 0.8]])}
  recall, _, _, _ = ev.average_recall_at_avg_proposals(gt, props, 2)
  assert recall.max() == 0.5  # the zero-length gt (IoU NaN or 0) never hits


# ---------------------------------------------------------------- mAP


@pytest.mark.parametrize('name', ['anet_map', 'anet_map_dense'])
def test_activitynet_map_golden(name):
  d = _golden(name)
  gt = {k[2:]: v['annotations'] for k, v in d['anno'].items()}
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # anet_map has an unknown video
    ap, classes = ev.detection_ap_table(gt, d['results'],
                                        ev.ANET_TIOU_THRESHOLDS)
    m = ev.activitynet_map(gt, d['results'])
  assert classes == d['class_order']
  np.testing.assert_allclose(ap, d['ap'], rtol=0, atol=1e-9)
  got = [m[f'mAP@{t:.2f}'] for t in ev.ANET_TIOU_THRESHOLDS]
  np.testing.assert_allclose(got, d['mAP'], rtol=0, atol=1e-9)
  assert abs(m['average_mAP'] - d['average_mAP']) < 1e-9


def test_activitynet_map_golden_unknown_video_warning():
  d = _golden('anet_map')
  gt = {k[2:]: v['annotations'] for k, v in d['anno'].items()}
  with pytest.warns(UserWarning, match='1 predictions are for videos'):
    ev.activitynet_map(gt, d['results'])


def test_thumos_ap_golden():
  d = _golden('thumos_ap')
  with pytest.warns(UserWarning, match='1 predictions are for videos'):
    ap, classes = ev.detection_ap_table(
        d['ground_truth'], d['results'], ev.THUMOS_TIOU_THRESHOLDS,
        'official', d['classes'], np.float32)
  assert classes == d['classes']
  np.testing.assert_allclose(ap.T, d['ap'], rtol=0, atol=1e-9)
  with pytest.warns(UserWarning):
    m = ev.thumos14_map(d['ground_truth'], d['results'],
                        class_names=d['classes'])
  assert list(m) == ['mAP@0.30', 'mAP@0.40', 'mAP@0.50', 'mAP@0.60',
                     'mAP@0.70', 'average_mAP']
  np.testing.assert_allclose(m['mAP@0.50'], np.mean(np.array(d['ap'])[:, 4]),
                             atol=1e-12)


def _gt(*items):
  return {vid: [{'segment': s, 'label': l} for s, l in segs]
          for vid, segs in items}


def _pred(vid, *rows):
  return {vid: [{'segment': s, 'score': sc, 'label': l} for s, sc, l in rows]}


def test_map_hand_worked():
  gt = _gt(('a', [([0, 10], 'x'), ([20, 30], 'x')]))
  pred = _pred('a', ([0, 10], .9, 'x'), ([50, 60], .8, 'x'),
               ([20, 30], .7, 'x'))
  # tp = 1 0 1: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> 0.5 + 0.5*2/3
  m = ev.activitynet_map(gt, pred)
  assert abs(m['average_mAP'] - (0.5 + 1 / 3)) < 1e-12
  t = ev.thumos14_map(gt, pred)
  assert t['mAP@0.50'] == float(np.float32(0.5 + 0.5 * np.float32(2 / 3)))


def test_map_greedy_one_prediction_per_gt_and_thresholds():
  gt = _gt(('a', [([0, 10], 'x')]))
  # second prediction overlaps the already-taken gt: false positive. The
  # third (IoU 0.6) is a tp only below 0.6 if the first did not match -- it
  # is later, so it is an fp at every threshold.
  pred = _pred('a', ([0, 10], .9, 'x'), ([0, 10], .8, 'x'),
               ([0, 6], .7, 'x'))
  m = ev.activitynet_map(gt, pred)
  assert m['average_mAP'] == 1.0
  # A lone IoU-0.6 prediction matches at tIoU <= 0.6 only.
  m = ev.activitynet_map(gt, _pred('a', ([0, 6], .7, 'x')))
  assert [m['mAP@0.50'], m['mAP@0.55'], m['mAP@0.65']] == [1.0, 1.0, 0.0]


def test_tie_order():
  gt = _gt(('a', [([0, 10], 'x')]))
  pred = _pred('a', ([50, 60], .5, 'x'), ([0, 10], .5, 'x'))
  # MMAction2's stable sort keeps the fp first: precision 1/2 at recall 1.
  assert ev.activitynet_map(gt, pred)['average_mAP'] == 0.5
  first = np.argsort(np.array([.5, .5]))[::-1][0]  # the official order
  expected = 1.0 if first == 1 else 0.5
  got = ev.activitynet_map(gt, pred, tie_order='official')['average_mAP']
  assert got == expected
  with pytest.raises(TalError, match='tie_order'):
    ev.activitynet_map(gt, pred, tie_order='random')


def test_zero_length_quirk_matches_mmaction2():
  # Zero-length prediction vs zero-length gt: IoU 0/0 = NaN, which upstream's
  # argsort()[::-1] puts first and `NaN < thr` never rejects: a tp.
  gt = _gt(('a', [([3, 3], 'x'), ([10, 20], 'x')]))
  pred = _pred('a', ([7, 7], .9, 'x'))
  assert ev.activitynet_map(gt, pred)['average_mAP'] == 0.5


def test_unknown_label_video_and_class_without_gt():
  gt = _gt(('a', [([0, 10], 'x')]))
  with pytest.raises(TalError, match="video a: label 'y'"):
    ev.activitynet_map(gt, _pred('a', ([0, 10], .9, 'y')))
  pred = {**_pred('a', ([0, 10], .5, 'x')), **_pred('zz', ([0, 1], .9, 'x'))}
  with pytest.warns(UserWarning, match='1 predictions are for videos not'):
    m = ev.activitynet_map(gt, pred)
  assert m['average_mAP'] == 0.5  # the unknown video's fp ranks first
  with pytest.warns(UserWarning, match='1 classes have no ground truth'):
    m = ev.activitynet_map(gt, _pred('v_a', ([0, 10], .5, 'x'),
                                     ([0, 10], .9, 'y')),
                           class_names=['x', 'y'])
  assert m['average_mAP'] == 1.0  # 'y' is not in the mean; v_a matches a
  with pytest.raises(TalError, match='segment'):
    ev.activitynet_map(gt, {'a': [{'segment': [1], 'score': 1, 'label': 'x'}]})


def test_class_without_predictions_has_zero_ap():
  gt = _gt(('a', [([0, 10], 'x'), ([20, 30], 'y')]))
  m = ev.activitynet_map(gt, _pred('a', ([0, 10], .5, 'x')))
  assert m['average_mAP'] == 0.5


def _validation_ground_truth(real_data):
  """Validation videos of anet_anno_action.json, ids without `v_`."""
  with open(real_data('video_info_new.csv')) as f:
    val = {r['video'] for r in csv.DictReader(f)
           if r['subset'] == 'validation'}
  with open(real_data('anet_anno_action.json')) as f:
    anno = json.load(f)
  return {k[2:]: v['annotations'] for k, v in anno.items() if k in val}


def test_real_sample_detection_prediction(real_data):
  gt = _validation_ground_truth(real_data)
  assert len(gt) == 4728
  with open(real_data('sample_detection_prediction.json')) as f:
    results = json.load(f)['results']
  with pytest.warns(UserWarning, match='361 predictions'):
    ours = ev.activitynet_map(gt, results)
    official = ev.activitynet_map(gt, results, tie_order='official')
  # MMAction2 1.2.0's ActivityNetLocalization on the same files gives
  # 0.9773877105331771 at every tIoU (all scores are 1.0: ties decide).
  assert abs(ours['average_mAP'] - 0.9773877105331771) < 1e-9
  assert abs(ours['mAP@0.95'] - 0.9773877105331771) < 1e-9
  assert abs(official['average_mAP'] - 0.9719758051394807) < 1e-9


def test_ar_an_without_proposals_is_an_error():
  with pytest.raises(TalError, match='0 proposals'):
    ev.average_recall_at_avg_proposals({'a': np.array([[0., 1.]])}, {}, 0)


def test_unsorted_thresholds_match_sorted():
  d = _golden('anet_map_dense')
  gt = {k[2:]: v['annotations'] for k, v in d['anno'].items()}
  thr = ev.ANET_TIOU_THRESHOLDS
  ap, _ = ev.detection_ap_table(gt, d['results'], thr)
  ap_rev, _ = ev.detection_ap_table(gt, d['results'], thr[::-1])
  np.testing.assert_array_equal(ap_rev, ap[::-1])
