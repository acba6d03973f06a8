"""Ground-truth segments and proposals between seconds and [0, 1], as MMAction2.

Shared by BMN and BSN: the labels' normalisation (`GenerateLocalizationLabels`),
the IoU / IoP of the label code, and the seconds of normalised proposals.
"""

from typing import Any, Mapping

import numpy as np

from tal_jax.errors import TalError

# MMAction2's `feature_extraction_interval`: frames per feature row (16).
FEATURE_EXTRACTION_INTERVAL = 16


def to_seconds(proposals, duration_frame, duration_second,
               feature_extraction_interval: int = FEATURE_EXTRACTION_INTERVAL):
  """Normalised proposals -> seconds, with MMAction2's duration factor.

  Args:
    proposals: [B, K, 3] (tmin, tmax, score) normalised.
    duration_frame: [B] frames; duration_second: [B] seconds.
    feature_extraction_interval: frames per feature (16).

  Returns:
    [B, K, 3] float64 numpy (start_s, end_s, score): tmin and tmax are
    clipped to [0, 1] and scaled by (duration_frame // 16 * 16) /
    duration_frame * duration_second.
  """
  proposals = np.asarray(proposals, np.float64)
  frames = np.asarray(duration_frame, np.float64)
  used = np.floor_divide(frames, feature_extraction_interval)
  used = used * feature_extraction_interval
  factor = (used / frames * np.asarray(duration_second, np.float64))[:, None]
  return np.stack([np.maximum(0, proposals[..., 0]) * factor,
                   np.minimum(1, proposals[..., 1]) * factor,
                   proposals[..., 2]], axis=-1)


def normalize_gt(video_record: Mapping[str, Any],
                 video_name: str = '') -> np.ndarray:
  """Gt segments of one annotation record in [0, 1], [G, 2] float64.

  Seconds are divided by feature_frame / duration_frame * duration_second (the
  part of the video the features cover) and clipped to [0, 1], as MMAction2's
  `GenerateLocalizationLabels`.

  Args:
    video_record: {'duration_second', 'duration_frame', 'feature_frame',
      'annotations': [{'segment': [start_s, end_s], ...}]}.
    video_name: used in error messages.
  """
  try:
    corrected_second = (
        float(video_record['feature_frame']) / video_record['duration_frame'] *
        video_record['duration_second'])
    segments = [a['segment'] for a in video_record['annotations']]
  except (KeyError, TypeError) as e:
    raise TalError(f'annotation of video {video_name!r}: missing or malformed '
                   f'key {e}') from None
  gt = [[max(min(1, s / corrected_second), 0),
         max(min(1, e / corrected_second), 0)] for s, e in segments]
  return np.asarray(gt, np.float64).reshape(-1, 2)


def normalize_gt_batch(videos) -> tuple[np.ndarray, np.ndarray]:
  """`normalize_gt` for a split: ([N, G, 2] float64 in [0, 1], [N, G] bool).

  Args:
    videos: anything with `names` and `records` (a `data.activitynet.VideoSet`).
  """
  gts = [normalize_gt(r, n) for n, r in zip(videos.names, videos.records)]
  g = max([1] + [len(x) for x in gts])
  gt = np.zeros((len(gts), g, 2), np.float64)
  gt_mask = np.zeros((len(gts), g), bool)
  for i, x in enumerate(gts):
    gt[i, :len(x)] = x
    gt_mask[i, :len(x)] = True
  return gt, gt_mask


def temporal_iou(pmin, pmax, gmin, gmax):
  """MMAction2 `temporal_iou` (same operation order), broadcasting."""
  inter = np.maximum(np.minimum(pmax, gmax) - np.maximum(pmin, gmin), 0.)
  union = (pmax - pmin) - inter + gmax - gmin
  return inter / union


def temporal_iop(pmin, pmax, gmin, gmax):
  """MMAction2 `temporal_iop` (intersection over proposal), broadcasting."""
  inter = np.maximum(np.minimum(pmax, gmax) - np.maximum(pmin, gmin), 0.)
  return inter / (pmax - pmin)
