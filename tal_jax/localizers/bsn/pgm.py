"""BSN proposal generation (PGM) and PEM post-processing, vectorised numpy.

Same numbers as MMAction2 1.2.0 (`localizers/utils/bsn_utils.py`,
`tools/misc/bsn_proposal_generation.py`, `PEM.predict`), without its per-bin
Python loops:

  tem_result = tem_result_table(tem_output)            # [N, T, 5] float32
  proposals = generate_candidate_proposals(tem_result, gts)   # list [P, 7] f64
  features = generate_bsp_feature(tem_result, proposals, top_k=1000)
  # (or both at once: proposals, features = proposal_generation(...))
  ... PEM forward on features[:top_k] ...
  picks, valid = pem_post_processing(proposals_f32, pem_output, valid)
  seconds = to_seconds(picks, duration_frame, duration_second)

Exactness (each mirrors what MMAction2's numpy code computes):
- MMAction2 hands results between stages through CSV files written with
  `np.savetxt` ('%.18e', an exact float64 round trip) and read back as float32,
  so every stage sees float32 copies of the previous one's float64 values:
  `tem_result_table` gives the TEM CSV as read back (scores, float32(i/T),
  float32((i+1)/T)), and BSP features take `proposals.astype(np.float32)`.
- Candidates: bin 0 and bin T-1 always; inner bins that are strict local
  maxima or > float32(peak_threshold) * max (float32). Positions (i+0.5)/T as
  `tgap/2 + tgap*i` in float64; pairs ordered end-major, start-minor as
  MMAction2's loops; score = tmin_score * tmax_score (float64); sorted with
  numpy's own `argsort()[::-1]` on the same array, so equal scores come out
  in MMAction2's order on the same numpy; match_iou / match_ioa against the
  gts divided by the corrected duration, NOT clipped (unlike the TEM labels).
- BSP features: sample positions in float32 with MMAction2's operation order
  (NumPy 2 keeps Python scalars weak, so its scalar code runs in float32),
  `np.interp` in float64 on the action curve zero-padded by int(T/4 + 10)
  bins, and window means summed as numpy's 1-d `np.mean` does
  (((a0 + a1) + a2) + a3) / 4.
- PEM score = (pem * tmin_score) * tmax_score in float32; soft-NMS is
  `tal_jax.ops.soft_nms.post_processing` (float32, numpy tie order; XLA's exp
  may differ from numpy's by an ulp, so scores agree to ~1e-8, not bits);
  seconds are float32 products, as MMAction2's np.float32 * Python float.
The float32 scalar semantics and sort order assume the NumPy the reference
ran with (2.4.x, as here).
"""

from typing import Any, Mapping, Sequence

import numpy as np

from tal_jax.localizers.bsn import targets as bsn_targets
from tal_jax.errors import TalError
from tal_jax.ops import segments
from tal_jax.ops import soft_nms


def tem_result_table(tem_output) -> np.ndarray:
  """TEM outputs -> MMAction2's TEM result rows as its CSV reads back.

  Args:
    tem_output: [N, T, 3] float32 (action, start, end).
  Returns:
    [N, T, 5] float32 (action, start, end, tmin, tmax), tmin/tmax the
    anchors i/T and (i+1)/T rounded to float32.
  """
  out = np.asarray(tem_output, np.float32)
  n, t = out.shape[:2]
  tmin, tmax = bsn_targets.tem_anchors(t)
  anchors = np.stack([tmin, tmax], -1).astype(np.float32)
  return np.concatenate([out[..., :3], np.broadcast_to(anchors, (n, t, 2))],
                        axis=-1)


def pgm_gt_segments(video_record: Mapping[str, Any],
                    video_name: str = '') -> np.ndarray:
  """Gt segments for PGM's match_iou: seconds / corrected duration, unclipped.

  corrected duration = feature_frame / duration_frame * duration_second.
  Returns [G, 2] float64.
  """
  try:
    corrected_second = (
        float(video_record['feature_frame']) / video_record['duration_frame'] *
        video_record['duration_second'])
    segments = [(a['segment'][0] / corrected_second,
                 a['segment'][1] / corrected_second)
                for a in video_record['annotations']]
  except (KeyError, TypeError, IndexError, ZeroDivisionError) as e:
    raise TalError(f'annotation of video {video_name!r}: missing or malformed '
                   f'key {e}') from None
  return np.asarray(segments, np.float64).reshape(-1, 2)


