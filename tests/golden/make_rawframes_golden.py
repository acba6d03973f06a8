"""Writes tests/golden/rawframes.npz from MMAction2 0.24.1's rawframe pipeline.

Rerun from the repository root with the 0.24.1 reference environment (see
make_ssn_golden.py; it has mmcv 1.7.0, opencv-python 4.11 and Pillow):

  "$TAL_JAX_REFENV"/mmaction2-0.24.1/bin/python tests/golden/make_rawframes_golden.py

It first runs the runtime `python` (override with $TAL_PYTHON) once to write
tal_jax's synthetic frames with `rawframes.write_frames`, then writes other
small JPEGs itself and runs MMAction2's `RawFrameDecode -> Resize(scale,
keep_ratio=True) -> CenterCrop -> Normalize(mean=[104, 117, 128], std=[1, 1,
1], to_bgr=True)` (the `ssn_r50_450e_thumos14_rgb` pipeline) on them.

Per case `<c>` (jpeg_<c> holds the files' bytes, concatenated, split at
jpeg_offsets_<c>; meta_<c> = scale w, scale h, crop):
* synthetic: 3 frames of a 48x64 synthetic video (upscale to 85x64, crop 56);
* one frame each of: down: 150x200 (downscale), odd: 61x77, 4:4:4, quality
  75 (odd sizes and crop offsets), area2x: 128x170 (cv2's exact-2x
  INTER_AREA switch), noop: 64x85 (no resize), exif: 48x64 stored with EXIF
  orientation 6 (decoded 64x48), gray: a grayscale 50x70 JPEG; all with
  scale (85, 64), crop 56;
* thumos: one 240x320 synthetic frame, scale (340, 256), crop 224 (only the
  crop is stored, for size).
Arrays (to stay small, not every case keeps every step): decoded_<c>
(RawFrameDecode, RGB uint8; synthetic, odd, exif, gray), resized_<c>
(Resize, at most 2 frames; synthetic, down, odd, area2x), cropped_<c>
(CenterCrop, uint8; all), normalized_synthetic (Normalize, float32, first 2
frames). Index mapping: RawFrameDecode on the 12-frame synthetic folder with
frame_inds `mapping_frame_inds` (1-based, with repeats) read the files whose
numbers are `mapping_files`. Resize alone: cv2.resize
(INTER_LINEAR) of random uint8 arrays `resize_src_<i>` to `resize_dst_<i>`.
"""

import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np

warnings.filterwarnings('ignore')
import cv2  # pylint: disable=g-import-not-at-top
from PIL import Image  # pylint: disable=g-import-not-at-top
from mmaction.datasets.pipelines import (CenterCrop, Normalize,  # noqa
                                         RawFrameDecode, Resize)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TMPL = 'img_{:05d}.jpg'
SMALL = ((85, 64), 56)
SYNTHETIC_GTS = [[3, 2, 7], [14, 8, 11]]
WRITE_SYNTHETIC = f"""
import sys
sys.path.insert(0, {ROOT!r})
import numpy as np
from tal_jax.data import rawframes
from tal_jax.data import synthetic_frames
out = sys.argv[1]
frames = synthetic_frames.synthetic_frames(np.array({SYNTHETIC_GTS}), 12, 48, 64, 5)
rawframes.write_frames(out + '/synthetic', frames)
gts = np.array([[9, 0, 2]])
rawframes.write_frames(out + '/thumos',
                       synthetic_frames.synthetic_frames(gts, 2, 240, 320, 6)[1:])
"""


def _smooth_image(rs, h, w, gray=False):
  yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
  chans = 1 if gray else 3
  img = np.stack([128 + 100 * np.sin(6 * xx * (c + 1) + 4 * yy + c)
                  for c in range(chans)], -1)
  img = img + rs.normal(0, 3, img.shape)
  img = np.clip(img, 0, 255).astype(np.uint8)
  return img[..., 0] if gray else img


def _write_jpegs(folder, images, **save_kwargs):
  os.makedirs(folder)
  for i, img in enumerate(images):
    Image.fromarray(img).save(os.path.join(folder, TMPL.format(i + 1)), 'JPEG',
                              **save_kwargs)


def _own_cases(tmp):
  rs = np.random.RandomState(11)
  _write_jpegs(f'{tmp}/down', [_smooth_image(rs, 150, 200)])
  _write_jpegs(f'{tmp}/odd', [_smooth_image(rs, 61, 77)], quality=75,
               subsampling=0)
  _write_jpegs(f'{tmp}/area2x', [_smooth_image(rs, 128, 170)])
  _write_jpegs(f'{tmp}/noop', [_smooth_image(rs, 64, 85)])
  exif = Image.Exif()
  exif[0x0112] = 6
  _write_jpegs(f'{tmp}/exif', [_smooth_image(rs, 48, 64)], exif=exif)
  _write_jpegs(f'{tmp}/gray', [_smooth_image(rs, 50, 70, gray=True)])


