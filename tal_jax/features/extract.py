"""One video -> per-clip RGB / flow outputs -> the 100-bin feature file.

`sample_video` decodes a video once, keeping only what the clips use:
  RGB   the frame of each clip centre (UntrimmedSampleFrames, clip_len 1,
        clip_interval 16), Resize(-1, 256) + CenterCrop(256), cv2-exact;
  flow  the TV-L1 flow frames of the flow clips' windows (clip_len 5;
        flow frame j is frame j -> j + 1, a video of N frames has N - 1),
        quantised (bound 20), JPEG round trip, resized and cropped as RGB.
`Extractor` runs the recognisers over the clips (class scores with
dump_score, else pooled 2048-d features), and pools them to 100 bins
(pooling.merge_streams): [100, D_rgb + D_flow].
"""

import dataclasses
import os
from typing import Callable, Iterable

import numpy as np

from tal_jax import errors
from tal_jax.data import rawframes
from tal_jax.features import flow as flow_lib
from tal_jax.features import frame_folders
from tal_jax.features import pooling
from tal_jax.features import sampling
from tal_jax.features import tsn
from tal_jax.features import video as video_lib


def preprocess(frames: np.ndarray) -> np.ndarray:
  """Resize(-1, 256) + CenterCrop(256): [K, H, W, C] -> [K, 256, 256, C]."""
  return rawframes.preprocess(frames, tsn.RESIZE_SCALE, tsn.CROP_SIZE)


def is_rgb_frame(i: int, clip_interval: int = sampling.CLIP_INTERVAL
                 ) -> bool:
  """Whether frame i is an RGB clip centre (of any video long enough)."""
  return i % clip_interval == clip_interval // 2


def is_flow_frame(j: int, clip_len: int = sampling.FLOW_CLIP_LEN,
                  clip_interval: int = sampling.CLIP_INTERVAL) -> bool:
  """Whether flow frame j lies in a flow clip window (of any video)."""
  first = clip_interval // 2 - clip_len // 2  # window start of centre 0.
  if first < 0 and j == 0:
    return True
  return j >= first and (j - first) % clip_interval < clip_len


@dataclasses.dataclass
class Sampled:
  """A video's preprocessed clips.

  rgb: [Nr, 256, 256, 3] uint8; flow: [Nf, 256, 256, 10] uint8 or None;
  num_frames: decoded frames.
  """
  rgb: np.ndarray
  flow: np.ndarray | None
  num_frames: int


def sample_frames(frames: Iterable[np.ndarray], with_flow: bool,
                  name: str = 'video', jpeg: bool = True,
                  on_frame: Callable[[], None] | None = None) -> Sampled:
  """Clips of a stream of [H, W, 3] uint8 RGB frames (see module doc);
  on_frame() is called after each frame (progress)."""
  rgb, flows = {}, {}
  tvl1 = flow_lib.TVL1() if with_flow else None
  prev = None
  n = 0
  for i, frame in enumerate(frames):
    n = i + 1
    if is_rgb_frame(i):
      rgb[i] = preprocess(frame[None])[0]
    if tvl1 is not None:
      if prev is not None and is_flow_frame(i - 1):
        flows[i - 1] = preprocess(
            flow_lib.quantised_flow(tvl1, prev, frame, jpeg=jpeg)[None])[0]
      prev = frame
    if on_frame is not None:
      on_frame()
  inds = sampling.untrimmed_frame_inds(n, sampling.RGB_CLIP_LEN)
  if not len(inds):
    raise errors.TalError(f'{name}: {n} frames, fewer than the '
                          f'{sampling.CLIP_INTERVAL // 2 + 1} one clip needs')
  out = Sampled(np.stack([rgb[int(i)] for i in inds]), None, n)
  if with_flow:
    finds = sampling.untrimmed_frame_inds(n - 1, sampling.FLOW_CLIP_LEN)
    if not len(finds):
      raise errors.TalError(f'{name}: {n} frames, too few for a flow clip')
    clips = np.stack([flows[int(j)] for j in finds])
    out.flow = tsn.stack_flow_clip(clips.reshape(
        (-1, sampling.FLOW_CLIP_LEN) + clips.shape[1:]))
  return out


def sample_video(path: str, with_flow: bool, jpeg: bool = True,
                 on_frame: Callable[[], None] | None = None) -> Sampled:
  """sample_frames of a video file (PyAV); TalError naming a bad video."""
  return sample_frames(video_lib.iter_frames(path), with_flow, path, jpeg,
                       on_frame)


def sample_frame_folder(video_dir: str, with_flow: bool) -> Sampled:
  """The clips of an MMAction2 rawframes folder (frame_folders.py): RGB
  frames and stored flow frames, Resize(-1, 256) + CenterCrop(256)."""
  rows = frame_folders.sampled_rows(video_dir, with_flow)
  rgb = rawframes.read_frames(video_dir, rows['rgb'], frame_folders.RGB_TMPL,
                              frame_folders.START_INDEX)
  out = Sampled(preprocess(rgb), None, rawframes.count_frames(
      video_dir, frame_folders.RGB_TMPL, frame_folders.START_INDEX))
  if with_flow:
    flow = preprocess(frame_folders.read_flow(video_dir, rows['flow']))
    out.flow = tsn.stack_flow_clip(flow.reshape(
        (-1, sampling.FLOW_CLIP_LEN) + flow.shape[1:]))
  return out


