"""Generated rawframes of the embedded THUMOS-like set (SSN frame mode).

`synthetic_frames` draws one video: a per-video scene (colour gradient, slowly
drifting low-frequency texture, mild noise) and, inside each ground-truth
segment, the class's shape in the class's colour moving with the class's
motion, fading in and out at the segment's edges, so the class is
recognisable from one frame (SSN classifies per-frame features).
"""

import numpy as np

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
