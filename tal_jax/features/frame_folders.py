"""MMAction2 rawframes folders as input (instead of video files).

The layout of MMAction2's `tools/data/build_rawframes.py` / denseflow and of
`tools/misc/flow_extraction.py`: one folder per video holding RGB frames
`img_{:05d}.jpg` and flow frames `flow_x_{:05d}.jpg`, `flow_y_{:05d}.jpg`
(flow_extraction.py's default names are `x_{:05d}.jpg`: pass
flow_tmpl='{}_{:05d}.jpg'), numbered from `start_index` (RawframeDataset's
default 1). total_frames is the number of consecutive frames present (the
file list's count upstream), separately for RGB and flow.
RGB frames decode as RawFrameDecode does (data.rawframes: Pillow, the same
pixels as cv2), flow frames as mmcv.imfrombytes(flag='grayscale').
"""

import os

import numpy as np

from tal_jax import errors
from tal_jax.data import rawframes
from tal_jax.features import sampling

RGB_TMPL = 'img_{:05d}.jpg'
FLOW_TMPL = 'flow_{}_{:05d}.jpg'
START_INDEX = 1


def is_frame_folder(path: str, rgb_tmpl: str = RGB_TMPL,
                    start_index: int = START_INDEX) -> bool:
  return os.path.isfile(os.path.join(path, rgb_tmpl.format(start_index)))


def list_frame_folders(path: str, rgb_tmpl: str = RGB_TMPL,
                       start_index: int = START_INDEX) -> list[str]:
  """One frame folder, or the frame folders inside `path` (sorted)."""
  if not os.path.isdir(path):
    raise errors.TalError(f'frame folder not found: {path}')
  if is_frame_folder(path, rgb_tmpl, start_index):
    return [path]
  dirs = sorted(os.path.join(path, d) for d in os.listdir(path)
                if os.path.isdir(os.path.join(path, d)))
  if not dirs:
    raise errors.TalError(f'{path}: no frame folders (<video>/'
                          f'{rgb_tmpl.format(start_index)})')
  return dirs


def _gray(path: str) -> np.ndarray:
  """[H, W] uint8 of a flow JPEG, as cv2's IMREAD_GRAYSCALE."""
  return rawframes.decode_image(path, 'L', 'flow frame')


def read_flow(video_dir: str, indices, flow_tmpl: str = FLOW_TMPL,
              start_index: int = START_INDEX) -> np.ndarray:
  """Flow rows `indices` (0-based): [K, H, W, 2] uint8 (x, y)."""
  out = []
  for i in np.asarray(indices).reshape(-1):
    n = int(i) + start_index
    out.append(np.stack([
        _gray(os.path.join(video_dir, flow_tmpl.format('x', n))),
        _gray(os.path.join(video_dir, flow_tmpl.format('y', n)))], -1))
  return np.stack(out)


def count_flow_frames(video_dir: str, flow_tmpl: str = FLOW_TMPL,
                      start_index: int = START_INDEX) -> int:
  return rawframes.count_frames(
      video_dir, flow_tmpl.replace('{}', 'x', 1), start_index)


def sampled_rows(video_dir: str, with_flow: bool, rgb_tmpl: str = RGB_TMPL,
                 flow_tmpl: str = FLOW_TMPL, start_index: int = START_INDEX
                 ) -> dict[str, np.ndarray]:
  """The rows UntrimmedSampleFrames takes: {'rgb': [Nr], 'flow': [Nf * 5]}
  (0-based); TalError when a stream has too few frames for one clip."""
  rows = {}
  counts = {'rgb': rawframes.count_frames(video_dir, rgb_tmpl, start_index)}
  if with_flow:
    counts['flow'] = count_flow_frames(video_dir, flow_tmpl, start_index)
  for key, clip_len in (('rgb', sampling.RGB_CLIP_LEN),
                        ('flow', sampling.FLOW_CLIP_LEN)):
    if key in counts:
      rows[key] = sampling.untrimmed_frame_inds(counts[key], clip_len)
      if not len(rows[key]):
        raise errors.TalError(f'{video_dir}: {counts[key]} {key} frames, '
                              'too few for one clip')
  return rows
