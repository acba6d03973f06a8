"""BMN proposals of sliding windows, as OpenTAD's `BMN.post_processing`.

For THUMOS14 windows (tal_jax.data.thumos14_windows), OpenTAD decodes each
window's maps with its own rule (not MMAction2's, see postprocess.py):
- start candidates: bins above half the curve's maximum or equal to the
  max over their 3-neighbourhood, and bin 0; end candidates likewise, and
  the last bin;
- cells (d, t) with t + d < T and d < max_duration (OpenTAD's dscale), both
  boundaries candidates, give segment [t, t + d + 1) snippets with score
  reg * cls (score_type 'iou');
- then class-agnostic Gaussian soft-NMS with voting (`ops.windows.batched_nms`).
"""

import numpy as np

from tal_jax.ops import windows


def boundary_candidates(curve: np.ndarray) -> np.ndarray:
  """[T] bool: OpenTAD's `boundary_choose` of one [T] float32 curve."""
  padded = np.concatenate([[-np.inf], curve, [-np.inf]])
  pooled = np.maximum(np.maximum(padded[:-2], padded[1:-1]), padded[2:])
  return (curve > curve.max() * np.float32(0.5)) | (curve == pooled)


def window_candidates(confidence_map: np.ndarray, start: np.ndarray,
                      end: np.ndarray, max_duration: int):
  """Candidates of one window.

  Args:
    confidence_map: [T, T, 2] float32 (duration, start, (reg, cls)).
    start, end: [T] float32 boundary probabilities.
    max_duration: cells with duration index d < max_duration are decoded.

  Returns:
    (segments [M, 2] float32 snippets, scores [M] float32), duration-major.
  """
  t = len(start)
  s_ok = boundary_candidates(np.asarray(start, np.float32))
  e_ok = boundary_candidates(np.asarray(end, np.float32))
  s_ok[0] = True
  e_ok[-1] = True
  d, s = np.meshgrid(np.arange(min(max_duration, t)), np.arange(t),
                     indexing='ij')
  e = s + d
  keep = (e < t) & s_ok[s] & e_ok[np.minimum(e, t - 1)]
  conf = np.asarray(confidence_map, np.float32)
  scores = conf[d[keep], s[keep], 0] * conf[d[keep], s[keep], 1]
  segs = np.stack([s[keep], e[keep] + 1], axis=1).astype(np.float32)
  return segs, scores


def decode_windows(outputs, test):
  """(confidence maps [B, T, T, 2], starts [B, T], ends [B, T]) ->
  (proposals [B, K, 3] (start, end, score) in [0, 1] of the window,
  valid [B, K]), K = test.nms_max_seg_num; `test`: config.test of a
  THUMOS14 window config (configs/bmn_thumos14.py)."""
  conf, start, end = (np.asarray(x) for x in outputs)
  t = test
  k, temporal_dim = t.nms_max_seg_num, start.shape[1]
  props = np.zeros((len(conf), k, 3), np.float64)
  valid = np.zeros((len(conf), k), bool)
  for b in range(len(conf)):
    segs, scores = window_candidates(conf[b], start[b], end[b],
                                     t.max_duration)
    segs, scores, _ = windows.batched_nms(
        segs, scores, np.zeros(len(scores)), t.nms_sigma, t.nms_min_score,
        k, t.nms_voting_thresh)
    n = len(scores)
    props[b, :n, :2] = segs / temporal_dim
    props[b, :n, 2] = scores
    valid[b, :n] = True
  return props, valid
