"""THUMOS14 rawframes for SSN's frame mode: reading, preprocessing, writing.

Layout (MMAction2 0.24.1, `ssn_r50_450e_thumos14_rgb_{train,test}.py`): one
folder per video, `<data_prefix>/<video>/img_{:05d}.jpg`, SSNDataset
`start_index=1`. Frame indices in tal_jax are 0-based rows: row i is the file
`filename_tmpl.format(i + start_index)`, so row 0 is `img_00001.jpg`. This is
MMAction2's mapping: SampleProposalFrames turns proposal frame offsets f into
`frame_inds = f % total_frames + start_index` and RawFrameDecode reads
`filename_tmpl.format(frame_ind + offset)` with `offset` 0 (the modulo is the
sampler's business; indices here must already lie in [0, total_frames)).

Preprocessing follows the 0.24.1 pipeline exactly:
`RawFrameDecode` (mmcv.imfrombytes, cv2, RGB; EXIF orientation applied) ->
`Resize(scale=(340, 256), keep_ratio=True)` (mmcv.rescale_size, then
cv2.resize INTER_LINEAR on uint8) -> `CenterCrop(crop_size=224)` ->
`Normalize(mean=[104, 117, 128], std=[1, 1, 1], to_bgr=True)`.
Decoding uses Pillow, whose libjpeg-turbo decodes the same pixels as cv2's.
The resize re-implements cv2's 8-bit INTER_LINEAR bit-exactly in numpy:
11-bit fixed-point taps rounded from float32 fractions, an exact integer
horizontal pass, the vertical pass with the rounding of cv2's vector code
(`((a >> 4) * b0 >> 16) + ((c >> 4) * b1 >> 16) + 2 >> 2`, not the exact
`(a * b0 + c * b1 + 2**21) >> 22`), and cv2's switch to INTER_AREA for an
exact 2x downscale (opencv-python 4.11, x86-64).
tests/golden/rawframes.npz holds MMAction2's outputs for checking.
"""

import os
import shutil
import tempfile

import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageOps

from tal_jax import errors

FILENAME_TMPL = 'img_{:05d}.jpg'
START_INDEX = 1
RESIZE_SCALE = (340, 256)
CROP_SIZE = 224
MEAN_BGR = (104., 117., 128.)
_COEF_SCALE = 2048  # cv2's INTER_RESIZE_COEF_SCALE = 1 << 11.
_FRAME_CHUNK = 16  # frames per resize pass (bounds int32 temporaries).


def _frame_path(video_dir, filename_tmpl, number):
  return os.path.join(video_dir, filename_tmpl.format(int(number)))


def decode_image(path: str, mode: str = 'RGB',
                 what: str = 'frame') -> np.ndarray:
  """One image file as uint8: [H, W, 3] for mode 'RGB' (EXIF orientation
  applied, as cv2.imdecode does), [H, W] for 'L' (as stored).

  A missing or unreadable file raises TalError 'missing <what> <path>' or
  'unreadable <what> <path>: <reason>'.
  """
  try:
    with Image.open(path) as img:
      img.load()
      if mode == 'RGB':
        ImageOps.exif_transpose(img, in_place=True)
      return np.asarray(img if img.mode == mode else img.convert(mode))
  except FileNotFoundError:
    raise errors.TalError(f'missing {what} {path}') from None
  except (OSError, ValueError, SyntaxError) as e:
    raise errors.TalError(f'unreadable {what} {path}: {e}') from None