def boundary_candidates(scores, peak_threshold: float = 0.5) -> np.ndarray:
  """Candidate bins of start (or end) curves.

  Args:
    scores: [N, T] float32 start or end probabilities.
    peak_threshold: inner bins above float32(peak_threshold) * max count.
  Returns:
    [N, T] bool: bins 0 and T-1, strict local maxima, and bins above the
    threshold.
  """
  scores = np.asarray(scores, np.float32)
  threshold = np.float32(peak_threshold) * scores.max(axis=-1, keepdims=True)
  mid = scores[:, 1:-1]
  inner = ((mid > scores[:, 2:]) & (mid > scores[:, :-2])) | (mid > threshold)
  bins = np.ones(scores.shape, bool)
  bins[:, 1:-1] = inner
  return bins


def _match(tmin, tmax, gt):
  """Max over gts of MMAction2's temporal_iou and temporal_iop; [P] each."""
  if not len(gt):
    return np.zeros_like(tmin), np.zeros_like(tmin)
  gmin, gmax = gt[None, :, 0], gt[None, :, 1]
  pmin, pmax = tmin[:, None], tmax[:, None]
  iou = segments.temporal_iou(pmin, pmax, gmin, gmax)
  ioa = segments.temporal_iop(pmin, pmax, gmin, gmax)
  return iou.max(axis=1), ioa.max(axis=1)


def _video_candidates(start, end, start_bins, end_bins, gt):
  """One video's candidate proposals [P, 7] float64, sorted by score."""
  t = start.shape[0]
  tgap = 1. / t
  positions = tgap / 2 + tgap * np.arange(t, dtype=np.float64)
  s_idx, e_idx = np.flatnonzero(start_bins), np.flatnonzero(end_bins)
  ee, ss = np.nonzero(s_idx[None, :] < e_idx[:, None])  # end-major order
  s, e = s_idx[ss], e_idx[ee]
  props = np.empty((len(s), 7), np.float64)
  props[:, 0], props[:, 1] = positions[s], positions[e]
  props[:, 2], props[:, 3] = start[s], end[e]
  props[:, 4] = props[:, 2] * props[:, 3]
  props[:, :5] = props[props[:, 4].argsort()[::-1], :5]
  props[:, 5], props[:, 6] = _match(props[:, 0], props[:, 1], gt)
  return props


def generate_candidate_proposals(tem_result, gt_segments: Sequence[np.ndarray],
                                 peak_threshold: float = 0.5
                                 ) -> list[np.ndarray]:
  """MMAction2 `generate_candidate_proposals` for many videos.

  Args:
    tem_result: [N, T, >=3] float32 TEM outputs (action, start, end, ...),
      e.g. `tem_result_table(...)` or `bsn_io.read_tem_result` rows.
    gt_segments: N arrays [G_i, 2] from `pgm_gt_segments` (a video without
      gts gets match_iou = match_ioa = 0; MMAction2 fails on it).
    peak_threshold: 0.5.

  Returns:
    N arrays [P_i, 7] float64 (tmin, tmax, tmin_score, tmax_score, score,
    match_iou, match_ioa), sorted by descending score as MMAction2 writes
    them; P_i <= T*(T-1)/2 + 1.
  """
  tem = np.asarray(tem_result, np.float32)
  if tem.ndim != 3 or tem.shape[-1] < 3 or tem.shape[1] < 2:
    raise ValueError(f'tem_result must be [N, T>=2, >=3], got {tem.shape}')
  if len(gt_segments) != tem.shape[0]:
    raise ValueError(f'{tem.shape[0]} videos but {len(gt_segments)} gt arrays')
  start_bins = boundary_candidates(tem[..., 1], peak_threshold)
  end_bins = boundary_candidates(tem[..., 2], peak_threshold)
  return [
      _video_candidates(tem[i, :, 1], tem[i, :, 2], start_bins[i],
                        end_bins[i], np.asarray(gt_segments[i],
                                                np.float64).reshape(-1, 2))
      for i in range(tem.shape[0])
  ]


