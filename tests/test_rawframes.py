"""Rawframes reading / preprocessing / writing against MMAction2 0.24.1.

tests/golden/rawframes.npz comes from tests/golden/make_rawframes_golden.py
(MMAction2's RawFrameDecode -> Resize -> CenterCrop -> Normalize and
cv2.resize); every comparison with it is exact.
"""

import os

import tal_jax  # noqa: F401  (first: XLA flags)
import jax
import numpy as np
import pytest

from tal_jax.data import rawframes
from tal_jax.data import synthetic_frames
from tal_jax.errors import TalError

GOLDEN = np.load(os.path.join(os.path.dirname(__file__), 'golden',
                              'rawframes.npz'))
CASES = ('synthetic', 'down', 'odd', 'area2x', 'noop', 'exif', 'gray',
         'thumos')


def _write_case(root, name):
  """Writes a golden case's JPEG files; returns (folder, count)."""
  folder = os.path.join(str(root), name)
  os.makedirs(folder)
  data, offsets = GOLDEN[f'jpeg_{name}'], GOLDEN[f'jpeg_offsets_{name}']
  for i in range(len(offsets) - 1):
    with open(os.path.join(folder, f'img_{i + 1:05d}.jpg'), 'wb') as f:
      f.write(data[offsets[i]:offsets[i + 1]].tobytes())
  return folder, len(offsets) - 1


@pytest.mark.parametrize('name', CASES)
def test_pipeline_matches_mmaction2(tmp_path, name):
  folder, count = _write_case(tmp_path, name)
  scale_w, scale_h, crop = (int(v) for v in GOLDEN[f'meta_{name}'])
  frames = rawframes.read_frames(folder, np.arange(count))
  if f'decoded_{name}' in GOLDEN:
    np.testing.assert_array_equal(frames, GOLDEN[f'decoded_{name}'])
  resized = rawframes.resize_keep_ratio(frames, (scale_w, scale_h))
  if f'resized_{name}' in GOLDEN:
    want = GOLDEN[f'resized_{name}']
    np.testing.assert_array_equal(resized[:len(want)], want)
  cropped = GOLDEN[f'cropped_{name}']
  np.testing.assert_array_equal(rawframes.center_crop(resized, crop), cropped)
  np.testing.assert_array_equal(
      rawframes.preprocess(frames, (scale_w, scale_h), crop), cropped)
  np.testing.assert_array_equal(
      rawframes.load_clip(folder, np.arange(count), (scale_w, scale_h), crop),
      cropped)


def test_normalize_matches_mmaction2():
  want = GOLDEN['normalized_synthetic']
  got = rawframes.normalize(GOLDEN['cropped_synthetic'][:len(want)])
  assert got.dtype == np.float32
  np.testing.assert_array_equal(np.asarray(got), want)
  # BGR minus (104, 117, 128), worked by hand.
  pixel = np.array([[10, 20, 200]], np.uint8)
  np.testing.assert_array_equal(np.asarray(rawframes.normalize(pixel)),
                                [[96., -97., -118.]])
  np.testing.assert_array_equal(
      np.asarray(jax.jit(rawframes.normalize)(pixel)), [[96., -97., -118.]])


@pytest.mark.parametrize('i', range(8))
def test_resize_matches_cv2(i):
  src, want = GOLDEN[f'resize_src_{i}'], GOLDEN[f'resize_dst_{i}']
  got = rawframes.resize(src[None], (want.shape[1], want.shape[0]))[0]
  np.testing.assert_array_equal(got, want)


def test_rescale_size_and_crop_box():
  # mmcv.rescale_size((w, h), (340, 256)): 320x240 -> 340x255.
  assert rawframes.rescale_size((320, 240), (340, 256)) == (340, 255)
  assert rawframes.rescale_size((170, 128), (85, 64)) == (85, 64)
  frames = np.arange(2 * 7 * 9 * 3, dtype=np.uint8).reshape(2, 7, 9, 3)
  # CenterCrop offsets: left (9 - 4) // 2 = 2, top (7 - 3) // 2 = 2.
  np.testing.assert_array_equal(rawframes.center_crop(frames, (4, 3)),
                                frames[:, 2:5, 2:6])
  with pytest.raises(TalError, match='crop_size 8x8 .* 9x7'):
    rawframes.center_crop(frames, 8)