def read_frames(video_dir: str, indices, filename_tmpl: str = FILENAME_TMPL,
                start_index: int = START_INDEX) -> np.ndarray:
  """Frames of rows `indices`: [K, H, W, 3] uint8 RGB.

  Each distinct row is decoded once. A missing or unreadable file, or frames
  of different sizes, raise TalError naming the file.
  """
  indices = np.asarray(indices, np.int64).reshape(-1)
  rows, inverse = np.unique(indices, return_inverse=True)
  decoded = []
  for row in rows:
    path = _frame_path(video_dir, filename_tmpl, row + start_index)
    decoded.append(decode_image(path))
    if decoded[-1].shape != decoded[0].shape:
      raise errors.TalError(
          f'frame {path} is {decoded[-1].shape[1]}x{decoded[-1].shape[0]}, '
          f'other frames of the video are {decoded[0].shape[1]}x'
          f'{decoded[0].shape[0]}')
  if not decoded:
    return np.zeros((0, 0, 0, 3), np.uint8)
  return np.stack(decoded)[inverse.reshape(-1)]


def count_frames(video_dir: str, filename_tmpl: str = FILENAME_TMPL,
                 start_index: int = START_INDEX) -> int:
  """Number of consecutive frames start_index, start_index + 1, ... present."""
  try:
    names = set(os.listdir(video_dir))
  except OSError:
    raise errors.TalError(f'missing frame folder {video_dir}') from None
  count = 0
  while filename_tmpl.format(count + start_index) in names:
    count += 1
  return count


def rescale_size(size: tuple[int, int], scale) -> tuple[int, int]:
  """mmcv.rescale_size: (w, h) as large as fits in `scale` keeping the ratio."""
  w, h = size
  factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
  return int(w * factor + 0.5), int(h * factor + 0.5)


def keep_ratio_scale(scale) -> tuple[float, float]:
  """MMAction2 Resize's scale for keep_ratio: a -1 side becomes unlimited.

  (-1, 256) -> (inf, 256): `rescale_size` then scales the short side to 256.
  """
  long_edge, short_edge = max(scale), min(scale)
  if short_edge == -1:
    return (np.inf, long_edge)
  return tuple(scale)


def _linear_taps(src: int, dst: int):
  """cv2 INTER_LINEAR taps of one axis: (first source index, w0, w1) int."""
  scale = 1.0 / (dst / src)
  f = ((np.arange(dst) + 0.5) * scale - 0.5).astype(np.float32)
  first = np.floor(f).astype(np.int64)
  f = f - first.astype(np.float32)
  w0 = np.rint((np.float32(1) - f) * np.float32(_COEF_SCALE))
  w1 = np.rint(f * np.float32(_COEF_SCALE))
  return first, w0.astype(np.int32), w1.astype(np.int32)


def _hresize(rows: np.ndarray, dst_w: int, cols: slice) -> np.ndarray:
  """Exact horizontal pass, >> 4: [K, R, W, C] uint8 -> [K, R, w * C] int32."""
  k, r, src_w, c = rows.shape
  first, w0, w1 = _linear_taps(src_w, dst_w)
  edge = (first < 0) | (first >= src_w - 1)
  first = np.clip(first, 0, src_w - 1)[cols]
  second = np.minimum(first + 1, src_w - 1)
  # Flat (x * C + channel) positions and weights: contiguous inner loops.
  channel = np.arange(c)
  first = (first[:, None] * c + channel).ravel()
  second = (second[:, None] * c + channel).ravel()
  w0 = np.repeat(np.where(edge, _COEF_SCALE, w0)[cols], c)
  w1 = np.repeat(np.where(edge, 0, w1)[cols], c)
  rows = rows.reshape(k, r, src_w * c)
  out = np.take(rows, first, axis=2) * w0  # uint8 * int32 -> int32.
  out += np.take(rows, second, axis=2) * w1
  out >>= 4  # the vertical pass only uses the values >> 4.
  return out


def _vresize(a, c, b0, b1) -> np.ndarray:
  """Vertical pass: [K, h, w * 3] int32 -> uint8, with cv2's rounding.

  a, c: the two source rows' horizontal results, already >> 4 (<= 32640);
  b0, b1: [h] int32 taps. cv2's vector loop computes (a * b0 >> 16) +
  (c * b1 >> 16), then a rounded shift by 2 (all 500 random shapes of the
  development check, row tails included, match this, not the scalar
  (a' * b0 + c' * b1 + 2**21) >> 22 on unshifted rows). As b0 + b1 <= 2049,
  the result is at most 255: no clipping needed.
  """
  out = a * b0[None, :, None]
  out >>= 16
  low = c * b1[None, :, None]
  low >>= 16
  out += low
  out += 2
  out >>= 2
  return out.astype(np.uint8)


