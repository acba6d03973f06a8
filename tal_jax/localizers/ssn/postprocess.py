"""SSN test-time scoring, regression, NMS and THUMOS mAP (MMAction2 0.24.1).

Host-side numpy, per video, as `SSNDataset.results_to_detections`,
`perform_regression`, `temporal_nms` and `evaluate`:
1. bbox_preds de-normalised with the test proposal file's own constants:
   pred * std + mean (`SSN.forward_test`, float32).
2. combined = softmax(activity[:, 1:]) * exp(completeness) [P, C]; the top_k
   (2000) of the P x C values are kept, each a detection (start, end, score,
   loc, size) of its class, in ascending score order.
3. Regression: center += length * loc, length *= exp(size), clipped to
   [0, 1].
4. Per class and video, greedy NMS by descending score (`argsort()[::-1]`),
   dropping IoU > 0.2 with a kept one.
5. mAP at tIoU 0.1..0.9 via `tal_jax.evaluation` (0.24.1's
   `average_precision_at_temporal_iou`, float32).
"""

import numpy as np

from tal_jax import evaluation


def denormalize_bbox_preds(bbox_preds, reg_norm):
  """[P, C, 2] float32 pred * std + mean (reg_norm [2, 2]: mean, std rows)."""
  b = np.asarray(bbox_preds, np.float32)
  mean = np.asarray(reg_norm, np.float64)[0]
  std = np.asarray(reg_norm, np.float64)[1]
  return (b * std.astype(np.float32) + mean.astype(np.float32)).astype(
      np.float32)


def combined_scores(activity_scores, completeness_scores):
  """[P, C] softmax over the C action classes (background dropped first)
  times exp(completeness), float32 as upstream's numpy softmax."""
  a = np.asarray(activity_scores, np.float32)[:, 1:]
  e = np.exp(a - a.max(axis=1, keepdims=True))
  soft = e / e.sum(axis=1, keepdims=True)
  return soft * np.exp(np.asarray(completeness_scores, np.float32))


def top_k_detections(relative_proposals, combined, bbox_preds, top_k=2000):
  """Top-k (proposal, class) pairs of one video.

  Args:
    relative_proposals: [P, 2] float32; combined: [P, C];
    bbox_preds: [P, C, 2] de-normalised.

  Returns:
    classes [K] int, detections [K, 5] float64 (start, end, score, loc, size)
    in ascending score order (np.argsort of the flattened scores, as
    upstream); top_k <= 0 keeps every pair.
  """
  num_classes = combined.shape[1]
  flat = combined.ravel()
  keep = np.argsort(flat)[-top_k:] if top_k > 0 else np.arange(flat.size)
  cls, prop = keep % num_classes, keep // num_classes
  rel = np.asarray(relative_proposals, np.float64)
  det = np.concatenate([rel[prop], flat[keep, None].astype(np.float64),
                        np.asarray(bbox_preds, np.float64)[prop, cls]],
                       axis=1)
  return cls, det


def perform_regression(detections):
  """[K, 5] -> [K, 5] with (start, end) regressed and clipped to [0, 1]."""
  start, end = detections[:, 0], detections[:, 1]
  center, length = (start + end) / 2, end - start
  center = center + length * detections[:, 3]
  length = length * np.exp(detections[:, 4])
  return np.concatenate([np.clip(center - length / 2, 0, 1)[:, None],
                         np.clip(center + length / 2, 0, 1)[:, None],
                         detections[:, 2:]], axis=1)


def temporal_nms(detections, threshold=0.2):
  """Greedy NMS of one class's [K, >=3] (start, end, score, ...) rows."""
  start, end = detections[:, 0], detections[:, 1]
  order = detections[:, 2].argsort()[::-1]
  keep = []
  while order.size:
    i = order[0]
    keep.append(i)
    rest = order[1:]
    inter = np.maximum(np.minimum(end[rest], end[i]) -
                       np.maximum(start[rest], start[i]), 0.)
    union = (end[rest] - start[rest]) - inter + (end[i] - start[i])
    with np.errstate(divide='ignore', invalid='ignore'):
      order = rest[np.divide(inter, union) <= threshold]  # NaN: dropped
  return detections[keep]


def video_detections(relative_proposals, activity_scores,
                     completeness_scores, bbox_preds, reg_norm, top_k=2000,
                     nms=0.2, use_regression=True):
  """{class index: [D, 5] rows after regression and NMS} of one video.

  Args:
    relative_proposals: [P, 2]; activity_scores: [P, C + 1];
    completeness_scores: [P, C]; bbox_preds: [P, C, 2] normalised (or None).
    reg_norm: [2, 2] test-file constants (`ssn_targets.reg_normalize_constants`).
  """
  combined = combined_scores(activity_scores, completeness_scores)
  if bbox_preds is None:
    bbox = np.zeros(combined.shape + (2,), np.float32)
  else:
    bbox = denormalize_bbox_preds(bbox_preds, reg_norm)
  cls, det = top_k_detections(relative_proposals, combined, bbox, top_k)
  if use_regression:
    det = perform_regression(det)
  out = {}
  for c in np.unique(cls):
    out[int(c)] = temporal_nms(det[cls == c], nms)
  return out


def to_predictions(detections_by_video):
  """{video: {class: rows}} -> {video: [{'segment', 'score', 'label'}]}."""
  return {vid: [{'segment': [float(r[0]), float(r[1])], 'score': float(r[2]),
                 'label': c} for c, rows in dets.items() for r in rows]
          for vid, dets in detections_by_video.items()}


def thumos_map(relative_gt, detections_by_video, num_classes,
               tiou_thresholds=evaluation.THUMOS_TIOU_THRESHOLDS):
  """SSN `evaluate` mAP: {'mAP@0.10': .., ..., 'average_mAP'}.

  Args:
    relative_gt: `ssn_targets.relative_ground_truth` output.
    detections_by_video: {video: `video_detections` output}.
    num_classes: C; the mean is over all C classes as upstream. A class
      without ground truth adds an AP of 0 here (upstream's AP is NaN then,
      and so is its mAP).
  """
  ap, classes = evaluation.detection_ap_table(
      relative_gt, to_predictions(detections_by_video), tiou_thresholds,
      'official', class_names=list(range(num_classes)), dtype=np.float32)
  full = np.zeros((len(tiou_thresholds), num_classes))
  full[:, classes] = ap
  maps = full.mean(axis=1)
  out = {f'mAP@{t:.2f}': float(m) for t, m in zip(tiou_thresholds, maps)}
  out['average_mAP'] = float(maps.mean())
  return out
