"""BSN training targets as MMAction2 1.2.0 (TEM.generate_labels, LoadProposals).

TEM labels of a video with gt segments g = [G, 2] in [0, 1] (clipped, as
`GenerateLocalizationLabels` / `segments.normalize_gt` give them), for the
anchors [i/T, (i+1)/T]:
  action[i] = max over gts of IoP(anchor, gt)
  start[i]  = max over gts of IoP(anchor, [s - pad/2, s + pad/2])
  end[i]    = max over gts of IoP(anchor, [e - pad/2, e + pad/2])
with pad = max(1/T, boundary_ratio * (e - s)) per gt and IoP the intersection
over the anchor's length. Computed in float64 with MMAction2's operation order,
then cast to float32 (bit-identical labels).

PEM targets are the PGM proposals' `match_iou` column after MMAction2's float32
CSV round trip, for the first top_k proposals of each video (train: 500).
"""

from typing import Sequence

import numpy as np

from tal_jax.ops import segments


def tem_anchors(temporal_dim: int) -> tuple[np.ndarray, np.ndarray]:
  """TEM anchors (tmin, tmax), each [T] float64: i/T and (i+1)/T.

  Written as MMAction2's `temporal_gap * (i + offset)`; they are also the
  tmin/tmax columns of the TEM result CSV.
  """
  gap = 1. / temporal_dim
  i = np.arange(temporal_dim, dtype=np.float64)
  return gap * (i + 0.), gap * (i + 1.)


def tem_targets_batch(gt: np.ndarray, gt_mask: np.ndarray, temporal_dim: int,
                      boundary_ratio: float = 0.1):
  """TEM labels for many videos, vectorised.

  Args:
    gt: [N, G, 2] gt segments in [0, 1] (start, end), float64.
    gt_mask: [N, G] bool, True for real segments. A video without segments
      gets all-zero labels (MMAction2 would fail on it).
    temporal_dim: T.
    boundary_ratio: MMAction2 `boundary_ratio` (0.1).

  Returns:
    (action, start, end), each [N, T] float32.
  """
  gt = np.asarray(gt, np.float64)
  gt_mask = np.asarray(gt_mask, bool)
  if gt.ndim != 3 or gt.shape[-1] != 2 or gt_mask.shape != gt.shape[:2]:
    raise ValueError(f'gt must be [N, G, 2] and gt_mask [N, G], got '
                     f'{gt.shape} and {gt_mask.shape}')
  amin, amax = tem_anchors(temporal_dim)
  tmins, tmaxs = gt[..., 0], gt[..., 1]
  pad = np.maximum(1. / temporal_dim, boundary_ratio * (tmaxs - tmins))
  regions = ((tmins, tmaxs), (tmins - pad / 2, tmins + pad / 2),
             (tmaxs - pad / 2, tmaxs + pad / 2))
  out = []
  for lo, hi in regions:
    # [N, G, T]
    iop = segments.temporal_iop(amin, amax, lo[..., None], hi[..., None])
    out.append(np.where(gt_mask[..., None], iop, 0.).max(axis=1, initial=0.)
               .astype(np.float32))
  return tuple(out)


def tem_targets(gt_segments: np.ndarray, temporal_dim: int,
                boundary_ratio: float = 0.1):
  """TEM labels of one video: gt_segments [G, 2] -> (action, start, end) [T]."""
  gt = np.asarray(gt_segments, np.float64).reshape(1, -1, 2)
  labels = tem_targets_batch(gt, np.ones(gt.shape[:2], bool), temporal_dim,
                             boundary_ratio)
  return tuple(x[0] for x in labels)


def pem_targets(proposals: Sequence[np.ndarray], bsp_features:
                Sequence[np.ndarray], top_k: int = 500):
  """PEM training arrays, padded to top_k proposals per video.

  Args:
    proposals: per video [P_i, 7] PGM proposals (tmin, tmax, tmin_score,
      tmax_score, score, match_iou, match_ioa), sorted as PGM writes them.
    bsp_features: per video [P_i', 32] BSP features (P_i' >= min(P_i, top_k)).
    top_k: proposals kept per video (MMAction2 train pipeline: 500).

  Returns:
    bsp_feature [N, top_k, 32] float32, reference_temporal_iou [N, top_k]
    float32 and valid [N, top_k] bool (False on padding); values are the
    float32 round trip of MMAction2's CSV / .npy files.
  """
  n = len(proposals)
  if len(bsp_features) != n:
    raise ValueError(f'{n} proposal arrays but {len(bsp_features)} features')
  dim = bsp_features[0].shape[-1] if n else 32
  feature = np.zeros((n, top_k, dim), np.float32)
  iou = np.zeros((n, top_k), np.float32)
  valid = np.zeros((n, top_k), bool)
  for i, (props, feats) in enumerate(zip(proposals, bsp_features)):
    k = min(len(props), top_k)
    feature[i, :k] = np.asarray(feats[:k]).astype(np.float32)
    iou[i, :k] = np.asarray(props[:k, 5]).astype(np.float32)
    valid[i, :k] = True
  return feature, iou, valid
