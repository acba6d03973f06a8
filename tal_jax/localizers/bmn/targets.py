"""Training labels, as MMAction2 1.2.0 (`GenerateLocalizationLabels`, `BMN.generate_labels`).

BMN labels for a video with ground-truth segments normalised to [0, 1]:
  iou_map [T(duration), T(start)]: max over gts of the IoU of proposal
    [s/T, s/T + (d+1)/T] (tmax not clipped to 1) with the gt.
  start [T], end [T]: max over gts of the IoP (intersection over anchor) of the
    anchor [(i-0.5)/T, (i+1.5)/T] with [t - 1.5/T, t + 1.5/T] around each gt
    start (end) t.
Everything is computed in float64 with MMAction2's operation order and then
cast to float32, so the labels are bit-identical.
"""

import numpy as np

from tal_jax.ops import segments


def _match_map(tscale):
  """Proposal bounds (tmin, tmax) [T(duration), T(start)] float64."""
  gap = 1. / tscale
  tmin = gap * np.arange(tscale, dtype=np.float64)[None, :]
  tmax = tmin + gap * np.arange(1, tscale + 1, dtype=np.float64)[:, None]
  return np.broadcast_to(tmin, tmax.shape), tmax


def _anchors(tscale):
  """Boundary anchors (tmin, tmax) [T] float64: [(i-0.5)/T, (i+1.5)/T]."""
  gap = 1. / tscale
  i = np.arange(tscale, dtype=np.float64)
  return gap * (i + -0.5), gap * (i + 1.5)


def bmn_targets_batch(gt: np.ndarray, gt_mask: np.ndarray, temporal_dim: int,
                      chunk: int = 64):
  """BMN labels for many videos, vectorised.

  Args:
    gt: [N, Gmax, 2] gt segments in [0, 1] (start, end).
    gt_mask: [N, Gmax] bool, True for real segments (padding is ignored; a video
      without segments gets all-zero labels).
    temporal_dim: T.
    chunk: videos per vectorised step (bounds memory: chunk*Gmax*T*T float64).
  Returns:
    iou_map [N, T(duration), T(start)], start [N, T], end [N, T], float32.
  """
  gt = np.asarray(gt, np.float64)
  gt_mask = np.asarray(gt_mask, bool)
  if gt.ndim != 3 or gt.shape[-1] != 2 or gt_mask.shape != gt.shape[:2]:
    raise ValueError(f'gt must be [N, G, 2] and gt_mask [N, G], got '
                     f'{gt.shape} and {gt_mask.shape}')
  n, tscale = gt.shape[0], temporal_dim
  iou_map = np.zeros((n, tscale, tscale), np.float32)
  start = np.zeros((n, tscale), np.float32)
  end = np.zeros((n, tscale), np.float32)
  pmin, pmax = _match_map(tscale)
  amin, amax = _anchors(tscale)
  half_pad = 3 * (1. / tscale) / 2
  for lo in range(0, n, chunk):
    g = gt[lo:lo + chunk, :, None, None, :]
    m = gt_mask[lo:lo + chunk]
    iou = segments.temporal_iou(pmin, pmax, g[..., 0], g[..., 1]).astype(np.float32)
    iou_map[lo:lo + chunk] = np.where(m[:, :, None, None], iou, 0).max(
        axis=1, initial=0)
    for out, t in ((start, gt[lo:lo + chunk, :, 0]),
                   (end, gt[lo:lo + chunk, :, 1])):
      iop = segments.temporal_iop(amin, amax, (t - half_pad)[..., None],
                         (t + half_pad)[..., None])
      out[lo:lo + chunk] = np.where(m[..., None], iop, 0).max(
          axis=1, initial=0)
  return iou_map, start, end


def bmn_targets(gt_segments: np.ndarray, temporal_dim: int):
  """BMN labels of one video.

  Args:
    gt_segments: [G, 2] gt segments in [0, 1].
    temporal_dim: T.
  Returns:
    iou_map [T(duration), T(start)], start [T], end [T], float32.
  """
  gt = np.asarray(gt_segments, np.float64).reshape(1, -1, 2)
  iou_map, start, end = bmn_targets_batch(gt, np.ones(gt.shape[:2], bool),
                                          temporal_dim)
  return iou_map[0], start[0], end[0]
