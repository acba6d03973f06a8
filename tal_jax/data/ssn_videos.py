"""SSN's view of a proposal list: per video, gts and proposals in frames.

MMAction2 0.24.1's `SSNDataset` reads a de-normalised proposal list
(`results_io.read_proposal_list`) and filters it: rows that end before they
start or start past the video are dropped, ends are clipped to the video's
frames, and videos without a ground-truth segment are left out of training.
"""

import dataclasses

import numpy as np

from tal_jax.errors import TalError


@dataclasses.dataclass
class SSNVideo:
  """One video's gts and proposals in frames (after upstream's filtering).

  gts: [G, 3] int64 (label, start, end); proposals: [P, 3] int64 (label,
  start, end); best_iou, overlap_self, coverage: [P] float64. Ends are
  clipped to num_frames; coverage uses the unclipped end.
  """
  video_id: str
  num_frames: int
  gts: np.ndarray
  proposals: np.ndarray
  best_iou: np.ndarray
  overlap_self: np.ndarray
  coverage: np.ndarray


def _valid_rows(start, end, num_frames):
  return (end > start) & (start < num_frames)


def ssn_video(block) -> SSNVideo:
  """SSNVideo of a results_io.ProposalListVideo (de-normalised, frames)."""
  num_frames = int(block.num_frames * block.fps)
  g = block.gts.astype(np.int64)  # label start end (upstream int())
  g = g[_valid_rows(g[:, 1], g[:, 2], num_frames)]
  g[:, 2] = np.minimum(g[:, 2], num_frames)
  p = block.proposals
  keep = _valid_rows(p[:, 3].astype(np.int64), p[:, 4].astype(np.int64),
                     num_frames)
  p = p[keep]
  se = p[:, 3:5].astype(np.int64)
  props = np.stack([p[:, 0].astype(np.int64), se[:, 0],
                    np.minimum(se[:, 1], num_frames)], axis=1)
  return SSNVideo(block.video_id, num_frames, g, props.reshape(-1, 3),
                  p[:, 1].astype(np.float64), p[:, 2].astype(np.float64),
                  (se[:, 1] - se[:, 0]) / num_frames)


def load_videos(blocks, filter_gt=True) -> list[SSNVideo]:
  """SSNVideos of a proposal list; videos without gts dropped."""
  videos = [ssn_video(b) for b in blocks]
  if filter_gt:
    videos = [v for v in videos if len(v.gts)]
  if not videos:
    raise TalError('proposal list: no video with a ground-truth segment')
  return videos
