"""TV-L1 optical flow as MMAction2's `tools/misc/flow_extraction.py`.

Upstream: every frame (BGR from cv2.VideoCapture) -> cv2.COLOR_BGR2GRAY; flow
i = cv2.optflow.DualTVL1OpticalFlow_create() (default parameters, one
instance for the video) .calc(gray_i, gray_{i+1}, None), i = 0 .. N - 2
(N - 1 flow frames); each channel quantised by `flow_to_img`: clip to
[-bound, bound], + bound, * 255 / (2 bound), truncated to uint8 (bound 20);
written as grayscale JPEGs (cv2.imwrite, quality 95) `x_{:05d}.jpg`,
`y_{:05d}.jpg`, which the flow feature config reads back (mmcv.imfrombytes,
grayscale). `jpeg_roundtrip` reproduces that last lossy step.

Frames here come as RGB, so the grey conversion is COLOR_RGB2GRAY (the same
weights). Only the flow frames a clip needs are computed
(extract.is_flow_frame); TV-L1 treats each pair on its own, so they equal the
full run's. Needs OpenCV with the contrib modules
(opencv-contrib-python-headless).
"""

import numpy as np

from tal_jax import errors

BOUND = 20.
JPEG_QUALITY = 95  # cv2.imwrite's default.


def _cv2():
  try:
    import cv2  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise errors.TalError('optical flow needs OpenCV with contrib modules: '
                          'pip install opencv-contrib-python-headless'
                          ) from None
  if not hasattr(cv2, 'optflow'):
    raise errors.TalError('cv2 has no optflow module (TV-L1): install '
                          'opencv-contrib-python-headless instead of '
                          'opencv-python(-headless)')
  return cv2


class TVL1:
  """One DualTVL1 instance (upstream creates one per video)."""

  def __init__(self):
    self._cv2 = _cv2()
    self._tvl1 = self._cv2.optflow.DualTVL1OpticalFlow_create()

  def gray(self, rgb: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 RGB -> [H, W] uint8 (cv2's BT.601 grey)."""
    return self._cv2.cvtColor(np.ascontiguousarray(rgb),
                              self._cv2.COLOR_RGB2GRAY)

  def flow(self, gray0: np.ndarray, gray1: np.ndarray) -> np.ndarray:
    """[H, W, 2] float32 flow (x, y) from gray0 to gray1."""
    return self._tvl1.calc(gray0, gray1, None)


def flow_to_img(raw_flow: np.ndarray, bound: float = BOUND) -> np.ndarray:
  """Upstream's quantisation: float flow [...] -> uint8 [...]."""
  flow = np.clip(raw_flow, -bound, bound)
  flow = flow + bound
  flow *= 255 / float(2 * bound)
  return flow.astype(np.uint8)


def jpeg_roundtrip(images: np.ndarray) -> np.ndarray:
  """[..., H, W] uint8 grey images through cv2's JPEG (quality 95) and back,
  as the flow images stored by flow_extraction.py and read by the config."""
  cv2 = _cv2()
  out = np.empty_like(images)
  flat_in = images.reshape((-1,) + images.shape[-2:])
  flat_out = out.reshape(flat_in.shape)
  for i, img in enumerate(flat_in):
    ok, buf = cv2.imencode('.jpg', np.ascontiguousarray(img),
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
      raise errors.TalError('JPEG encoding of a flow image failed')
    flat_out[i] = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
  return out


def quantised_flow(tvl1: TVL1, rgb0: np.ndarray, rgb1: np.ndarray,
                   bound: float = BOUND, jpeg: bool = True) -> np.ndarray:
  """[H, W, 2] uint8 (x, y) flow image of one frame pair."""
  f = tvl1.flow(tvl1.gray(rgb0), tvl1.gray(rgb1))
  xy = np.stack([flow_to_img(f[..., 0], bound), flow_to_img(f[..., 1], bound)])
  if jpeg:
    xy = jpeg_roundtrip(xy)
  return xy.transpose(1, 2, 0)