def test_preprocess_equals_resize_then_crop():
  rng = np.random.default_rng(0)
  for shape, scale, crop in [((37, 50), (85, 64), 31), ((90, 61), (40, 33), 21),
                             ((64, 85), (85, 64), (40, 56))]:
    frames = rng.integers(0, 256, (3, *shape, 3), dtype=np.uint8)
    full = rawframes.center_crop(rawframes.resize_keep_ratio(frames, scale),
                                 crop)
    np.testing.assert_array_equal(rawframes.preprocess(frames, scale, crop),
                                  full)


def _frames(count, height=6, width=8):
  return np.stack([np.full((height, width, 3), 20 * i, np.uint8)
                   for i in range(count)])


def test_index_mapping_matches_raw_frame_decode(tmp_path):
  # MMAction2's RawFrameDecode read file img_{f:05d}.jpg for frame_ind f
  # (1-based, start_index 1): our row f - 1.
  inds, files = GOLDEN['mapping_frame_inds'], GOLDEN['mapping_files']
  np.testing.assert_array_equal(files, inds)
  rawframes.write_frames(str(tmp_path / 'v'), _frames(12))
  got = rawframes.read_frames(str(tmp_path / 'v'), inds - 1)
  np.testing.assert_allclose(got.mean((1, 2, 3)), 20 * (files - 1), atol=1)


def test_rows_start_index_and_template(tmp_path):
  rawframes.write_frames(str(tmp_path / 'a'), _frames(4),
                         filename_tmpl='f{}.jpg', start_index=0)
  assert sorted(os.listdir(tmp_path / 'a')) == [f'f{i}.jpg' for i in range(4)]
  got = rawframes.read_frames(str(tmp_path / 'a'), [3, 0], 'f{}.jpg', 0)
  np.testing.assert_allclose(got.mean((1, 2, 3)), [60, 0], atol=1)
  rawframes.write_frames(str(tmp_path / 'b'), _frames(4))
  assert rawframes.count_frames(str(tmp_path / 'b')) == 4
  # Row 2 is img_00003.jpg.
  os.remove(tmp_path / 'b' / 'img_00003.jpg')
  assert rawframes.count_frames(str(tmp_path / 'b')) == 2
  with pytest.raises(TalError, match='img_00003.jpg'):
    rawframes.read_frames(str(tmp_path / 'b'), [0, 2])
  assert rawframes.count_frames(str(tmp_path / 'a'), 'f{}.jpg', 0) == 4
  assert rawframes.read_frames(str(tmp_path / 'a'), []).shape == (0, 0, 0, 3)
  empty = rawframes.load_clip(str(tmp_path / 'a'), [], crop_size=(5, 4))
  assert empty.shape == (0, 4, 5, 3)


def test_duplicates_decoded_once(tmp_path, monkeypatch):
  rawframes.write_frames(str(tmp_path / 'v'), _frames(5))
  calls = []
  decode = rawframes.decode_image
  monkeypatch.setattr(rawframes, 'decode_image',
                      lambda path: calls.append(path) or decode(path))
  got = rawframes.read_frames(str(tmp_path / 'v'), [4, 1, 1, 4, 0, 1])
  assert sorted(os.path.basename(p) for p in calls) == [
      'img_00001.jpg', 'img_00002.jpg', 'img_00005.jpg']
  np.testing.assert_allclose(got.mean((1, 2, 3)), [80, 20, 20, 80, 0, 20],
                             atol=1)


def test_bad_frames_raise_tal_error(tmp_path):
  rawframes.write_frames(str(tmp_path / 'v'), _frames(3))
  with open(tmp_path / 'v' / 'img_00002.jpg', 'wb') as f:
    f.write(b'not a jpeg')
  with pytest.raises(TalError, match='unreadable frame .*img_00002.jpg'):
    rawframes.read_frames(str(tmp_path / 'v'), [0, 1])
  with pytest.raises(TalError, match='missing frame .*img_00009.jpg'):
    rawframes.read_frames(str(tmp_path / 'v'), [8])
  rawframes.write_frames(str(tmp_path / 'w'), _frames(2))
  os.replace(tmp_path / 'v' / 'img_00001.jpg', tmp_path / 'w' / 'img_00002.jpg')
  rawframes.write_frames(str(tmp_path / 'x'), _frames(1, 9, 8))
  os.replace(tmp_path / 'x' / 'img_00001.jpg', tmp_path / 'w' / 'img_00002.jpg')
  with pytest.raises(TalError, match='img_00002.jpg is 8x9'):
    rawframes.read_frames(str(tmp_path / 'w'), [0, 1])
  with pytest.raises(TalError, match='missing frame folder'):
    rawframes.count_frames(str(tmp_path / 'nowhere'))
  with pytest.raises(TalError, match='w: crop_size 224x224 .* 8x6'):
    rawframes.load_clip(str(tmp_path / 'w'), [0], (8, 6), 224)


