"""Writes golden fixtures for tal_jax.evaluation from MMAction2's own metrics.

Run from the checkout with the reference environment (never needed by tests):

  "$TAL_JAX_REFENV"/mmaction2-1.2.0/bin/python tests/golden/make_metrics_golden.py

It generates random inputs over a few dozen videos (quantised scores and
segment ends, so there are score ties, IoU ties, zero-length ground truth and
predictions, videos without proposals, predictions for unknown videos) and
stores inputs and MMAction2 1.2.0's outputs:

* metrics_ar_an.json: `average_recall_at_avg_proposals` (max_avg_proposals 100
  and None) on {video: [[s, e, score]]} proposals.
* metrics_anet_map.json: `ActivityNetLocalization` (per-class AP [T, C] in
  its class order, mAP, average mAP); gt in MMAction2's anno format.
* metrics_anet_map_dense.json: the same on a dense case (2 classes, 3-8
  gts per video on a coarse grid, duplicate gts, scores in {0, .5, 1}).
* metrics_thumos_ap.json: `average_precision_at_temporal_iou` per class and
  tIoU as 0.24.1's `eval_ap` calls it (the function is unchanged in 1.2.0).
* metrics_proposal_list.json: text of tools/data/activitynet/
  convert_proposal_format.py's `dump_formatted_proposal`.
"""

import importlib.util
import json
import os
import tempfile

import numpy as np

np.trapz = np.trapezoid  # numpy 2.4 removed np.trapz, which MMAction2 calls.

# pylint: disable=g-import-not-at-top
from mmaction.evaluation.functional.accuracy import (
    average_precision_at_temporal_iou, average_recall_at_avg_proposals)
from mmaction.evaluation.functional.eval_detection import (
    ActivityNetLocalization)

HERE = os.path.dirname(os.path.abspath(__file__))
MIM = os.path.join(os.path.dirname(np.__file__), '..', 'mmaction', '.mim')


def _segments(rng, n, duration):
  """[n, 2] segments with ends on a 0.5 s grid (ties), some zero length."""
  start = np.round(rng.uniform(0, duration, n) * 2) / 2
  length = np.round(rng.exponential(duration / 4, n) * 2) / 2
  length[rng.random(n) < 0.05] = 0.0
  return np.stack([start, start + length], 1)


def make_ar_an(rng):
  gt, proposals = {}, {}
  for v in range(40):
    vid = f'vid{v:03d}'
    duration = float(rng.uniform(20, 200))
    gt[vid] = _segments(rng, int(rng.integers(1, 6)), duration).tolist()
    n = int(rng.choice([0, 3, 20, 100, 130])) if v else 0
    seg = _segments(rng, n, duration)
    score = np.round(rng.random(n) * 8) / 8  # many ties
    proposals[vid] = np.concatenate([seg, score[:, None]], 1).tolist()
  total = sum(len(p) for p in proposals.values())
  gt_np = {k: np.array(v) for k, v in gt.items()}
  prop_np = {k: np.array(v).reshape(-1, 3) for k, v in proposals.items()}
  cases = []
  for max_avg in (100, None, 7):
    recall, avg, ppv, auc = average_recall_at_avg_proposals(
        gt_np, prop_np, total, max_avg_proposals=max_avg)
    cases.append(dict(max_avg_proposals=max_avg, recall=recall.tolist(),
                      avg_recall=avg.tolist(), proposals_per_video=ppv.tolist(),
                      auc=auc))
  return dict(ground_truth=gt, proposals=proposals,
              total_num_proposals=total, cases=cases)


def _detection_data(rng, classes, num_videos):
  gt, pred = {}, {}
  for v in range(num_videos):
    vid = f'vid{v:03d}'
    duration = float(rng.uniform(20, 200))
    seg = _segments(rng, int(rng.integers(1, 5)), duration)
    labels = rng.choice(classes, len(seg))
    gt[vid] = [dict(segment=s.tolist(), label=str(l))
               for s, l in zip(seg, labels)]
    items = [dict(segment=s, label=a['label']) for a in gt[vid]
             for s in (a['segment'], [a['segment'][0] + 0.5, a['segment'][1]])]
    for s in _segments(rng, int(rng.integers(0, 30)), duration):
      items.append(dict(segment=s.tolist(), label=str(rng.choice(classes))))
    for it in items:
      it['score'] = float(np.round(rng.random() * 6) / 6)
    pred[vid] = items
  pred['unknown_vid'] = [dict(segment=[1.0, 5.0], score=0.9,
                              label=classes[0])]
  return gt, pred


