"""Frame sampling of MMAction2 1.2.0's `UntrimmedSampleFrames`.

The ActivityNet feature configs (tools/data/activitynet/
tsn_extract_{rgb,flow}_feat_config.py) sample one clip every `clip_interval`
frames of an untrimmed video: clip centres `clip_interval // 2`,
`+ clip_interval`, ... below `total_frames`; each clip is `clip_len` frames
`frame_interval` apart around its centre (from `-(clip_len // 2) *
frame_interval`), indices clipped to [0, total_frames - 1], then offset by
`start_index`. RGB: clip_len 1; flow: clip_len 5 (stacked x/y pairs).
"""

import numpy as np

CLIP_INTERVAL = 16
RGB_CLIP_LEN = 1
FLOW_CLIP_LEN = 5


def clip_centres(total_frames: int, clip_interval: int = CLIP_INTERVAL
                 ) -> np.ndarray:
  """[num_clips] int64 centre frame (0-based) of every clip."""
  return np.arange(clip_interval // 2, total_frames, clip_interval)


def untrimmed_frame_inds(total_frames: int, clip_len: int = RGB_CLIP_LEN,
                         clip_interval: int = CLIP_INTERVAL,
                         frame_interval: int = 1,
                         start_index: int = 0) -> np.ndarray:
  """Frame indices [num_clips * clip_len] int32, clip after clip.

  As UntrimmedSampleFrames.transform: `frame_inds` of a video with
  `total_frames` frames (num_clips = len(clip_centres(...))).
  """
  centres = clip_centres(total_frames, clip_interval)
  offsets = np.arange(-(clip_len // 2 * frame_interval),
                      frame_interval * (clip_len - clip_len // 2),
                      frame_interval)
  inds = np.clip(centres[:, None] + offsets[None, :], 0, total_frames - 1)
  return (inds.reshape(-1) + start_index).astype(np.int32)


def num_clips(total_frames: int, clip_interval: int = CLIP_INTERVAL) -> int:
  """Clips UntrimmedSampleFrames takes from `total_frames` frames."""
  return len(clip_centres(total_frames, clip_interval))
