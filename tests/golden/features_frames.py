"""Integer-only synthetic frames for the feature-extraction goldens.

Pure numpy with integer arithmetic only (no floating-point functions), so
the reference environment's numpy and the test's give the same pixels.
`frames(n, h, w)`: [n, h, w, 3] uint8 RGB: a diagonal colour ramp that
drifts 3 px a frame, a bright 12x10 box moving right and down, and a dark
bar moving left (TV-L1 sees real motion).
"""

import numpy as np

NUM_FRAMES = 72
HEIGHT, WIDTH = 48, 64


def frames(n: int = NUM_FRAMES, h: int = HEIGHT, w: int = WIDTH
           ) -> np.ndarray:
  yy, xx = np.mgrid[0:h, 0:w].astype(np.int64)
  out = np.empty((n, h, w, 3), np.uint8)
  for t in range(n):
    r = (xx * 3 + yy * 2 + t * 3) % 256
    g = (xx * 2 - yy * 3 + 400 - t * 2) % 256
    b = (xx + yy + 128) % 256
    img = np.stack([r, g, b], -1)
    x0, y0 = (2 * t) % (w - 12), t % (h - 10)
    img[y0:y0 + 10, x0:x0 + 12] = (250, 240, 30)
    bx = (w - 1 - 3 * t) % (w - 4)
    img[:, bx:bx + 4] = (10, 20, 60)
    out[t] = img.astype(np.uint8)
  return out
