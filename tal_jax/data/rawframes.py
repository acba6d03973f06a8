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


def _decode(path: str) -> np.ndarray:
  """[H, W, 3] uint8 RGB of one image file, EXIF orientation applied."""
  try:
    with Image.open(path) as img:
      img.load()
      ImageOps.exif_transpose(img, in_place=True)  # as cv2.imdecode does.
      return np.asarray(img if img.mode == 'RGB' else img.convert('RGB'))
  except FileNotFoundError:
    raise errors.TalError(f'missing frame {path}') from None
  except (OSError, ValueError, SyntaxError) as e:
    raise errors.TalError(f'unreadable frame {path}: {e}') from None


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
    decoded.append(_decode(path))
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
  """Exact horizontal pass, >> 4: [K, R, W, 3] uint8 -> [K, R, w * 3] int32."""
  k, r, src_w, _ = rows.shape
  first, w0, w1 = _linear_taps(src_w, dst_w)
  edge = (first < 0) | (first >= src_w - 1)
  first = np.clip(first, 0, src_w - 1)[cols]
  second = np.minimum(first + 1, src_w - 1)
  # Flat (x * 3 + channel) positions and weights: contiguous inner loops.
  channel = np.arange(3)
  first = (first[:, None] * 3 + channel).ravel()
  second = (second[:, None] * 3 + channel).ravel()
  w0 = np.repeat(np.where(edge, _COEF_SCALE, w0)[cols], 3)
  w1 = np.repeat(np.where(edge, 0, w1)[cols], 3)
  rows = rows.reshape(k, r, src_w * 3)
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
  out = np.empty((frames.shape[0], len(top), (cols.stop - cols.start) * 3),
                 np.uint8)
  for start in range(0, frames.shape[0], _FRAME_CHUNK):
    h = _hresize(frames[start:start + _FRAME_CHUNK, needed], dst_w, cols)
    out[start:start + _FRAME_CHUNK] = _vresize(
        np.take(h, where[:len(top)], axis=1),
        np.take(h, where[len(top):], axis=1), b0, b1)
  return out.reshape(len(out), len(top), -1, 3)


def resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """cv2.resize(INTER_LINEAR), bit-exact: [K, H, W, 3] uint8 -> [K, h, w, 3].

  size: (w, h).
  """
  frames = np.asarray(frames, np.uint8)
  w, h = size
  return _resize_window(frames, w, h, slice(0, h), slice(0, w))


def resize_keep_ratio(frames: np.ndarray, scale=RESIZE_SCALE) -> np.ndarray:
  """MMAction2 Resize(scale, keep_ratio=True): [K, H, W, 3] -> [K, h, w, 3].

  No-op when the frames already have the target size.
  """
  frames = np.asarray(frames, np.uint8)
  return resize(frames, rescale_size((frames.shape[2], frames.shape[1]),
                                     scale))


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
  """Resize(keep_ratio) + CenterCrop: [K, H, W, 3] -> uint8 [K, c, c, 3] RGB.

  Equal to `center_crop(resize_keep_ratio(frames, resize_scale), crop_size)`;
  only the cropped window is interpolated.
  """
  frames = np.asarray(frames, np.uint8)
  dst_w, dst_h = rescale_size((frames.shape[2], frames.shape[1]), resize_scale)
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


# Synthetic frames of the embedded set: class k in 1..20 is shape (k-1) % 5
# in colour (k-1) // 5, oscillating along direction pi * (k-1) / 20 with a
# period of 16 + 2 * ((k-1) % 7) frames.
_SHAPES = ('disk', 'square', 'triangle', 'ring', 'cross')
_COLOURS = np.array([[225, 35, 35], [30, 190, 60], [40, 70, 235],
                     [245, 215, 30]], np.float32)
_CHUNK = 64  # frames generated at once (bounds float32 temporaries).


def _shape_distance(kind: str, dx, dy, r):
  """Signed distance (pixels, < 0 inside) to a shape of radius r at 0."""
  if kind == 'disk':
    return np.sqrt(dx * dx + dy * dy) - r
  if kind == 'square':
    return np.maximum(np.abs(dx), np.abs(dy)) - 0.8 * r
  if kind == 'triangle':  # apex up, base at dy = r / 2.
    return np.maximum(dy - 0.5 * r, (np.abs(dx) * 1.732 - dy) * 0.5 - 0.5 * r)
  if kind == 'ring':
    return np.abs(np.sqrt(dx * dx + dy * dy) - 0.7 * r) - 0.2 * r
  bar = 0.3 * r  # cross
  return np.minimum(np.maximum(np.abs(dx) - bar, np.abs(dy) - r),
                    np.maximum(np.abs(dy) - bar, np.abs(dx) - r))