def _pipeline(folder, count, scale, crop):
  """MMAction2's outputs after each step for frames 1..count of `folder`."""
  results = dict(frame_dir=folder, filename_tmpl=TMPL, modality='RGB',
                 frame_inds=np.arange(1, count + 1))
  results = RawFrameDecode()(results)
  decoded = np.stack(results['imgs'])
  results = Resize(scale=scale, keep_ratio=True)(results)
  resized = np.stack(results['imgs'])
  results = CenterCrop(crop_size=crop)(results)
  cropped = np.stack(results['imgs'])
  results = Normalize(mean=[104, 117, 128], std=[1, 1, 1], to_bgr=True)(
      results)
  return decoded, resized, cropped, results['imgs']


def _jpeg_bytes(folder, count):
  blobs = []
  for i in range(count):
    with open(os.path.join(folder, TMPL.format(i + 1)), 'rb') as f:
      blobs.append(np.frombuffer(f.read(), np.uint8))
  return np.concatenate(blobs), np.cumsum([0] + [len(b) for b in blobs])


def _frame_cases(tmp, out):
  cases = {'synthetic': 3, 'down': 1, 'odd': 1, 'area2x': 1, 'noop': 1,
           'exif': 1, 'gray': 1, 'thumos': 1}
  for name, count in cases.items():
    scale, crop = ((340, 256), 224) if name == 'thumos' else SMALL
    decoded, resized, cropped, normalized = _pipeline(
        f'{tmp}/{name}', count, scale, crop)
    out[f'jpeg_{name}'], out[f'jpeg_offsets_{name}'] = _jpeg_bytes(
        f'{tmp}/{name}', count)
    out[f'meta_{name}'] = np.array([scale[0], scale[1], crop])
    out[f'cropped_{name}'] = cropped
    if name in ('synthetic', 'odd', 'exif', 'gray'):
      out[f'decoded_{name}'] = decoded
    if name in ('synthetic', 'down', 'odd', 'area2x'):
      out[f'resized_{name}'] = resized[:2]
    if name == 'synthetic':
      out[f'normalized_{name}'] = normalized[:2].astype(np.float32)
    print(name, decoded.shape, '->', resized.shape, '->', cropped.shape)


def _mapping_case(tmp, out):
  """Which file RawFrameDecode reads for each 1-based frame_ind."""
  folder = f'{tmp}/synthetic'
  files = np.stack([RawFrameDecode()(dict(
      frame_dir=folder, filename_tmpl=TMPL, modality='RGB',
      frame_inds=np.array([i])))['imgs'][0] for i in range(1, 13)])
  inds = np.array([1, 3, 3, 12, 1, 7, 12])
  imgs = RawFrameDecode()(dict(frame_dir=folder, filename_tmpl=TMPL,
                               modality='RGB', frame_inds=inds))['imgs']
  out['mapping_frame_inds'] = inds
  out['mapping_files'] = np.array(
      [1 + int(np.argmin(np.abs(files.astype(int) - img).sum((1, 2, 3))))
       for img in imgs])


def _resize_cases(out):
  rs = np.random.RandomState(3)
  shapes = [((7, 9), (13, 5)), ((20, 31), (11, 17)), ((9, 30), (40, 18)),
            ((16, 24), (8, 12)), ((25, 14), (25, 27)), ((3, 40), (30, 1)),
            ((18, 18), (18, 18)), ((12, 22), (31, 9))]
  for i, ((h, w), (dh, dw)) in enumerate(shapes):
    src = rs.randint(0, 256, (h, w, 3)).astype(np.uint8)
    out[f'resize_src_{i}'] = src
    out[f'resize_dst_{i}'] = cv2.resize(src, (dw, dh),
                                        interpolation=cv2.INTER_LINEAR)


def main():
  out = {}
  with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([os.environ.get('TAL_PYTHON', 'python'), '-c',
                    WRITE_SYNTHETIC, tmp], check=True, cwd=ROOT)
    _own_cases(tmp)
    _frame_cases(tmp, out)
    _mapping_case(tmp, out)
  _resize_cases(out)
  path = os.path.join(HERE, 'rawframes.npz')
  np.savez_compressed(path, **out)
  print(path, os.path.getsize(path), 'bytes', file=sys.stderr)


if __name__ == '__main__':
  main()