def test_write_frames_is_atomic(tmp_path, monkeypatch):
  target = str(tmp_path / 'v')
  rawframes.write_frames(target, _frames(3))
  path = rawframes._frame_path

  def failing(folder, tmpl, number):
    if number == 2:
      raise OSError('disk full')
    return path(folder, tmpl, number)

  monkeypatch.setattr(rawframes, '_frame_path', failing)
  with pytest.raises(OSError, match='disk full'):
    rawframes.write_frames(target, _frames(5))
  with pytest.raises(OSError, match='disk full'):
    rawframes.write_frames(str(tmp_path / 'new'), _frames(5))
  # The old folder is intact, the new one absent, no temporary left over.
  assert os.listdir(tmp_path) == ['v']
  assert rawframes.count_frames(target) == 3
  monkeypatch.setattr(rawframes, '_frame_path', path)
  rawframes.write_frames(target, _frames(2))  # replaces the old folder.
  assert sorted(os.listdir(tmp_path)) == ['v']
  assert sorted(os.listdir(target)) == ['img_00001.jpg', 'img_00002.jpg']


GTS = np.array([[3, 20, 40], [14, 60, 80]])


def test_synthetic_frames_deterministic():
  a = synthetic_frames.synthetic_frames(GTS, 90, 48, 64, seed=[1, 2])
  assert a.shape == (90, 48, 64, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(
      a, synthetic_frames.synthetic_frames(GTS, 90, 48, 64, seed=[1, 2]))
  assert np.abs(a.astype(int) - synthetic_frames.synthetic_frames(
      GTS, 90, 48, 64, seed=[1, 3])).mean() > 5


def _foreground(frames, t, background_t, threshold=40):
  """[H, W] bool: pixels of frame t far from frame background_t."""
  diff = np.abs(frames[t].astype(int) - frames[background_t].astype(int))
  return diff.max(-1) > threshold


def test_synthetic_pattern_visible_with_soft_edges():
  f = synthetic_frames.synthetic_frames(GTS, 90, 48, 64, seed=4)
  background = [_foreground(f, t, t + 3).sum() for t in (2, 6, 47, 52, 85)]
  assert max(background) == 0  # background frames differ only a little.
  inside = [_foreground(f, t, 12).sum() for t in range(24, 37, 4)]
  assert min(inside) > 60  # the shape covers tens of pixels in every frame.
  # Fade in over the first frames, none before the segment / after its end.
  edge = [np.abs(f[t].astype(int) - f[12]).max(-1).sum()
          for t in (19, 20, 21, 22, 23)]
  assert edge[0] < edge[1] < edge[2] < edge[3] <= edge[4] * 1.2
  assert _foreground(f, 40, 44).sum() == 0
  edge = [np.abs(f[t].astype(int) - f[84]).max(-1).sum()
          for t in (76, 77, 78, 79, 80)]
  assert edge[0] * 1.2 >= edge[1] > edge[2] > edge[3] > edge[4]
  assert _foreground(f, 80, 84).sum() == 0


def _pattern(label, seed=7, t=30):
  """Mean colour [3] and centred mask [25, 25] of one class at frame t."""
  f = synthetic_frames.synthetic_frames([[label, 20, 50]], 60, 48, 64, seed)
  mask = _foreground(f, t, 10)
  colour = f[t][mask].mean(0)
  ys, xs = np.nonzero(mask)
  centred = np.zeros((25, 25), bool)
  centred[ys - int(round(ys.mean())) + 12, xs - int(round(xs.mean())) + 12] = 1
  return colour, centred


def _iou(a, b):
  return (a & b).sum() / (a | b).sum()


def test_synthetic_classes_differ():
  # Colour: class k's pattern is closest to colour (k - 1) // 5.
  for label in (1, 7, 13, 19, 20):
    colour, _ = _pattern(label)
    nearest = np.argmin(np.abs(synthetic_frames._COLOURS - colour).sum(-1))
    assert nearest == (label - 1) // 5
  # Shape: at another frame (moved), each of the 5 shapes overlaps its own
  # mask more than any other shape's: a one-frame nearest-shape classifier.
  masks = [_pattern(label)[1] for label in range(1, 6)]
  for label in range(1, 6):
    later = _pattern(label, t=34)[1]
    ious = [_iou(later, m) for m in masks]
    assert np.argmax(ious) == label - 1, ious
  assert max(_iou(masks[i], masks[j]) for i in range(5) for j in range(i)) < 0.8