def _scene(rng, height, width):
  """A video's static parts: gradient [3, H, W], texture field, tint, drift."""
  yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
  angle = rng.uniform(0, 2 * np.pi)
  ramp = xx * np.cos(angle) + yy * np.sin(angle)
  ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.)
  c0, c1 = rng.uniform(55, 195, (2, 3, 1, 1)).astype(np.float32)
  gradient = c0 + ramp * (c1 - c0) + 0.5  # +0.5: the uint8 cast rounds.
  margin = max(2, min(height, width) // 6)
  fy, fx = np.mgrid[0:height + 2 * margin, 0:width + 2 * margin]
  field = np.zeros(fy.shape, np.float32)
  for _ in range(3):
    ky, kx = rng.uniform(0.4, 2.2, 2) * rng.choice([-1, 1], 2)
    field += np.cos(2 * np.pi * (kx * fx / width + ky * fy / height) +
                    rng.uniform(0, 2 * np.pi)).astype(np.float32) / 3
  tint = rng.uniform(24, 56) * rng.dirichlet([2, 2, 2])
  drift = (margin, rng.uniform(120, 360, 2), rng.uniform(0, 2 * np.pi, 2))
  return gradient, field, tint.astype(np.float32), drift


def _background(scene, frames: np.ndarray, noise: np.ndarray) -> np.ndarray:
  """[n, 3, H, W] float32 background of frame numbers `frames` [n].

  noise: [n, H, W] int8, added to every channel.
  """
  gradient, field, tint, (margin, period, phase) = scene
  height, width = gradient.shape[1:]
  oy = np.rint(margin * (1 + np.sin(2 * np.pi * frames / period[0] +
                                    phase[0]))).astype(np.int64)
  ox = np.rint(margin * (1 + np.sin(2 * np.pi * frames / period[1] +
                                    phase[1]))).astype(np.int64)
  texture = np.lib.stride_tricks.sliding_window_view(
      field, (height, width))[oy, ox]
  noise = noise.astype(np.float32)
  out = np.empty((len(frames), 3, height, width), np.float32)
  for c in range(3):  # planar: numpy's inner loops run over whole rows.
    np.multiply(texture, tint[c], out=out[:, c])
    out[:, c] += noise
    out[:, c] += gradient[c]
  return out


def _draw_action(out, first: int, label: int, start: int, end: int, geometry):
  """Blends one segment's pattern into out [n, 3, H, W] (frames first..)."""
  n, _, height, width = out.shape
  lo, hi = max(start, first), min(end, first + n)
  if lo >= hi:
    return
  (cx, cy), radius, phase = geometry
  k = label - 1
  t = np.arange(lo, hi, dtype=np.float32)
  swing = np.sin(2 * np.pi * (t - start) / (16 + 2 * (k % 7)) + phase)
  amp = 0.22 * min(height, width)
  px = cx + amp * np.cos(np.pi * k / 20) * swing
  py = cy + amp * np.sin(np.pi * k / 20) * swing
  fade = max(1., min(4., (end - start) / 4))
  alpha = np.clip(np.minimum(t - start + 1, end - t) / fade, 0, 1)
  # Render only a box around the shape: rows / cols [m, box] per frame.
  box = min(int(2 * radius) + 4, height, width)
  y0 = np.clip(np.floor(py - box / 2), 0, height - box).astype(np.int64)
  x0 = np.clip(np.floor(px - box / 2), 0, width - box).astype(np.int64)
  rows = y0[:, None] + np.arange(box)
  cols = x0[:, None] + np.arange(box)
  dx = (cols.astype(np.float32) - px[:, None])[:, None, :]
  dy = (rows.astype(np.float32) - py[:, None])[:, :, None]
  dist = _shape_distance(_SHAPES[k % 5], dx, dy, np.float32(radius))
  cover = (np.clip(0.5 - dist, 0, 1) * alpha[:, None, None])[:, None]
  # Flat positions [m, 3, box, box] of the boxes in out.
  plane = (np.arange(lo - first, hi - first)[:, None] * 3 + np.arange(3))
  index = ((plane[:, :, None, None] * height + rows[:, None, :, None]) * width
           + cols[:, None, None, :])
  flat = out.reshape(-1)
  patch = flat[index]
  flat[index] = patch + cover * (_COLOURS[k // 5][:, None, None] - patch)


def synthetic_frames(gts, num_frames: int, height: int, width: int,
                     seed) -> np.ndarray:
  """Frames of one synthetic video: [num_frames, H, W, 3] uint8 RGB.

  gts: [G, 3] int (label 1..20, start frame, end frame), the action visible
  on rows start <= t < end. Background: a per-video colour gradient, a slowly
  drifting low-frequency texture and +-3 levels of noise. Inside a segment:
  the class's shape and colour (recognisable from one frame) moving with its
  class's motion, fading in and out over up to 4 frames at the edges.
  Deterministic given `seed` (an int or a sequence of ints).
  """
  rng = np.random.default_rng(seed)
  gts = np.asarray(gts, np.int64).reshape(-1, 3)
  scene = _scene(rng, height, width)
  short = min(height, width)
  geometry = [((rng.uniform(0.4, 0.6) * width, rng.uniform(0.4, 0.6) * height),
               0.2 * short * rng.uniform(0.9, 1.1), rng.uniform(0, 2 * np.pi))
              for _ in gts]
  out = np.empty((num_frames, height, width, 3), np.uint8)
  for first in range(0, num_frames, _CHUNK):
    frames = np.arange(first, min(first + _CHUNK, num_frames))
    noise = rng.integers(-3, 4, (len(frames), height, width), dtype=np.int8)
    chunk = _background(scene, frames.astype(np.float32), noise)
    for (label, begin, end), geo in zip(gts, geometry):
      _draw_action(chunk, first, int(label), int(begin), int(end), geo)
    np.clip(chunk, 0, 255, out=chunk)
    out[first:first + len(frames)] = chunk.transpose(0, 2, 3, 1)
  return out
