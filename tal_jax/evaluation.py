"""Temporal action localization metrics with MMAction2 1.2.0's numbers.

* `pairwise_temporal_iou`, `temporal_iop`: segment overlaps, stored in float32
  like MMAction2 (`mmaction.evaluation.functional.pairwise_temporal_iou`).
* `average_recall_at_avg_proposals`, `ar_an_metrics`: AR@AN and AUC as
  MMAction2's `average_recall_at_avg_proposals` / `ANetMetric('AR@AN')`.
* `activitynet_map`: detection mAP at tIoU 0.5:0.05:0.95 as MMAction2's
  `ActivityNetLocalization`.
* `thumos14_map`: mAP at tIoU 0.1..0.9 as MMAction2 0.24.1's SSN `eval_ap`.

Everything is vectorised numpy: one argsort per group of equally sized rows
instead of one per video or per prediction. Where MMAction2 breaks ties with
numpy's (unstable) quicksort argsort, the same argsort is run on the same
values, so tie order matches exactly, row for row.

Edge cases (all tested in tests/test_evaluation.py):
* Video ids: MMAction2 strips the first two characters (`v_`) of ground-truth
  ids only. Here a prediction id matches a ground-truth id as is, or with a
  `v_` prefix removed or added (`match_video_ids`), so either spelling works.
* A ground-truth video without proposals: zero recall and one warning with
  the count (MMAction2 raises KeyError).
* Zero-length segments: IoU is 0 against a non-empty segment and NaN (0/0)
  between two zero-length ones. AR@AN never counts NaN as a hit; detection
  matching, like MMAction2, ranks NaN first and never rejects it, so a
  zero-length prediction takes an unlocked zero-length gt of its class.
* Classes without ground truth (possible only with `class_names`): left out
  of the mean, with a warning. Predictions with a label outside the classes:
  TalError. Predictions for videos outside the ground truth: false positives
  and one warning with the count.
"""

import itertools
import warnings
from typing import Mapping

import numpy as np

from tal_jax.errors import TalError

ANET_TIOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
# SSN's evaluate() in MMAction2 0.24.1 uses np.arange(0.1, 1.0, .1).
THUMOS_TIOU_THRESHOLDS = np.arange(0.1, 1.0, 0.1)
THUMOS_REPORT_THRESHOLDS = THUMOS_TIOU_THRESHOLDS[2:7]  # 0.3 .. 0.7
AR_AN_POINTS = (1, 5, 10, 100)
TIE_ORDERS = ('mmaction2', 'official')


def segment_iou(c_start, c_end, t_start, t_end, overlap_self=False,
                toolkit_iou=False):
  """Elementwise (broadcast) IoU of candidate and target segments.

  Arithmetic runs in the inputs' dtype, the final division in float64, and the
  result is rounded to float32, all as MMAction2's `pairwise_temporal_iou`.
  Zero-length candidate and target give NaN (0/0), as upstream.
  toolkit_iou: the ActivityNet toolkit's (and OpenTAD's) `segment_iou`
  instead: float64 result, union clipped at 1e-8 (no NaN).

  Returns:
    iou float32 (broadcast shape); with `overlap_self` also the intersection
    over the candidate length (IoP) float32.
  """
  inter = np.clip(np.minimum(c_end, t_end) - np.maximum(c_start, t_start), 0,
                  None)
  union = (t_end - t_start) + (c_end - c_start) - inter
  if toolkit_iou:
    return inter.astype(np.float64) / np.maximum(union, 1e-8)
  with np.errstate(divide='ignore', invalid='ignore'):
    iou = (inter.astype(np.float64) / union).astype(np.float32)
    if not overlap_self:
      return iou
    iop = (inter.astype(np.float64) / (c_end - c_start)).astype(np.float32)
  return iou, iop


def pairwise_temporal_iou(candidate_segments, target_segments,
                          calculate_overlap_self=False):
  """IoU (and IoP) of every target with every candidate.

  Args:
    candidate_segments: [M, 2] or [2] (start, end).
    target_segments: [N, 2] (start, end).
    calculate_overlap_self: also return intersection / candidate length.

  Returns:
    t_iou: [N, M] float32 ([N] for a 1-D candidate); and t_overlap_self of the
    same shape when `calculate_overlap_self`.
  """
  cand = np.asarray(candidate_segments)
  tgt = np.asarray(target_segments)
  if tgt.ndim != 2 or cand.ndim not in (1, 2):
    raise ValueError('Dimension of arguments is incorrect')
  c = cand[None, :] if cand.ndim == 1 else cand
  out = segment_iou(c[None, :, 0], c[None, :, 1], tgt[:, None, 0],
                    tgt[:, None, 1], overlap_self=calculate_overlap_self)
  if cand.ndim == 1:
    out = tuple(o[:, 0] for o in out) if calculate_overlap_self else out[:, 0]
  return out


