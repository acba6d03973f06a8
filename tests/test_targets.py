"""BMN labels against MMAction2 1.2.0 (tests/golden/bmn_tiny.npz) and by hand."""

import json
import os
import types

import tal_jax  # noqa: F401
import numpy as np
import pytest

from tal_jax.localizers.bmn import targets
from tal_jax.errors import TalError
from tal_jax.ops import segments

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden', 'bmn_tiny.npz')


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(GOLDEN, allow_pickle=False))


def test_normalize_gt_matches_mmaction2(ref):
  records = json.loads(str(ref['records_json']))
  for i, (name, record) in enumerate(records.items()):
    gt = segments.normalize_gt(record, name)
    n = int(ref['gt_mask'][i].sum())
    np.testing.assert_array_equal(gt, ref['gt'][i, :n])
  # Video 0's third segment ends after the features' end: clipped to 1.
  assert ref['gt'][0, 2, 1] == 1.0


def test_normalize_gt_batch_pads(ref):
  records = json.loads(str(ref['records_json']))
  videos = types.SimpleNamespace(names=list(records),
                                 records=list(records.values()))
  gt, gt_mask = segments.normalize_gt_batch(videos)
  np.testing.assert_array_equal(gt_mask, ref['gt_mask'])
  np.testing.assert_array_equal(gt, ref['gt'])


def test_batch_labels_match_mmaction2_exactly(ref):
  iou_map, start, end = targets.bmn_targets_batch(ref['gt'], ref['gt_mask'], 16)
  assert iou_map.dtype == start.dtype == np.float32
  np.testing.assert_array_equal(iou_map, ref['label_iou_map'])
  np.testing.assert_array_equal(start, ref['label_start'])
  np.testing.assert_array_equal(end, ref['label_end'])


def test_single_video_equals_batch_row(ref):
  n = int(ref['gt_mask'][1].sum())
  iou_map, start, end = targets.bmn_targets(ref['gt'][1, :n], 16)
  np.testing.assert_array_equal(iou_map, ref['label_iou_map'][1])
  np.testing.assert_array_equal(start, ref['label_start'][1])
  np.testing.assert_array_equal(end, ref['label_end'][1])


def test_labels_by_hand():
  # T=4, one gt [0.25, 0.5]. Cell [d, s] is [s/4, (s+d+1)/4].
  iou_map, start, end = targets.bmn_targets(np.array([[0.25, 0.5]]), 4)
  assert iou_map[0, 1] == pytest.approx(1.0)   # [0.25, 0.5]
  assert iou_map[1, 1] == pytest.approx(0.5)   # [0.25, 0.75]
  assert iou_map[3, 0] == pytest.approx(0.25)  # [0, 1] (valid at s+d=3)
  assert iou_map[3, 1] == pytest.approx(0.25)  # [0.25, 1.25]: tmax not clipped
  # Anchors [(i-0.5)/4, (i+1.5)/4] vs [t - 3/8, t + 3/8], intersection/anchor.
  np.testing.assert_allclose(start, [1, 1, 0.5, 0], atol=1e-7)
  np.testing.assert_allclose(end, [0.5, 1, 1, 0.5], atol=1e-7)


def test_padding_ignored_and_empty_video_zero():
  gt = np.array([[[0.25, 0.5], [0.9, 0.1]], [[0.0, 0.0], [0.0, 0.0]]])
  mask = np.array([[True, False], [False, False]])
  iou_map, start, end = targets.bmn_targets_batch(gt, mask, 4)
  single = targets.bmn_targets(gt[0, :1], 4)
  for a, b in zip((iou_map[0], start[0], end[0]), single):
    np.testing.assert_array_equal(a, b)
  assert not iou_map[1].any() and not start[1].any() and not end[1].any()


def test_chunking_does_not_change_labels(ref):
  gt = np.concatenate([ref['gt']] * 3)
  mask = np.concatenate([ref['gt_mask']] * 3)
  a = targets.bmn_targets_batch(gt, mask, 16, chunk=64)
  b = targets.bmn_targets_batch(gt, mask, 16, chunk=2)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)


def test_normalize_gt_bad_record():
  with pytest.raises(TalError, match="v_bad"):
    segments.normalize_gt({'duration_second': 3.0}, 'v_bad')