def _t_points(tem_result):
  """Sample grid [T + 2E] float32 and padded action curve [T + 2E] float64."""
  t = tem_result.shape[0]
  gap = tem_result[0, 4] - tem_result[0, 3]
  extend = int(t / 4 + 10)
  f32 = np.float32
  i_ext = np.arange(extend).astype(f32)
  begin = -gap / f32(2) - (f32(extend - 1) - i_ext) * gap
  middle = gap / f32(2) + np.arange(t).astype(f32) * gap
  end = (gap / f32(2) + tem_result[-1, 4]) + i_ext * gap
  zeros = np.zeros(extend)
  action = np.concatenate([zeros, tem_result[:, 0].astype(np.float64), zeros])
  return np.concatenate([begin, middle, end]).astype(f32), action


def _sample_times(lo, length, num_sample, num_sample_interp):
  """Float32 sample times [P, num_sample*interp + 1] as MMAction2 lists them.

  lo: [P] window start; length: [P] window length (both float32).
  """
  f32 = np.float32
  step = length / f32(num_sample - 1)
  sub = step / f32(num_sample_interp)
  i = np.arange(num_sample * num_sample_interp + 1).astype(f32)
  return (lo - step / f32(2))[:, None] + sub[:, None] * i[None, :]


def _window_means(values, num_sample, num_sample_interp):
  """Means of overlapping windows, bit-identical to numpy's 1-d `np.mean`.

  values: [P, num_sample*interp + 1] float64 -> [P, num_sample] float64. For
  fewer than 8 elements numpy sums left to right, ((a0 + a1) + a2) + a3, then
  divides by the count; longer windows fall back to `np.mean` per window.
  """
  width = num_sample_interp + 1
  idx = (np.arange(num_sample)[:, None] * num_sample_interp +
         np.arange(width)[None, :])
  windows = values[:, idx]  # [P, num_sample, width]
  if width >= 8:
    return np.apply_along_axis(np.mean, -1, windows)
  total = windows[..., 0].copy()
  for k in range(1, width):
    total += windows[..., k]
  return total / width


def video_bsp_feature(tem_result, proposals, bsp_boundary_ratio: float = 0.2,
                      num_sample_start: int = 8, num_sample_end: int = 8,
                      num_sample_action: int = 16,
                      num_sample_interp: int = 3) -> np.ndarray:
  """BSP features of one video's proposals (MMAction2 `generate_bsp_feature`).

  Args:
    tem_result: [T, 5] float32 TEM result rows (action, start, end, tmin, tmax).
    proposals: [P, >=2] float32 (tmin, tmax, ...) as read back from the
      proposal CSV (already cut to top_k).
  Returns:
    [P, 16 + 8 + 8] float64: action, start-region, end-region samples.
  """
  tem_result = np.asarray(tem_result, np.float32)
  t_points, action = _t_points(tem_result)
  tmin = np.asarray(proposals[:, 0], np.float32)
  tmax = np.asarray(proposals[:, 1], np.float32)
  tlen = tmax - tmin
  pad = tlen * np.float32(bsp_boundary_ratio)
  regions = ((tmin, tmax - tmin, num_sample_action),
             (tmin - pad, (tmin + pad) - (tmin - pad), num_sample_start),
             (tmax - pad, (tmax + pad) - (tmax - pad), num_sample_end))
  times = [_sample_times(lo, ln, n, num_sample_interp)
           for lo, ln, n in regions]
  flat = np.concatenate([x.reshape(-1) for x in times]).astype(np.float64)
  values = np.interp(flat, t_points.astype(np.float64), action)
  out, offset = [], 0
  for x, (_, _, n) in zip(times, regions):
    v = values[offset:offset + x.size].reshape(x.shape)
    offset += x.size
    out.append(_window_means(v, n, num_sample_interp))
  return np.concatenate(out, axis=1)