def temporal_iop(candidate_segments, target_segments):
  """Intersection over candidate length: [N targets, M candidates] float32."""
  return pairwise_temporal_iou(candidate_segments, target_segments, True)[1]


def match_video_ids(gt_ids, pred_ids):
  """Maps each prediction id to a ground-truth id, or None if unknown.

  An id matches as is, else with a leading `v_` removed or added.
  """
  gt_set = set(gt_ids)
  mapping = {}
  for vid in pred_ids:
    for cand in (vid, vid[2:] if vid.startswith('v_') else None, 'v_' + vid):
      if cand is not None and cand in gt_set:
        mapping[vid] = cand
        break
    else:
      mapping[vid] = None
  return mapping


# ----------------------------------------------------------------- AR@AN


def _rows(values, min_cols):
  """[N, C>=min_cols] float64 from a list/array (empty -> [0, min_cols])."""
  arr = np.asarray(values, np.float64)
  if arr.size == 0:
    return np.zeros((0, min_cols))
  arr = arr[None] if arr.ndim == 1 else arr
  if arr.ndim != 2 or arr.shape[1] < min_cols:
    raise TalError(f'expected rows of >= {min_cols} numbers, got shape '
                   f'{arr.shape}')
  return arr


def _top_proposals(proposal_list, ratio):
  """Sorts each video's proposals by score (as MMAction2) and keeps the top.

  Args:
    proposal_list: per video [P_v, >=3] (start, end, score) arrays.
    ratio: the kept fraction, max_avg_proposals * V / total_num_proposals.

  Returns:
    segments [V, K, 2] float32, num_kept [V] int, width [V] int (the IoU
    matrix width MMAction2 uses: num_kept, or 1 for a video without
    proposals).
  """
  counts = np.array([len(p) for p in proposal_list], dtype=np.int64)
  num_kept = np.minimum((counts * ratio).astype(np.int64), counts)
  segments = np.zeros((len(counts), max(int(num_kept.max(initial=0)), 1), 2),
                      np.float32)
  for count in np.unique(counts[counts > 0]):
    rows = np.flatnonzero(counts == count)
    block = np.stack([np.asarray(proposal_list[r], np.float64) for r in rows])
    order = np.argsort(block[:, :, 2], axis=1)[:, ::-1]
    ordered = np.take_along_axis(block[:, :, :2], order[:, :, None], axis=1)
    keep = num_kept[rows[0]]
    segments[rows, :keep] = ordered[:, :keep].astype(np.float32)
  width = np.where(counts > 0, num_kept, 1)
  return segments, np.where(counts > 0, num_kept, 0), width


