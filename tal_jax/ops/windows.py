"""Sliding windows over long videos, as OpenTAD's THUMOS14 setting.

The behaviour of OpenTAD (sming256/OpenTAD, `SlidingWindowDataset`,
`ThumosSlidingDataset`, `SlidingWindowTrunc`, `convert_to_seconds`,
`batched_nms` with its 1-d soft-NMS, `UntrimmedNetTHUMOSClassifier`), written
for tal_jax (numpy, host side); golden fixtures from OpenTAD's own functions
in tests/golden/make_windows_golden.py.

Units: a *snippet* is one feature row; snippet i sits at frame
i * snippet_stride (+ offset_frames). Window bounds are snippet indices
[start, end) into the video's [L, D] features; window labels and decoded
proposals are in snippets from the window's first snippet.

  bounds = window_bounds(num_frames, snippet_stride, 128, 0.5)   # [W, 2]
  feats, mask = window_features(video_feats, *bounds[w], 128)
  keep, gt = window_labels(gt_frames, starts * stride, ends..., 0.9)
  segs, scores, idx = batched_nms(segs, scores, sigma=0.3, ...)   # per window
  seconds = to_video_seconds(segs, stride, start_frame, 0, fps, duration)
  segs, labels, scores = untrimmednet_fusion(video_scores, segs, scores, 2)
  ... concatenated over windows, batched_nms again per video.
"""

from typing import Sequence

import numpy as np

# UntrimmedNet's THUMOS14 scores (`uNet_test.npy`, [videos, 101]) are over the
# 101 UCF101 classes; the 20 detection classes are these columns (1-based
# class ids of OpenTAD's `UntrimmedNetTHUMOSClassifier`), in THUMOS14's
# alphabetical order (tal_jax.data.thumos14.CLASSES).
UNTRIMMEDNET_CLASS_IDS = (7, 9, 12, 21, 22, 23, 24, 26, 31, 33, 36, 40, 45,
                          51, 68, 79, 85, 92, 93, 97)