def generate_bsp_feature(tem_result, proposals: Sequence[np.ndarray],
                         top_k: int = 1000, **kwargs) -> list[np.ndarray]:
  """MMAction2 `generate_bsp_feature` for many videos.

  Args:
    tem_result: [N, T, 5] float32 (`tem_result_table`).
    proposals: N arrays [P_i, >=2]; they are rounded to float32 as MMAction2's
      CSV round trip does, then cut to top_k (1000 test, 500 train).
    **kwargs: `video_bsp_feature` options.
  Returns:
    N arrays [min(P_i, top_k), 32] float64 (saved as .npy by MMAction2).
  """
  return [video_bsp_feature(tem_result[i],
                            np.asarray(p).astype(np.float32)[:top_k], **kwargs)
          for i, p in enumerate(proposals)]


def proposal_generation(tem_output, gt_segments: Sequence[np.ndarray],
                        top_k: int = 1000, peak_threshold: float = 0.5,
                        **kwargs):
  """The whole PGM stage in memory, with MMAction2's float32 CSV round trips.

  Args:
    tem_output: [N, T, 3] float32 TEM outputs, or [N, T, 5] TEM result rows
      (MMAction2's CSVs as read back, anchors included) used as they are.
    gt_segments: N arrays [G_i, 2] (`pgm_gt_segments`).
    top_k: BSP features per video (test 1000, train 500).
    peak_threshold, **kwargs: as `generate_candidate_proposals` and
      `video_bsp_feature`.

  Returns:
    (proposals: N arrays [P_i, 7] float64 as MMAction2 writes them,
     bsp_features: N arrays [min(P_i, top_k), 32] float64 as it saves them).
  """
  tem_output = np.asarray(tem_output, np.float32)
  table = (tem_output if tem_output.shape[-1] == 5 else
           tem_result_table(tem_output))
  proposals = generate_candidate_proposals(table, gt_segments, peak_threshold)
  return proposals, generate_bsp_feature(table, proposals, top_k, **kwargs)


def pem_post_processing(proposals, pem_output, valid,
                        soft_nms_alpha: float = 0.75,
                        soft_nms_low_threshold: float = 0.65,
                        soft_nms_high_threshold: float = 0.9,
                        post_process_top_k: int = 100,
                        tie_break: str = 'numpy'):
  """PEM scores -> soft-NMS'd proposals (MMAction2 `PEM.predict` up to seconds).

  Args:
    proposals: [B, K, >=4] float32 PGM proposals as read back (tmin, tmax,
      tmin_score, tmax_score, ...), cut to the test top_k (1000).
    pem_output: [B, K] float32 PEM output.
    valid: [B, K] bool, False on padding.
    soft_nms_*, post_process_top_k, tie_break: see `soft_nms.soft_nms`.

  Returns:
    (picks [B, k, 3] float32 (tmin, tmax, score) in MMAction2's output order,
    valid [B, k] bool), k = min(top_k, K).
  """
  p = np.asarray(proposals, np.float32)
  score = (np.asarray(pem_output, np.float32) * p[..., 2]) * p[..., 3]
  table = np.stack([p[..., 0], p[..., 1], score], axis=-1)
  picks, ok = soft_nms.post_processing(
      table, valid, soft_nms_alpha, soft_nms_low_threshold,
      soft_nms_high_threshold, post_process_top_k, tie_break)
  return np.asarray(picks, np.float32), np.asarray(ok, bool)


def to_seconds(picks, duration_frame, duration_second,
               feature_extraction_interval: int = segments.FEATURE_EXTRACTION_INTERVAL):
  """Normalised picks [B, k, 3] -> seconds [B, k, 3] (start_s, end_s, score).

  As MMAction2: duration = float(frames // 16 * 16) / frames * seconds, and
  max(0, tmin) * duration, min(1, tmax) * duration in float32 (np.float32 *
  Python float); the score is returned as is. duration_frame,
  duration_second: [B].
  """
  picks = np.asarray(picks, np.float32)
  out = np.empty(picks.shape, np.float64)
  for b in range(picks.shape[0]):
    frames = int(duration_frame[b])
    used = frames // feature_extraction_interval * feature_extraction_interval
    duration = np.float32(float(used) / frames * float(duration_second[b]))
    out[b, :, 0] = np.maximum(np.float32(0), picks[b, :, 0]) * duration
    out[b, :, 1] = np.minimum(np.float32(1), picks[b, :, 1]) * duration
    out[b, :, 2] = picks[b, :, 2]
  return out