def _first_hits(gt_segments, gt_video, segments, num_kept, thresholds):
  """Rank of the first kept proposal with IoU >= threshold, per gt.

  Args:
    gt_segments: [G, 2] float32; gt_video: [G] row into `segments`.
    segments: [V, K, 2] float32 sorted proposals; num_kept: [V].
    thresholds: [T].

  Returns:
    [G, T] int64; K + 1 where no proposal reaches the threshold.
  """
  num_gt, k = len(gt_video), segments.shape[1]
  out = np.full((num_gt, len(thresholds)), k + 1, np.int64)
  chunk = max(1, 4_000_000 // (k * len(thresholds)))
  for lo in range(0, num_gt, chunk):
    v = gt_video[lo:lo + chunk]
    p, g = segments[v], gt_segments[lo:lo + chunk, None, :]
    iou = segment_iou(p[..., 0], p[..., 1], g[..., 0], g[..., 1])
    valid = np.arange(k)[None, :] < num_kept[v][:, None]
    hits = (iou[:, None, :] >= thresholds[None, :, None]) & valid[:, None, :]
    out[lo:lo + chunk] = np.where(hits.any(-1), hits.argmax(-1), k + 1)
  return out


def average_recall_at_avg_proposals(
    ground_truth, proposals, total_num_proposals, max_avg_proposals=100,
    temporal_iou_thresholds=ANET_TIOU_THRESHOLDS):
  """Average recall vs average number of proposals, as MMAction2.

  Args:
    ground_truth: {video_id: [G, >=2] (start, end, ...)}; its keys define the
      videos (V). A video with G = 0 counts in V but adds no positives.
    proposals: {video_id: [P, 3] (start, end, score)}, same keys. A ground-
      truth video without proposals (missing or P = 0) has zero recall; a
      missing one also gives a warning naming how many (MMAction2 crashes).
    total_num_proposals: all proposals, for the retrieval ratio.
    max_avg_proposals: AN at the end of the curve; None = total / V.
    temporal_iou_thresholds: [T].

  Returns:
    (recall [T, 100], average_recall [100], proposals_per_video [100], auc)
    with recall as fractions and auc in percent:
    100 * trapz(average_recall, proposals_per_video) / proposals_per_video[-1].
  """
  video_ids = list(ground_truth)
  num_videos = len(video_ids)
  if not num_videos or not total_num_proposals:
    raise TalError(f'AR@AN needs ground truth and proposals ({num_videos} '
                   f'videos, {total_num_proposals} proposals)')
  if max_avg_proposals is not None and max_avg_proposals < 0:
    raise TalError(f'max_avg_proposals must be > 0, got {max_avg_proposals}')
  if not max_avg_proposals:
    max_avg_proposals = float(total_num_proposals) / num_videos
  ratio = max_avg_proposals * float(num_videos) / total_num_proposals
  missing = [v for v in video_ids if v not in proposals]
  if missing:
    warnings.warn(f'{len(missing)} of {num_videos} ground-truth videos have no '
                  f'proposals (e.g. {missing[0]}); they count as zero recall')
  proposal_list = [_rows(proposals.get(v, ()), 3) for v in video_ids]
  segments, num_kept, width = _top_proposals(proposal_list, ratio)
  gts = [_rows(ground_truth[v], 2)[:, :2].astype(np.float32)
         for v in video_ids]
  gt_video = np.repeat(np.arange(num_videos), [len(g) for g in gts])
  gt_segments = np.concatenate(gts) if gts else np.zeros((0, 2), np.float32)
  if not len(gt_segments):
    raise TalError('AR@AN: the ground truth holds no segments')
  thresholds = np.asarray(temporal_iou_thresholds, np.float64)
  total_retrieved = int(num_kept.sum())
  if not total_retrieved:
    raise TalError(
        f'AR@AN: none of the {total_num_proposals} proposals belongs to one '
        f'of the {num_videos} ground-truth videos (e.g. {video_ids[0]}); do '
        'the video ids match?')
  pcn_list = np.arange(1, 101) / 100.0 * (
      max_avg_proposals * float(num_videos) / total_retrieved)
  pcn = np.minimum((width[:, None] * pcn_list).astype(np.int32),
                   width[:, None])
  first = _first_hits(gt_segments, gt_video, segments, num_kept, thresholds)
  first[(num_kept[gt_video] == 0)[:, None] & (thresholds <= 0)[None]] = 0
  matches = np.stack([(first[:, t, None] < pcn[gt_video]).sum(axis=0)
                      for t in range(len(thresholds))])
  recall = matches / float(len(gt_segments))
  avg_recall = recall.mean(axis=0)
  proposals_per_video = pcn_list * (float(total_retrieved) / num_videos)
  area = np.trapezoid(avg_recall, proposals_per_video)
  auc = 100. * float(area) / proposals_per_video[-1]
  return recall, avg_recall, proposals_per_video, auc


def ar_an_metrics(gt_by_video, proposals_by_video, max_avg_proposals=100,
                  temporal_iou_thresholds=ANET_TIOU_THRESHOLDS):
  """AR@1/5/10/100 (fractions) and AUC (percent), as ANetMetric('AR@AN').

  Args:
    gt_by_video: {video_id: [G, 2] seconds}.
    proposals_by_video: {video_id: [P, 3] (start, end, score)}; ids match the
      ground truth with or without `v_`. Proposals of videos not in the
      ground truth count in the total (as upstream) and give a warning.

  Returns:
    {'AR@1', 'AR@5', 'AR@10', 'AR@100', 'AUC'} as floats.
  """
  mapping = match_video_ids(gt_by_video, proposals_by_video)
  unknown = [v for v, g in mapping.items() if g is None]
  if unknown:
    warnings.warn(f'{len(unknown)} proposal videos are not in the ground '
                  f'truth (e.g. {unknown[0]}); ignored')
  proposals = {g: proposals_by_video[v] for v, g in mapping.items() if g}
  total = sum(len(p) for p in proposals_by_video.values())
  recall, _, _, auc = average_recall_at_avg_proposals(
      gt_by_video, proposals, total, max_avg_proposals,
      temporal_iou_thresholds)
  out = {f'AR@{n}': float(np.mean(recall[:, n - 1])) for n in AR_AN_POINTS}
  out['AUC'] = float(auc)
  return out


# ------------------------------------------------------- detection mAP core


def _sort_predictions(labels, scores, num_classes, tie_order):
  """Prediction order: grouped by class, by decreasing score inside a class.

  'mmaction2' is MMAction2's stable sort (`list.sort(key=-score)`); 'official'
  is the ActivityNet toolkit's (and MMAction2 0.24.1 `eval_ap`'s)
  `np.argsort(scores)[::-1]` over the class's predictions in input order.
  """
  if tie_order == 'mmaction2':  # == np.lexsort((-scores, labels)), faster
    order = np.argsort(-scores, kind='stable')
    small = labels.astype(np.int16 if num_classes < 2**15 else np.int64)
    return order[np.argsort(small[order], kind='stable')]
  if tie_order != 'official':
    raise TalError(f'tie_order must be one of {TIE_ORDERS}, got {tie_order!r}')
  by_class = np.argsort(labels, kind='stable')
  bounds = np.searchsorted(labels[by_class], np.arange(num_classes + 1))
  parts = [by_class[lo:hi][np.argsort(scores[by_class[lo:hi]])[::-1]]
           for lo, hi in zip(bounds[:-1], bounds[1:])]
  return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _group_ground_truth(gt_key, gt_segments):
  """Pads the gts of each (class, video) key: ([U] keys, [U, Gmax, 2], [U])."""
  order = np.argsort(gt_key, kind='stable')
  keys, start, count = np.unique(gt_key[order], return_index=True,
                                 return_counts=True)
  padded = np.zeros((len(keys), max(int(count.max(initial=0)), 1), 2))
  slot = np.arange(len(order)) - np.repeat(start, count)
  padded[np.repeat(np.arange(len(keys)), count), slot] = gt_segments[order]
  return keys, padded, count


def _group_ranks(rows):
  """(start [U'] of each run of equal rows, run index [n], rank in run [n])."""
  _, start = np.unique(rows, return_index=True)
  group_of = np.repeat(np.arange(len(start)),
                       np.diff(np.append(start, len(rows))))
  return start, group_of, np.arange(len(rows)) - start[group_of]


def _match_single_gt(iou, rows, thresholds):
  """tp [n, T] where every group has one gt (iou [n, 1]): the first
  prediction of the group reaching the threshold (or NaN) takes it."""
  start, group_of, rank = _group_ranks(rows)
  if np.any(np.diff(thresholds) < 0):  # general form
    ok = ~(iou < thresholds[None, :])  # NaN passes, as upstream
    first = np.minimum.reduceat(np.where(ok, rank[:, None], len(rows)),
                                start, axis=0)
    return ok & (rank[:, None] == first[group_of])
  # Sorted thresholds: prediction p reaches the first reach[p] of them; it
  # takes the gt for those not reached by an earlier one of its group.
  iou = iou[:, 0].astype(np.float64)
  reach = np.where(np.isnan(iou), len(thresholds),
                   np.searchsorted(thresholds, iou, side='right'))
  offset = group_of * (len(thresholds) + 1)
  best = np.maximum.accumulate(reach + offset) - offset  # running max in group
  before = np.where(rank > 0, np.r_[0, best[:-1]], 0)
  t = np.arange(len(thresholds))[None, :]
  return (t < reach[:, None]) & (t >= before[:, None])


def _match_bucket(pred_segments, rows, gts, thresholds, toolkit_iou=False):
  """Greedy matching for predictions whose groups all hold g gts.

  Args:
    pred_segments: [n, 2]; rows: [n] group rows (non-decreasing), each
      group's predictions contiguous and in score order.
    gts: [n, g, 2] the gts of each prediction's group.
    thresholds: [T].

  Each prediction scans its group's gts by decreasing IoU (MMAction2's
  `argsort()[::-1]`: the same argsort on the same values, so ties and NaN go
  the same way) and takes the first unlocked one, stopping at the first IoU
  below the threshold. Instead of stepping prediction by prediction, each
  round finds, per (group, threshold), the next prediction that can match
  given the locks so far; all predictions before it are false positives. A
  group has g gts, so g rounds finish it.

  Returns:
    tp [n, T] bool.
  """
  n, g = gts.shape[:2]
  iou = segment_iou(pred_segments[:, None, 0], pred_segments[:, None, 1],
                    gts[..., 0], gts[..., 1], toolkit_iou=toolkit_iou)
  if g == 1:
    return _match_single_gt(iou, rows, thresholds)
  order = np.argsort(iou, axis=1)[:, ::-1]
  iou_o = np.take_along_axis(iou, order, axis=1)
  ok = ~(iou_o[:, None, :] < thresholds[None, :, None])  # NaN passes
  tp = np.zeros((n, len(thresholds)), bool)
  sub = np.flatnonzero(ok.any(axis=(1, 2)))  # the rest are always fps
  ok, order = ok[sub], order[sub]
  start, group_of, rank = _group_ranks(rows[sub])
  locked = np.zeros((len(start), len(thresholds), g), bool)
  done_to = np.full((len(start), len(thresholds)), -1)
  for _ in range(g if len(sub) else 0):
    lock_o = np.take_along_axis(locked[group_of], order[:, None, :], axis=2)
    elig = ok & ~lock_o
    live = elig.any(-1) & (rank[:, None] > done_to[group_of])
    first = np.minimum.reduceat(np.where(live, rank[:, None], n), start,
                                axis=0)
    gi, ti = np.nonzero(first < n)
    p = start[gi] + first[gi, ti]
    locked[gi, ti, order[p, elig[p, ti].argmax(-1)]] = True
    tp[sub[p], ti] = True
    done_to[gi, ti] = first[gi, ti]
  return tp


def _stable_argsort(key):
  """np.argsort(key, kind='stable') of non-negative ints, as 16-bit radix
  passes (numpy radix-sorts only types of <= 16 bits)."""
  key = np.asarray(key, np.int64)
  order, shift = np.arange(len(key)), 0
  while shift == 0 or (key >> shift).any():
    digit = ((key[order] >> shift) & 0xFFFF).astype(np.uint16)
    order = order[np.argsort(digit, kind='stable')]
    shift += 16
  return order


def _true_positives(gt_key, gt_segments, pred_key, pred_segments, thresholds,
                    toolkit_iou=False):
  """Greedy matching of sorted predictions, vectorised over (class, video).

  Args:
    gt_key, pred_key: [G], [P] int (class * num_videos + video); pred_key -1
      for a prediction in a video without ground truth.
    gt_segments, pred_segments: [G, 2], [P, 2] float64 seconds; predictions
      in sorted order.
    thresholds: [T].

  Returns:
    tp [T, P] bool (every other prediction is a false positive).
  """
  tp = np.zeros((len(pred_key), len(thresholds)), bool)
  keys, padded, count = _group_ground_truth(gt_key, gt_segments)
  if not len(keys):
    return tp.T
  row = np.searchsorted(keys, pred_key).clip(0, len(keys) - 1)
  pos = np.flatnonzero((pred_key >= 0) & (keys[row] == pred_key))
  if not len(pos):
    return tp.T
  # By group size, then group, then rank (stable).
  pos = pos[_stable_argsort(count[row[pos]] * len(keys) + row[pos])]
  bounds = np.flatnonzero(np.diff(count[row[pos]])) + 1
  for sel in np.split(pos, bounds):
    g = int(count[row[sel[0]]])
    tp[sel] = _match_bucket(pred_segments[sel], row[sel],
                            padded[row[sel], :g], thresholds, toolkit_iou)
  return tp.T


def _class_ap(tp, bounds, num_positives, dtype):
  """AP [T, C] from sorted per-class tp [T, P]; class c is bounds[c:c+2].

  MMAction2's VOC-2011 `interpolated_precision_recall` of the cumulative
  precision and recall, evaluated only where recall changes (at the tps):
  sum_k (r_k - r_{k-1}) * max_{k' >= k} p_k', where the k-th tp of a class,
  at rank j, has p_k = k / (j + 1) and r_k = k / num_positives, both in
  `dtype` as upstream (float32 for 0.24.1's THUMOS code). The AP is rounded
  to `dtype` too.
  """
  num_t, num_c = tp.shape[0], len(num_positives)
  t_idx, j = np.nonzero(tp)  # by threshold, then position
  ap = np.zeros(num_t * num_c)
  if not len(j):
    return ap.reshape(num_t, num_c)
  cls = np.searchsorted(bounds, j, side='right') - 1
  seg = t_idx * num_c + cls  # non-decreasing
  starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
  ends = np.r_[starts[1:], len(seg)]
  k = np.arange(len(seg)) - np.repeat(starts, ends - starts) + 1
  precision = k.astype(dtype) / (j - bounds[cls] + 1).astype(dtype)
  recall = k.astype(dtype) / num_positives[cls].astype(dtype)
  prev = np.where(k > 1, np.r_[0, recall[:-1]], 0).astype(np.float64)
  mprec = precision.astype(np.float64)
  for lo, hi in zip(starts, ends):
    mprec[lo:hi] = np.maximum.accumulate(mprec[lo:hi][::-1])[::-1]
  contrib = (recall.astype(np.float64) - prev) * mprec
  ap[seg[starts]] = np.add.reduceat(contrib, starts)
  return ap.astype(dtype).astype(np.float64).reshape(num_t, num_c)


def detection_average_precision(gt_video, gt_label, gt_segments, pred_video,
                                pred_label, pred_segments, pred_scores,
                                num_classes,
                                tiou_thresholds=ANET_TIOU_THRESHOLDS,
                                tie_order='mmaction2', dtype=np.float64,
                                toolkit_iou=False):
  """Per-class, per-tIoU AP of detections (array-level core).

  Args:
    gt_video, gt_label: [G] int (video index, class index in [0, C)).
    gt_segments: [G, 2] seconds.
    pred_video: [P] int video index, -1 = not in the ground truth (always a
      false positive). pred_label: [P] int in [0, C).
    pred_segments: [P, 2] seconds; pred_scores: [P]. Input order matters for
      score ties (see `_sort_predictions`).
    num_classes: C.
    tiou_thresholds: [T].
    tie_order: 'mmaction2' (stable sort, the default) or 'official'.
    dtype: float64 as ActivityNetLocalization; float32 reproduces 0.24.1's
      `average_precision_at_temporal_iou` (float32 precision/recall and AP).
    toolkit_iou: float64 IoU as the ActivityNet toolkit / OpenTAD (see
      `segment_iou`) instead of MMAction2's float32.

  Returns:
    ap [T, C] float64; a class without predictions has AP 0.
  """
  gt_label, pred_label = np.asarray(gt_label), np.asarray(pred_label)
  pred_video = np.asarray(pred_video)
  num_videos = int(max(np.max(gt_video, initial=-1),
                       np.max(pred_video, initial=-1)) + 1)
  order = _sort_predictions(pred_label, np.asarray(pred_scores, np.float64),
                            num_classes, tie_order)
  pv, pl = pred_video[order], pred_label[order]
  pred_key = np.where(pv >= 0, pl * num_videos + pv, -1)
  gt_key = gt_label * num_videos + np.asarray(gt_video)
  thresholds = np.asarray(tiou_thresholds, np.float64)
  gt_segments = np.asarray(gt_segments, np.float64).reshape(-1, 2)
  pred_segments = np.asarray(pred_segments, np.float64).reshape(-1, 2)
  tp = _true_positives(gt_key, gt_segments, pred_key, pred_segments[order],
                       thresholds, toolkit_iou)
  bounds = np.searchsorted(pl, np.arange(num_classes + 1))
  num_positives = np.bincount(gt_label, minlength=num_classes)
  return _class_ap(tp, bounds, num_positives, dtype)


# ------------------------------------------------------ dict-level metrics


def _segment(item, where):
  """(start, end) floats of an annotation/result dict, or TalError."""
  try:
    start, end = item['segment']
    return float(start), float(end)
  except (KeyError, TypeError, ValueError) as e:
    raise TalError(f'{where}: bad or missing "segment" ({e!r})') from None


def _flatten_ground_truth(ground_truth, class_names):
  """{vid: [{segment, label}]} -> (video ids, class names, arrays)."""
  videos = list(ground_truth)
  classes = list(class_names or [])
  index = {c: i for i, c in enumerate(classes)}
  gv, gl, gs = [], [], []
  for v, vid in enumerate(videos):
    for ann in ground_truth[vid]:
      label = ann.get('label') if isinstance(ann, Mapping) else None
      if label is None:
        raise TalError(f'ground truth video {vid}: annotation without "label"')
      if label not in index:
        if class_names:
          raise TalError(f'ground truth video {vid}: label {label!r} is not '
                         'in the class list')
        index[label] = len(classes)
        classes.append(label)
      gv.append(v)
      gl.append(index[label])
      gs.append(_segment(ann, f'ground truth video {vid}'))
  return videos, classes, index, (np.array(gv, np.int64),
                                  np.array(gl, np.int64),
                                  np.array(gs, np.float64).reshape(-1, 2))


def _check_prediction(vid, item, index):
  """Raises the TalError that explains why `item` is not a valid prediction."""
  label = item.get('label') if isinstance(item, Mapping) else None
  if label not in index:
    raise TalError(f'prediction for video {vid}: label {label!r} is not a '
                   'ground-truth class')
  try:
    float(item['score'])
  except (KeyError, TypeError, ValueError):
    raise TalError(f'prediction for video {vid}: bad or missing "score"'
                   ) from None
  _segment(item, f'prediction for video {vid}')


def _find_bad_prediction(predictions, index):
  for vid, items in predictions.items():
    for item in items:
      _check_prediction(vid, item, index)
  raise TalError('predictions: malformed entry')  # not reached normally


def _flatten_predictions(predictions, videos, index):
  """{vid: [{segment, score, label}]} -> arrays; unknown video -> -1.

  Fast path: list comprehensions and one array conversion; any failure
  rescans to raise a TalError naming the video.
  """
  mapping = match_video_ids(videos, predictions)
  vindex = {v: i for i, v in enumerate(videos)}
  counts, pv, labels, segs, scores = [], [], [], [], []
  try:
    for vid, items in predictions.items():
      pv.append(vindex[mapping[vid]] if mapping[vid] is not None else -1)
      counts.append(len(items))
      labels += [index[it['label']] for it in items]
      segs += [it['segment'] for it in items]
      scores += [it['score'] for it in items]
    if set(map(len, segs)) - {2}:
      raise ValueError
    seg_arr = np.fromiter(itertools.chain.from_iterable(segs), np.float64,
                          count=2 * len(segs)).reshape(-1, 2)
    score_arr = np.array(scores, np.float64)
  except (KeyError, TypeError, ValueError):
    _find_bad_prediction(predictions, index)
  pred_video = np.repeat(np.array(pv, np.int64), counts)
  unknown = int((pred_video < 0).sum())
  if unknown:
    warnings.warn(f'{unknown} predictions are for videos not in the ground '
                  'truth; they count as false positives')
  return pred_video, np.array(labels, np.int64), seg_arr, score_arr


def detection_ap_table(ground_truth, predictions, tiou_thresholds,
                       tie_order='mmaction2', class_names=None,
                       dtype=np.float64, toolkit_iou=False):
  """AP [T, C'] over the C' classes that have ground truth, and their names.

  Args:
    ground_truth: {video_id: [{'segment': [s, e], 'label': str}, ...]}.
    predictions: {video_id: [{'segment', 'score', 'label'}, ...]} (the
      ActivityNet results JSON's "results"); ids match with or without `v_`.
      A label outside the classes raises TalError; a video outside the ground
      truth gives false positives and one warning with the count.
    class_names: optional class list; without it the classes are the ground
      truth's labels in order of first appearance (as MMAction2). Classes with
      no ground-truth segment are left out of the table (warning).
  """
  videos, classes, index, gt = _flatten_ground_truth(ground_truth,
                                                     class_names)
  pred = _flatten_predictions(predictions, videos, index)
  ap = detection_average_precision(*gt, *pred, len(classes), tiou_thresholds,
                                   tie_order, dtype, toolkit_iou)
  has_gt = np.bincount(gt[1], minlength=len(classes)) > 0
  if not has_gt.all():
    warnings.warn(f'{int((~has_gt).sum())} classes have no ground truth; '
                  'left out of the mean')
  if not has_gt.any():
    raise TalError('the ground truth holds no segments')
  return ap[:, has_gt], [c for c, h in zip(classes, has_gt) if h]


def _map_dict(ap, tiou_thresholds):
  maps = ap.mean(axis=1)
  out = {f'mAP@{t:.2f}': float(m) for t, m in zip(tiou_thresholds, maps)}
  out['average_mAP'] = float(maps.mean())
  return out


def activitynet_map(ground_truth, predictions,
                    tiou_thresholds=ANET_TIOU_THRESHOLDS,
                    tie_order='mmaction2', class_names=None):
  """ActivityNet detection mAP as MMAction2's ActivityNetLocalization.

  Args: see `detection_ap_table`. tie_order: 'mmaction2' (default) sorts
    each class's predictions by score with a stable sort, so equal scores
    keep their input order (MMAction2 1.2.0); 'official' uses the ActivityNet
    toolkit's `argsort()[::-1]` (0.972 instead of 0.977 average mAP on the
    official sample submission, whose scores are all 1.0).

  Returns:
    {'mAP@0.50': .., ..., 'mAP@0.95': .., 'average_mAP': ..} fractions.
  """
  ap, _ = detection_ap_table(ground_truth, predictions, tiou_thresholds,
                             tie_order, class_names)
  return _map_dict(ap, tiou_thresholds)


def thumos14_map(ground_truth, predictions,
                 tiou_thresholds=THUMOS_REPORT_THRESHOLDS, class_names=None):
  """THUMOS14 mAP as MMAction2 0.24.1's SSN `eval_ap`.

  Per class `average_precision_at_temporal_iou` (unchanged in 1.2.0, so the
  golden test uses 1.2.0's): `argsort()[::-1]` score order, float32
  precision/recall, AP rounded to float32. Inputs as `detection_ap_table`.
  Default thresholds 0.3..0.7 (the usual report); pass
  THUMOS_TIOU_THRESHOLDS for SSN's full np.arange(0.1, 1.0, .1). One
  difference: SSN averages over all model classes, so a class without gt
  and without detections adds an AP of 0; here it is left out (THUMOS14's
  20 test classes all have gt).

  Returns:
    {'mAP@0.30': .., ..., 'average_mAP': mean over the given thresholds}.
  """
  ap, _ = detection_ap_table(ground_truth, predictions, tiou_thresholds,
                             'official', class_names, np.float32)
  return _map_dict(ap, tiou_thresholds)


# ------------------------------------- THUMOS14 as OpenTAD and BSN/BMN report

# BSN / BMN on THUMOS14: AR@AN at these AN, averaged over tIoU 0.5:0.05:1.0.
THUMOS_AR_AN_POINTS = (50, 100, 200, 500, 1000)
THUMOS_AR_TIOU_THRESHOLDS = np.linspace(0.5, 1.0, 11)


def remove_duplicate_annotations(annotations, tol=1e-3):
  """OpenTAD's `remove_duplicate_annotations`: drops segments of length <= 0
  and repeats (same label, both ends within tol) of an earlier one."""
  kept = []
  for ann in annotations:
    s, e = _segment(ann, 'ground truth')
    if e - s <= 0:
      continue
    if not any(abs(s - ks) <= tol and abs(e - ke) <= tol and
               ann['label'] == k['label'] for k, (ks, ke) in
               ((k, _segment(k, 'ground truth')) for k in kept)):
      kept.append(ann)
  return kept


def thumos14_opentad_map(ground_truth, predictions,
                         tiou_thresholds=THUMOS_REPORT_THRESHOLDS,
                         class_names=None):
  """THUMOS14 mAP as OpenTAD's `mAP` evaluator (its THUMOS configs).

  The ActivityNet toolkit's interpolated AP (float64, `argsort()[::-1]`
  score order, float64 IoU) per class over the ground truth's classes, after
  OpenTAD's `remove_duplicate_annotations`. Inputs as `detection_ap_table`,
  except that predictions whose label is no ground-truth class (nor in
  class_names) are ignored, as OpenTAD does.

  Returns:
    {'mAP@0.30': .., ..., 'mAP@0.70': .., 'average_mAP': ..} fractions.
  """
  gt = {v: remove_duplicate_annotations(a) for v, a in ground_truth.items()}
  known = set(class_names or []) | {a.get('label') for anns in gt.values()
                                    for a in anns}
  for v, items in predictions.items():
    for p in items:
      if isinstance(p, Mapping) and 'label' not in p:
        raise TalError(f'prediction for video {v}: no "label" (detections '
                       'need one; proposals go to --proposals)')
  predictions = {v: [p for p in items
                     if not isinstance(p, Mapping) or p.get('label') in known]
                 for v, items in predictions.items()}
  ap, _ = detection_ap_table(gt, predictions, tiou_thresholds, 'official',
                             class_names, toolkit_iou=True)
  return _map_dict(ap, tiou_thresholds)


def thumos14_ar_an(gt_by_video, proposals_by_video,
                   points=THUMOS_AR_AN_POINTS,
                   temporal_iou_thresholds=THUMOS_AR_TIOU_THRESHOLDS):
  """AR@AN of THUMOS14 proposals as BSN / BMN report it.

  The AR-AN curve of `average_recall_at_avg_proposals` up to
  max(points) proposals per video, recall averaged over tIoU
  0.5:0.05:1.0, read at each AN (the curve has 100 points, AN = k x
  max(points) / 100, so every point must be a multiple of max / 100).

  Returns:
    {'AR@50': .., ..., 'AR@1000': ..} fractions.
  """
  top = max(points)
  if any((p * 100) % top for p in points):
    raise ValueError(f'AR@AN points {points} are not on the curve of '
                     f'{top} / 100 steps')
  mapping = match_video_ids(gt_by_video, proposals_by_video)
  proposals = {g: proposals_by_video[v] for v, g in mapping.items() if g}
  total = sum(len(p) for p in proposals_by_video.values())
  recall, _, _, _ = average_recall_at_avg_proposals(
      gt_by_video, proposals, total, top, temporal_iou_thresholds)
  return {f'AR@{p}': float(np.mean(recall[:, p * 100 // top - 1]))
          for p in points}