def _is_area_2x(src_w, src_h, dst_w, dst_h) -> bool:
  """cv2 runs INTER_LINEAR as INTER_AREA when both scales are exactly 2."""
  scale_x, scale_y = 1.0 / (dst_w / src_w), 1.0 / (dst_h / src_h)
  eps = np.finfo(np.float64).eps
  return abs(scale_x - 2) < eps and abs(scale_y - 2) < eps


def _resize_window(frames, dst_w, dst_h, rows: slice, cols: slice):
  """cv2.resize(INTER_LINEAR) to (dst_w, dst_h), window [rows, cols] only."""
  _, src_h, src_w, _ = frames.shape
  if (src_w, src_h) == (dst_w, dst_h):
    return frames[:, rows, cols]
  if _is_area_2x(src_w, src_h, dst_w, dst_h):
    quads = frames[:, 2 * rows.start:2 * rows.stop,
                   2 * cols.start:2 * cols.stop].astype(np.int32)
    sums = (quads[:, 0::2, 0::2] + quads[:, 0::2, 1::2] +
            quads[:, 1::2, 0::2] + quads[:, 1::2, 1::2])
    return ((sums + 2) >> 2).astype(np.uint8)
  first, b0, b1 = (t[rows] for t in _linear_taps(src_h, dst_h))
  top = np.clip(first, 0, src_h - 1)
  bottom = np.clip(first + 1, 0, src_h - 1)
  needed, where = np.unique(np.concatenate([top, bottom]), return_inverse=True)
  channels = frames.shape[3]
  out = np.empty((frames.shape[0], len(top),
                  (cols.stop - cols.start) * channels), np.uint8)
  for start in range(0, frames.shape[0], _FRAME_CHUNK):
    h = _hresize(frames[start:start + _FRAME_CHUNK, needed], dst_w, cols)
    out[start:start + _FRAME_CHUNK] = _vresize(
        np.take(h, where[:len(top)], axis=1),
        np.take(h, where[len(top):], axis=1), b0, b1)
  return out.reshape(len(out), len(top), -1, channels)


def resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """cv2.resize(INTER_LINEAR), bit-exact: [K, H, W, C] uint8 -> [K, h, w, C].

  Any channel count C (3 for RGB, 2 for optical flow x/y).

  size: (w, h).
  """
  frames = np.asarray(frames, np.uint8)
  w, h = size
  return _resize_window(frames, w, h, slice(0, h), slice(0, w))


def resize_keep_ratio(frames: np.ndarray, scale=RESIZE_SCALE) -> np.ndarray:
  """MMAction2 Resize(scale, keep_ratio=True): [K, H, W, C] -> [K, h, w, C].

  No-op when the frames already have the target size.
  """
  frames = np.asarray(frames, np.uint8)
  return resize(frames, rescale_size((frames.shape[2], frames.shape[1]),
                                     keep_ratio_scale(scale)))


def _pair(crop_size) -> tuple[int, int]:
  """(w, h) of an int or (w, h) crop_size, as MMAction2's _pair."""
  if np.isscalar(crop_size):
    return int(crop_size), int(crop_size)
  return int(crop_size[0]), int(crop_size[1])


def _crop_box(width, height, crop_size):
  """MMAction2 CenterCrop's (left, top, crop_w, crop_h); TalError if too big."""
  crop_w, crop_h = _pair(crop_size)
  if crop_w > width or crop_h > height:
    raise errors.TalError(f'crop_size {crop_w}x{crop_h} is larger than the '
                          f'{width}x{height} frame')
  return (width - crop_w) // 2, (height - crop_h) // 2, crop_w, crop_h


