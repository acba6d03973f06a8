"""Video decoding with PyAV (FFmpeg), and the generated example video.

`iter_frames` yields a video's frames as [H, W, 3] uint8 RGB, in decode
order, one at a time (a long video is never held whole). Any decoder
failure (missing file, not a video, no video stream, corrupt data) is a
TalError naming the file. MMAction2's video config decodes with Decord and
its flow tool with cv2.VideoCapture, both FFmpeg too; features of the same
frames are equal, but decoders may convert YUV to RGB with other rounding.

`write_example_video` writes the embedded example: moving shapes on a
changing background, encoded with PyAV's MPEG-4 encoder, so the tests and
`infer --video` need no download.
"""

import os
from typing import Iterator

import numpy as np

from tal_jax import errors

EXAMPLE_SIZE = (96, 64)  # (w, h)
EXAMPLE_FRAMES = 160
EXAMPLE_FPS = 25
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.webm', '.mov', '.m4v', '.mpg',
                    '.mpeg', '.flv', '.wmv')


def _av():
  try:
    import av  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise errors.TalError('decoding videos needs PyAV: pip install av'
                          ) from None
  return av


def iter_frames(path: str) -> Iterator[np.ndarray]:
  """[H, W, 3] uint8 RGB frames of the video's first video stream."""
  av = _av()
  if not os.path.isfile(path):
    raise errors.TalError(f'video not found: {path}')
  try:
    with av.open(path) as container:
      if not container.streams.video:
        raise errors.TalError(f'{path}: no video stream')
      stream = container.streams.video[0]
      stream.thread_type = 'AUTO'
      for frame in container.decode(stream):
        yield frame.to_ndarray(format='rgb24')
  except (av.error.FFmpegError, ValueError, OSError) as e:
    raise errors.TalError(f'unreadable video {path}: {e}') from None


def video_info(path: str) -> dict:
  """{'fps', 'duration_second', 'num_frames'} from the container (each
  None where the container does not say)."""
  av = _av()
  try:
    with av.open(path) as container:
      stream = container.streams.video[0]
      fps = float(stream.average_rate or stream.guessed_rate or 0) or None
      duration = (float(stream.duration * stream.time_base)
                  if stream.duration else
                  (container.duration / 1e6 if container.duration else None))
      return {'fps': fps, 'duration_second': duration,
              'num_frames': int(stream.frames or 0) or None}
  except (av.error.FFmpegError, ValueError, OSError, IndexError) as e:
    raise errors.TalError(f'unreadable video {path}: {e}') from None


def example_frames(num_frames: int = EXAMPLE_FRAMES,
                   size: tuple[int, int] = EXAMPLE_SIZE) -> np.ndarray:
  """[N, h, w, 3] uint8: a square and a disc moving over a gradient whose
  colour shifts; the disc shows only in the middle third (an 'action')."""
  w, h = size
  yy, xx = np.mgrid[0:h, 0:w]
  frames = np.empty((num_frames, h, w, 3), np.uint8)
  for t in range(num_frames):
    phase = t / max(num_frames - 1, 1)
    img = np.stack([40 + 120 * xx / w + 40 * phase,
                    60 + 80 * yy / h,
                    np.full_like(xx, 90 + 100 * phase, dtype=np.float64)],
                   -1)
    x0 = int((w - 20) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * phase)))
    y0 = int((h - 20) * phase)
    img[y0:y0 + 20, x0:x0 + 20] = (230, 40, 40)
    if num_frames // 3 <= t < 2 * num_frames // 3:
      cx, cy = w * (1 - phase), h / 2
      img[(xx - cx)**2 + (yy - cy)**2 < 100] = (30, 220, 60)
    frames[t] = np.clip(img, 0, 255).astype(np.uint8)
  return frames


def write_video(path: str, frames: np.ndarray, fps: int = EXAMPLE_FPS
                ) -> None:
  """Encodes [N, h, w, 3] uint8 RGB (even h, w) as MPEG-4 into `path`,
  atomically."""
  av = _av()
  with errors.atomic_path(path, os.path.splitext(path)[1]) as tmp:
    with av.open(tmp, 'w') as container:
      stream = container.add_stream('mpeg4', rate=fps)
      stream.width, stream.height = frames.shape[2], frames.shape[1]
      stream.pix_fmt = 'yuv420p'
      stream.options = {'qscale': '3'}
      for frame in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(
            np.ascontiguousarray(frame), format='rgb24')):
          container.mux(packet)
      for packet in stream.encode():
        container.mux(packet)


def write_example_video(path: str, num_frames: int = EXAMPLE_FRAMES) -> str:
  """Writes the example video (if not there yet) and returns `path`."""
  if not os.path.exists(path):
    write_video(path, example_frames(num_frames))
  return path


def list_videos(path: str) -> list[str]:
  """--video inputs: one file, a folder's video files (sorted), or a .txt
  list (one path a line, relative to the list's folder)."""
  if os.path.isdir(path):
    files = sorted(os.path.join(path, f) for f in os.listdir(path)
                   if f.lower().endswith(VIDEO_EXTENSIONS))
    if not files:
      raise errors.TalError(f'{path}: no video files '
                            f'({", ".join(VIDEO_EXTENSIONS)})')
    return files
  if path.endswith('.txt'):
    if not os.path.isfile(path):
      raise errors.TalError(f'video list not found: {path}')
    root = os.path.dirname(os.path.abspath(path))
    with open(path) as f:
      names = [line.split()[0] for line in f if line.strip()]
    if not names:
      raise errors.TalError(f'{path}: empty video list')
    return [n if os.path.isabs(n) else os.path.join(root, n) for n in names]
  if not os.path.isfile(path):
    raise errors.TalError(f'video not found: {path}')
  return [path]