def feature_name(path: str) -> str:
  """'v_<id>' of a video file or frame folder (MMAction2 ActivityNet
  naming)."""
  path = path.rstrip(os.sep)
  stem = (os.path.basename(path) if os.path.isdir(path) else
          os.path.splitext(os.path.basename(path))[0])
  return stem if stem.startswith('v_') else 'v_' + stem


class Extractor:
  """RGB (+ flow) recognisers; video -> [100, D] pooled features.

  Attributes:
    dump_score: class scores (the ActivityNet 200 + 200 = 400-d features)
      rather than the pooled 2048-d backbone features.
  """

  def __init__(self, rgb: tsn.Recognizer, flow: tsn.Recognizer | None = None,
               dump_score: bool = True, jpeg: bool = True):
    self.rgb, self.flow = rgb, flow
    self.dump_score, self.jpeg = dump_score, jpeg

  @classmethod
  def from_checkpoints(cls, rgb_path: str, flow_path: str | None = None,
                       batch_size: int = 16, **kwargs) -> 'Extractor':
    make = lambda path, stream: tsn.Recognizer(*tsn.load(path, stream),
                                               batch_size)
    return cls(make(rgb_path, tsn.RGB),
               make(flow_path, tsn.FLOW) if flow_path else None, **kwargs)

  def clip_outputs(self, sampled: Sampled) -> dict[str, np.ndarray]:
    """{'rgb': [Nr, K], 'flow': [Nf, K]} per-clip scores (or features)."""
    key = 'scores' if self.dump_score else 'feature'
    out = {'rgb': self.rgb(sampled.rgb)[key]}
    if self.flow is not None:
      out['flow'] = self.flow(sampled.flow)[key]
    return out

  def video_features(self, path: str, bar=None) -> np.ndarray:
    """[100, D] float64 pooled features of a video file, or of a rawframes
    folder (frame_folders.py) when `path` is a folder. bar: a tqdm bar of
    the video's frames (or None)."""
    if os.path.isdir(path):
      sampled = sample_frame_folder(path, self.flow is not None)
    else:
      sampled = sample_video(path, self.flow is not None, self.jpeg,
                             bar.update if bar is not None else None)
    if bar is not None:
      bar.set_postfix_str(f'recognising {len(sampled.rgb)} clips')
    out = self.clip_outputs(sampled)
    return pooling.merge_streams(out['rgb'], out.get('flow'))


def output_path(out_dir: str, video: str, fmt: str) -> str:
  """<out_dir>/v_<id>.csv (or .npy) of a video file."""
  return os.path.join(out_dir, f'{feature_name(video)}.{fmt}')


def write_features(path: str, feat: np.ndarray) -> None:
  """Writes [100, D] features atomically: upstream's CSV text, or .npy
  float32."""
  if path.endswith('.npy'):
    with errors.atomic_path(path, '.npy') as tmp:
      np.save(tmp, feat.astype(np.float32))
  else:
    errors.write_text(path, pooling.csv_text(feat))


def _frame_bar(video: str):
  """tqdm bar of one video's decoded frames (total from the container)."""
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  total = None
  if not os.path.isdir(video):
    try:
      total = video_lib.video_info(video)['num_frames']
    except errors.TalError:
      pass
  return tqdm(total=total, desc=os.path.basename(video), unit='frame',
              position=1, leave=False)


@dataclasses.dataclass
class Report:
  """Outcome of `extract_videos`: video path -> feature file / error line."""
  written: dict
  skipped: dict
  failed: dict


def extract_videos(videos: list[str], out_dir: str, extractor: Extractor,
                   fmt: str = 'csv', overwrite: bool = False,
                   show_progress: bool = False,
                   log: Callable[[str], None] = print) -> Report:
  """Feature file per video; resumable (existing files are skipped unless
  overwrite); a bad video is logged as one 'error: ...' line and the rest
  go on. Progress bars (tqdm) per video and overall when show_progress."""
  if fmt not in ('csv', 'npy'):
    raise errors.TalError(f'feature format {fmt!r} is not csv or npy')
  report = Report({}, {}, {})
  bar = None
  if show_progress:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm(total=len(videos), desc='videos', unit='video', position=0)
    log = bar.write
  for video in videos:
    path = output_path(out_dir, video, fmt)
    if os.path.exists(path) and not overwrite:
      report.skipped[video] = path
    else:
      frames = _frame_bar(video) if bar is not None else None
      try:
        write_features(path, extractor.video_features(video, frames))
        report.written[video] = path
        log(f'wrote {path}')
      except errors.TalError as e:
        report.failed[video] = str(e)
        log(f'error: {e}')
      finally:
        if frames is not None:
          frames.close()
    if bar is not None:
      bar.update(1)
  if bar is not None:
    bar.close()
  return report