def make_anet_map(rng):
  classes = ['ClassA', 'ClassB', 'ClassC', 'ClassD']
  gt, pred = _detection_data(rng, classes, 36)
  anno = {'v_' + k: dict(duration_second=300.0, annotations=v)
          for k, v in gt.items()}
  with tempfile.TemporaryDirectory() as tmp:
    gt_file, pred_file = os.path.join(tmp, 'gt.json'), os.path.join(
        tmp, 'pred.json')
    json.dump(anno, open(gt_file, 'w'))
    json.dump(dict(version='VERSION 1.3', results=pred,
                   external_data={}), open(pred_file, 'w'))
    anet = ActivityNetLocalization(gt_file, pred_file)
    mean_ap, average_map = anet.evaluate()
  return dict(anno=anno, results=pred, class_order=list(anet.activity_index),
              ap=anet.ap.tolist(), mAP=mean_ap.tolist(),
              average_mAP=float(average_map))


def make_anet_map_dense(rng):
  """Two classes, 3-8 gts per video on a coarse 1 s grid in 30 s videos:
  many groups with several gts, duplicate gts (IoU ties), score ties."""
  gt, pred = {}, {}
  for v in range(25):
    vid = f'd{v:02d}'
    def seg(n):
      s = rng.integers(0, 25, n).astype(float)
      return np.stack([s, s + rng.integers(0, 6, n)], 1)
    gt_seg, gt_lab = seg(int(rng.integers(3, 9))), rng.integers(0, 2, 9)
    gt[vid] = [dict(segment=s.tolist(), label=f'k{l}')
               for s, l in zip(gt_seg, gt_lab)]
    pred[vid] = [dict(segment=s.tolist(), label=f'k{rng.integers(0, 2)}',
                      score=float(rng.choice([0.0, 0.5, 1.0])))
                 for s in seg(40)]
  anno = {'v_' + k: dict(annotations=v) for k, v in gt.items()}
  with tempfile.TemporaryDirectory() as tmp:
    gt_file, pred_file = os.path.join(tmp, 'gt.json'), os.path.join(
        tmp, 'pred.json')
    json.dump(anno, open(gt_file, 'w'))
    json.dump(dict(results=pred), open(pred_file, 'w'))
    anet = ActivityNetLocalization(gt_file, pred_file)
    mean_ap, average_map = anet.evaluate()
  return dict(anno=anno, results=pred, class_order=list(anet.activity_index),
              ap=anet.ap.tolist(), mAP=mean_ap.tolist(),
              average_mAP=float(average_map))


def make_thumos(rng):
  classes = ['c0', 'c1', 'c2', 'c3']
  gt, pred = _detection_data(rng, classes, 30)
  thresholds = np.arange(0.1, 1.0, 0.1)
  ap = np.zeros((len(classes), len(thresholds)))
  for c, name in enumerate(classes):
    gt_c = {}
    for vid, anns in gt.items():
      segs = [a['segment'] for a in anns if a['label'] == name]
      if segs:
        gt_c[vid] = segs
    pred_c = [[vid, c, it['segment'][0], it['segment'][1], it['score']]
              for vid, items in pred.items() for it in items
              if it['label'] == name]
    for t, thr in enumerate(thresholds):
      ap[c, t] = average_precision_at_temporal_iou(gt_c, pred_c, [thr])[0]
  return dict(ground_truth=gt, results=pred, classes=classes,
              ap=ap.tolist())


def make_proposal_list(rng):
  path = os.path.join(MIM, 'tools', 'data', 'activitynet',
                      'convert_proposal_format.py')
  spec = importlib.util.spec_from_file_location('convert_proposal_format',
                                                path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  videos, text = [], []
  for v in range(6):
    duration = float(rng.uniform(20, 100))
    seg = _segments(rng, int(rng.integers(1, 4)), duration)
    labels = rng.integers(0, 3, len(seg)).astype(float)
    gts = np.concatenate([seg, labels[:, None]], 1)
    props = np.concatenate([_segments(rng, 8, duration),
                            rng.random((8, 1))], 1)
    tiou, overlap = module.pairwise_temporal_iou(
        props[:, :2].astype(float), gts[:, :2].astype(float),
        calculate_overlap_self=True)

    class _Buffer(list):
      write = list.append

    buf = _Buffer()
    module.dump_formatted_proposal(v, f'vid{v}', 1000 + v, 30.0, gts, props,
                                   tiou, overlap, buf)
    text.append(''.join(buf))
    videos.append(dict(video_id=f'vid{v}', num_frames=1000 + v, fps=30.0,
                       gts=gts.tolist(), proposals=props.tolist()))
  return dict(videos=videos, text=''.join(text))


def main():
  rng = np.random.default_rng(20261126)
  outputs = dict(ar_an=make_ar_an(rng), anet_map=make_anet_map(rng),
                 thumos_ap=make_thumos(rng),
                 proposal_list=make_proposal_list(rng),
                 anet_map_dense=make_anet_map_dense(rng))
  for name, obj in outputs.items():
    path = os.path.join(HERE, f'metrics_{name}.json')
    with open(path, 'w') as f:
      json.dump(obj, f)
    print(path, os.path.getsize(path), 'bytes')


if __name__ == '__main__':
  main()