def window_bounds(num_frames: int, snippet_stride: int, window_size: int,
                  overlap_ratio: float) -> np.ndarray:
  """Windows of one video: [W, 2] int64 snippet indices [start, end).

  Snippets sit at frames 0, stride, 2 * stride, ... < num_frames. Windows
  step by int(window_size * (1 - overlap_ratio)) snippets; the last one is
  moved back to end at the last snippet (so no window is cut short unless
  the video has fewer than window_size snippets), and there is always one.
  """
  snippets = len(range(0, int(num_frames), int(snippet_stride)))
  stride = int(window_size * (1 - overlap_ratio))
  out = []
  for idx in range(max(1, snippets // stride)):
    start, end = idx * stride, idx * stride + window_size
    if end > snippets:
      out.append((max(0, snippets - window_size), snippets))
      break
    out.append((start, end))
  return np.asarray(out, np.int64).reshape(-1, 2)


def gt_completeness(gt: np.ndarray, anchor: Sequence[float]
                    ) -> tuple[np.ndarray, np.ndarray]:
  """How much of each gt lies inside a window, and the gt cut to it.

  Args:
    gt: [G, 2] (start, end) frames; anchor: (first, last) frame of the window
      (the first and last snippet's frame, as OpenTAD).

  Returns:
    completeness [G] float64 (0 for gts not overlapping the open interval),
    truncated [G, 2] gt clipped to the anchor (same dtype as gt).
  """
  gt = np.asarray(gt)
  lo, hi = anchor
  overlap = (gt[:, 0] < hi) & (gt[:, 1] > lo)
  inside = np.minimum(gt[:, 1], hi) - np.maximum(gt[:, 0], lo)
  length = np.maximum(gt[:, 1] - gt[:, 0], 1e-6)
  completeness = np.where(overlap, inside / length, 0.0)
  truncated = np.stack([np.maximum(gt[:, 0], lo), np.minimum(gt[:, 1], hi)],
                       axis=1)
  return completeness, truncated


def window_labels(gt: np.ndarray, labels: np.ndarray, first_frame: int,
                  last_frame: int, snippet_stride: int, offset_frames: int,
                  ioa_thresh: float):
  """Training labels of one window, or None when it holds no complete gt.

  Args:
    gt: [G, 2] float32 frames; labels: [G] int.
    first_frame / last_frame: frames of the window's first and last snippet.
    ioa_thresh: a gt counts when more than this fraction of it is inside.

  Returns:
    None, or (segments [G', 2] float32 in snippets from the window's start:
    (frame - first_frame - offset_frames) / snippet_stride of the truncated
    gt, labels [G']).
  """
  completeness, truncated = gt_completeness(gt, (first_frame, last_frame))
  keep = completeness > ioa_thresh
  if not keep.any():
    return None
  segs = (truncated[keep] - np.float32(first_frame) -
          np.float32(offset_frames)) / np.float32(snippet_stride)
  return segs.astype(np.float32), np.asarray(labels)[keep]


def window_features(features: np.ndarray, start: int, end: int,
                    window_size: int) -> tuple[np.ndarray, np.ndarray]:
  """Rows [start, end) of [L, D] features, zero-padded to [window_size, D]
  float32, and the mask [window_size] bool of real rows."""
  rows = np.asarray(features[min(start, len(features)):min(end,
                                                           len(features))],
                    np.float32)
  out = np.zeros((window_size, features.shape[1]), np.float32)
  out[:len(rows)] = rows
  return out, np.arange(window_size) < len(rows)


def to_video_seconds(segments: np.ndarray, snippet_stride: int,
                     first_frame: float, offset_frames: float, fps: float,
                     duration: float) -> np.ndarray:
  """[K, 2] window snippets -> video seconds, clipped to [0, duration].

  (x * snippet_stride + first_frame + offset_frames) / fps in float32 (as
  OpenTAD's torch code); values <= 0 become 0, values >= duration become
  duration.
  """
  s = np.asarray(segments, np.float32)
  s = (s * np.float32(snippet_stride) + np.float32(first_frame) +
       np.float32(offset_frames)) / np.float32(fps)
  s = np.where(s <= 0, np.float32(0), s)
  return np.where(s >= np.float32(duration), np.float32(duration),
                  s).astype(np.float32)


def _compact(order: np.ndarray, removed: np.ndarray) -> np.ndarray:
  """Removes flagged entries as OpenTAD's C++ loop does: scanning left to
  right, each removed slot is refilled from the tail (its last kept entry)."""
  kept = int((~removed).sum())
  holes = np.flatnonzero(removed[:kept])
  fill = np.flatnonzero(~removed[kept:])[::-1] + kept
  out = order[:kept].copy()
  out[holes] = order[fill]
  return out


def soft_nms_1d(segments: np.ndarray, scores: np.ndarray, sigma: float,
                min_score: float, method: int = 2, iou_threshold: float = 0.,
                t1: float = 0., t2: float = 0., max_num: int = 0):
  """OpenTAD's `softnms_1d_cpu` in float32: (segments [K, 2], scores [K],
  index [K] into the inputs), in selection order.

  Each step takes the highest remaining score (first in the current order
  on ties), decays the others by its overlap (method 0 hard, 1 linear,
  2 Gaussian exp(-iou^2 / sigma), 3 Gaussian above t1 + t2 * length) and
  drops those below min_score. Lengths carry OpenTAD's +1e-6. max_num > 0
  stops after that many picks (later picks never change earlier ones, so
  this is OpenTAD's result cut to max_num).
  """
  segs = np.asarray(segments, np.float32).reshape(-1, 2)
  sc = np.asarray(scores, np.float32).copy()
  area = (segs[:, 1] - segs[:, 0]) + np.float32(1e-6)
  order = np.arange(len(sc))
  picked = []
  i = 0
  while i < len(order) and (max_num <= 0 or i < max_num):
    j = i + int(np.argmax(sc[order[i:]]))
    order[[i, j]] = order[[j, i]]
    top = order[i]
    picked.append(top)
    rest = order[i + 1:]
    inter = np.maximum(np.float32(0), np.minimum(segs[top, 1], segs[rest, 1])
                       - np.maximum(segs[top, 0], segs[rest, 0]))
    iou = inter / (area[top] + area[rest] - inter)
    sc[rest] *= _decay(iou, area[top], method, sigma, iou_threshold, t1, t2)
    order = np.concatenate([order[:i + 1], _compact(
        rest, sc[rest] < np.float32(min_score))])
    i += 1
  picked = np.asarray(picked, np.int64)
  return segs[picked], sc[picked], picked


def _decay(iou, area, method, sigma, iou_threshold, t1, t2):
  """[R] float32 score factors of soft-NMS `method` (see soft_nms_1d)."""
  gauss = np.exp(-(iou * iou) / np.float32(sigma)).astype(np.float32)
  one = np.ones_like(iou)
  if method == 0:
    return np.where(iou >= np.float32(iou_threshold), np.float32(0), one)
  if method == 1:
    return np.where(iou >= np.float32(iou_threshold), 1 - iou, one)
  if method == 2:
    return gauss
  return np.where(iou >= np.float32(t1) + np.float32(t2) * area, gauss, one)


def segment_voting(kept: np.ndarray, segments: np.ndarray,
                   scores: np.ndarray, iou_threshold: float) -> np.ndarray:
  """[N, 2] kept segments moved to the score-weighted mean of all [K, 2]
  input segments overlapping them by IoU >= iou_threshold (OpenTAD's
  `seg_voting`, float32). A zero-length kept segment (a proposal past the
  video's end, clipped to [duration, duration]) overlaps nothing (0/0):
  OpenTAD makes it NaN, tal_jax keeps it as it is."""
  with np.errstate(divide='ignore', invalid='ignore'):
    return _voting(kept, segments, scores, iou_threshold)


def _voting(kept, segments, scores, iou_threshold):
  a, b = kept[:, None, :], segments[None, :, :]
  inter = np.maximum(np.minimum(a[..., 1], b[..., 1]) -
                     np.maximum(a[..., 0], b[..., 0]), np.float32(0))
  union = (a[..., 1] - a[..., 0]) + (b[..., 1] - b[..., 0]) - inter
  weights = (inter / union >= np.float32(iou_threshold)) * scores[None, :]
  total = weights.sum(axis=1, keepdims=True)
  weights = (weights / total).astype(np.float32)
  voted = (weights @ segments).astype(np.float32)
  return np.where(total > 0, voted, kept).astype(np.float32)


def batched_nms(segments: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                sigma: float, min_score: float, max_seg_num: int,
                voting_thresh: float = 0.):
  """OpenTAD's class-agnostic `batched_nms` with Gaussian soft-NMS
  (use_soft_nms=True, multiclass=False, method 2).

  Args:
    segments: [K, 2]; scores: [K]; labels: [K] (carried along).

  Returns:
    (segments [N, 2] float32, scores [N] float32, labels [N]), N <=
    max_seg_num, by descending score (stable on ties); with voting_thresh
    > 0 each kept segment is replaced by `segment_voting` over the inputs.
  """
  segs = np.asarray(segments, np.float32).reshape(-1, 2)
  sc = np.asarray(scores, np.float32).reshape(-1)
  labels = np.asarray(labels)
  if not len(sc):
    return segs, sc, labels[:0]
  kept, kept_scores, idx = soft_nms_1d(segs, sc, sigma, min_score,
                                       max_num=max_seg_num)
  if voting_thresh > 0:
    kept = segment_voting(kept, segs, sc, voting_thresh)
  order = np.argsort(-kept_scores, kind='stable')[:max_seg_num]
  return kept[order], kept_scores[order], labels[idx][order]


def untrimmednet_fusion(video_scores: np.ndarray, segments: np.ndarray,
                        scores: np.ndarray, topk: int):
  """Labels from UntrimmedNet video scores (OpenTAD's
  `UntrimmedNetTHUMOSClassifier`): each proposal once per top-k class.

  Args:
    video_scores: [101] the video's row of `uNet_test.npy` (row = the
      video's number - 1, e.g. video_test_0000004 -> row 3).
    segments: [K, 2]; scores: [K] float32.

  Returns:
    (segments [topk * K, 2], class indices [topk * K] into the 20 THUMOS14
    classes, scores [topk * K] float32 = proposal score x class score),
    class by class from the best. Equal class scores rank the later class
    first (OpenTAD sorts (score, index) pairs).
  """
  cls = np.asarray(video_scores)[np.asarray(UNTRIMMEDNET_CLASS_IDS) - 1]
  ranked = sorted((float(c), i) for i, c in enumerate(cls))[::-1][:topk]
  sc = np.asarray(scores, np.float32)
  segs = np.concatenate([np.asarray(segments)] * len(ranked))
  labels = np.concatenate([np.full(len(sc), i, np.int64) for _, i in ranked])
  fused = np.concatenate([sc * np.float32(cls[i]) for _, i in ranked])
  return segs, labels, fused.astype(np.float32)


def untrimmednet_row(video: str) -> int:
  """Row of a THUMOS14 test video in `uNet_test.npy`: its last four digits
  - 1 (OpenTAD: int(video_id[-4:]) - 1)."""
  return int(video[-4:]) - 1