def center_crop(frames: np.ndarray, crop_size) -> np.ndarray:
  """MMAction2 CenterCrop: [K, H, W, C] -> [K, crop_h, crop_w, C].

  crop_size: int or (w, h). MMAction2 would slice with a negative offset when
  the crop exceeds the frame (a silently wrong crop); this raises TalError.
  """
  left, top, w, h = _crop_box(frames.shape[2], frames.shape[1], crop_size)
  return frames[:, top:top + h, left:left + w]


def preprocess(frames: np.ndarray, resize_scale=RESIZE_SCALE,
               crop_size=CROP_SIZE) -> np.ndarray:
  """Resize(keep_ratio) + CenterCrop: [K, H, W, C] -> uint8 [K, c, c, C].

  resize_scale may hold -1 for "no limit" as MMAction2's Resize((-1, 256))
  (short side 256), see `keep_ratio_scale`.

  Equal to `center_crop(resize_keep_ratio(frames, resize_scale), crop_size)`;
  only the cropped window is interpolated.
  """
  frames = np.asarray(frames, np.uint8)
  dst_w, dst_h = rescale_size((frames.shape[2], frames.shape[1]),
                              keep_ratio_scale(resize_scale))
  left, top, w, h = _crop_box(dst_w, dst_h, crop_size)
  return _resize_window(frames, dst_w, dst_h, slice(top, top + h),
                        slice(left, left + w))


def normalize(images, mean=MEAN_BGR, std=(1., 1., 1.)):
  """MMAction2 Normalize(to_bgr=True): [..., 3] RGB -> float32 BGR.

  Returns (images[..., ::-1] - mean) / std, mean and std in BGR order (for
  std 1, exactly MMAction2's values). jax.numpy, so it runs inside a jitted
  step on device; accepts numpy input too.
  """
  bgr = jnp.asarray(images)[..., ::-1].astype(jnp.float32)
  inv_std = 1. / np.asarray(std, np.float64)
  return (bgr - jnp.asarray(mean, jnp.float32)) * jnp.asarray(
      inv_std, jnp.float32)


def load_clip(video_dir: str, indices, resize_scale=RESIZE_SCALE,
              crop_size=CROP_SIZE, filename_tmpl: str = FILENAME_TMPL,
              start_index: int = START_INDEX) -> np.ndarray:
  """Reads and preprocesses rows `indices`: uint8 [K, c, c, 3] RGB."""
  frames = read_frames(video_dir, indices, filename_tmpl, start_index)
  if not len(frames):
    crop_w, crop_h = _pair(crop_size)
    return np.zeros((0, crop_h, crop_w, 3), np.uint8)
  try:
    return preprocess(frames, resize_scale, crop_size)
  except errors.TalError as e:
    raise errors.TalError(f'{video_dir}: {e}') from None


def write_frames(video_dir: str, frames: np.ndarray, quality: int = 90,
                 filename_tmpl: str = FILENAME_TMPL,
                 start_index: int = START_INDEX) -> None:
  """Writes [T, H, W, 3] uint8 RGB frames as JPEGs into `video_dir`.

  The files go to a temporary sibling folder that is renamed into place at
  the end (replacing an existing folder), so `video_dir` is never half written.
  """
  video_dir = os.path.abspath(video_dir)
  parent, name = os.path.split(video_dir)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix=f'.{name}.')
  try:
    for i, frame in enumerate(np.asarray(frames, np.uint8)):
      Image.fromarray(frame).save(
          _frame_path(tmp, filename_tmpl, i + start_index), 'JPEG',
          quality=quality)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    if not os.path.exists(video_dir):
      os.replace(tmp, video_dir)
      return
    old = tempfile.mkdtemp(dir=parent, prefix=f'.{name}.old.')
    os.replace(video_dir, old)
    try:
      os.replace(tmp, video_dir)
    except BaseException:
      os.replace(old, video_dir)
      raise
    shutil.rmtree(old, ignore_errors=True)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
