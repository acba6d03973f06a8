"""tal_jax.features against MMAction2 1.2.0's ActivityNet feature route.

tests/golden/features.npz comes from tests/golden/make_features_golden.py
(MMAction2's UntrimmedSampleFrames, flow_extraction.py's TV-L1 +
flow_to_img, the tsn_extract_{rgb,flow}_feat_config.py recognisers through
clip_feature_extraction.py's long-video mode, and
activitynet_feature_postprocessing.py), on the integer-only frames of
tests/golden/features_frames.py and seeded weights regenerated here
(ssn_frames_weights).
"""

import os
import sys

import numpy as np
import pytest

import tal_jax  # noqa: F401  (before any JAX computation)
from tal_jax.features import extract
from tal_jax.features import flow as flow_lib
from tal_jax.features import pooling
from tal_jax.features import sampling
from tal_jax.features import tsn
from tal_jax.features import video

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden')
sys.path.insert(0, GOLDEN)
import features_frames  # noqa: E402  pylint: disable=g-import-not-at-top
import ssn_frames_weights as weights  # noqa: E402  pylint: disable=g-import-not-at-top


def _rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)


@pytest.fixture(scope='module')
def golden():
  return dict(np.load(os.path.join(GOLDEN, 'features.npz')))


@pytest.fixture(scope='module')
def frames(golden):
  f = features_frames.frames()
  assert f.sum(dtype=np.int64) == golden['frames_sum']
  return f


def _state(golden, key):
  sd = weights.state_dict(weights.decode_shapes(
      golden[f'{key}/state_names'], golden[f'{key}/state_shapes']),
                          int(golden[f'{key}/seed']))
  for (name, _), total in zip(weights.decode_shapes(
      golden[f'{key}/state_names'], golden[f'{key}/state_shapes']),
                              golden[f'{key}/check_sums']):
    assert np.sum(sd[name], dtype=np.float64) == pytest.approx(total,
                                                               rel=1e-12)
  return sd


def test_untrimmed_sample_frames(golden):
  for i, (n, clip_len, interval, step, start) in enumerate(
      golden['sampling/cases']):
    got = sampling.untrimmed_frame_inds(int(n), int(clip_len), int(interval),
                                        int(step), int(start))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, golden[f'sampling/{i}'])


def test_flow_needed_frames_cover_the_clips():
  for n in (9, 10, 11, 24, 25, 26, 27, 100, 1000):
    inds = sampling.untrimmed_frame_inds(n, sampling.FLOW_CLIP_LEN)
    assert all(extract.is_flow_frame(int(j)) for j in inds)
  assert [j for j in range(40) if extract.is_flow_frame(j)] == [
      6, 7, 8, 9, 10, 22, 23, 24, 25, 26, 38, 39]


def test_tvl1_flow_equals_flow_extraction(golden, frames):
  tvl1 = flow_lib.TVL1()
  for j in (0, 7, 40):
    xy = flow_lib.quantised_flow(tvl1, frames[j], frames[j + 1], jpeg=False)
    np.testing.assert_array_equal(xy[..., 0], golden['flow/x'][j])
    np.testing.assert_array_equal(xy[..., 1], golden['flow/y'][j])


def test_jpeg_roundtrip_equals_imwrite_imfrombytes(golden):
  xy = np.stack([golden['flow/x'][:6], golden['flow/y'][:6]])
  out = flow_lib.jpeg_roundtrip(xy)
  np.testing.assert_array_equal(out[0], golden['flow/jpeg_x'][:6])
  np.testing.assert_array_equal(out[1], golden['flow/jpeg_y'][:6])


@pytest.fixture(scope='module')
def sampled(frames):
  return extract.sample_frames(iter(frames), with_flow=True)


def test_sampled_clips_are_mmaction_inputs(golden, frames, sampled):
  np.testing.assert_array_equal(golden['rgb/inds'], np.arange(8, 72, 16))
  assert sampled.num_frames == 72
  np.testing.assert_array_equal(
      sampled.rgb, extract.preprocess(frames[golden['rgb/inds']]))
  xy = np.stack([golden['flow/jpeg_x'], golden['flow/jpeg_y']], -1)
  clips = extract.preprocess(xy[golden['flow/inds']]).reshape(
      4, 5, 256, 256, 2)
  np.testing.assert_array_equal(sampled.flow, tsn.stack_flow_clip(clips))


def _outputs(golden, key, stream, clips):
  module, variables = tsn.from_state_dict(_state(golden, key), stream)
  return tsn.Recognizer(module, variables, batch_size=3)(clips)


def test_rgb_recogniser(golden, sampled):
  out = _outputs(golden, 'rgb', tsn.RGB, sampled.rgb)
  assert out['scores'].shape == (4, 200)
  assert _rel(out['scores'], golden['rgb/scores']) < 2e-6
  assert _rel(out['feature'], golden['rgb/feature']) < 2e-6


def test_flow_recogniser(golden, sampled):
  out = _outputs(golden, 'flow', tsn.FLOW, sampled.flow)
  assert _rel(out['scores'], golden['flow/scores']) < 2e-6
  assert _rel(out['feature'], golden['flow/feature']) < 2e-6


def test_normalised_inputs(golden, sampled):
  for key, stream, clips in (('rgb', tsn.RGB, sampled.rgb),
                             ('flow', tsn.FLOW, sampled.flow)):
    x = (clips.astype(np.float64) - np.asarray(stream.mean)) / np.asarray(
        stream.std)
    assert x.sum() == pytest.approx(float(golden[f'{key}/inputs_sum']),
                                    rel=1e-6)


def test_pool_feature(golden):
  for n in golden['pool/lengths']:
    np.testing.assert_allclose(pooling.pool_feature(golden[f'pool/in_{n}']),
                               golden[f'pool/out_{n}'], rtol=0, atol=1e-12)


def test_merged_csv(golden):
  merged = pooling.merge_streams(golden['rgb/scores'], golden['flow/scores'])
  np.testing.assert_allclose(merged, golden['pool/rgb_flow'], rtol=0,
                             atol=1e-6)
  assert pooling.csv_text(merged) == str(golden['csv'])


def test_average_clip():
  s = np.array([[1., 2., 3.], [3., 2., 1.]])
  np.testing.assert_allclose(tsn.average_clip(s, 'score'), [2., 2., 2.])
  p = np.exp(s) / np.exp(s).sum(1, keepdims=True)
  np.testing.assert_allclose(tsn.average_clip(s, 'prob'), p.mean(0))
  assert tsn.average_clip(s, None) is s


def test_rawframes_folder_route(golden, frames, sampled, tmp_path):
  """A rawframes folder written with cv2 (RGB frames; the quantised flow as
  flow_extraction.py stores it) reads as MMAction2 reads it (cv2 decoding),
  and gives the video route's flow clips."""
  cv2 = pytest.importorskip('cv2')
  from tal_jax.features import frame_folders  # pylint: disable=g-import-not-at-top
  d = tmp_path / 'v_folder'
  d.mkdir()
  for i, f in enumerate(frames):
    cv2.imwrite(str(d / f'img_{i + 1:05d}.jpg'), f[..., ::-1])
  for i in range(len(golden['flow/x'])):
    cv2.imwrite(str(d / f'flow_x_{i + 1:05d}.jpg'), golden['flow/x'][i])
    cv2.imwrite(str(d / f'flow_y_{i + 1:05d}.jpg'), golden['flow/y'][i])
  got = extract.sample_frame_folder(str(d), with_flow=True)
  assert got.num_frames == 72
  rgb = np.stack([cv2.imread(str(d / f'img_{i + 1:05d}.jpg'))[..., ::-1]
                  for i in golden['rgb/inds']])
  np.testing.assert_array_equal(got.rgb, extract.preprocess(rgb))
  np.testing.assert_array_equal(got.flow, sampled.flow)
  flow = frame_folders.read_flow(str(d), [0, 70])
  np.testing.assert_array_equal(flow[1, ..., 1], golden['flow/jpeg_y'][70])
  assert frame_folders.list_frame_folders(str(tmp_path)) == [str(d)]
  assert extract.feature_name(str(d)) == 'v_folder'


def test_pyav_decodes_as_decord_and_cv2(golden, tmp_path):
  """PyAV's frames of the example video are MMAction2's decoders' frames."""
  path = tmp_path / 'example.mp4'
  path.write_bytes(golden['decode/mp4'].tobytes())
  got = np.stack(list(video.iter_frames(str(path))))
  np.testing.assert_array_equal(got, golden['decode/decord'])
  if not golden['decode/cv2_equals_decord']:
    np.testing.assert_array_equal(got, golden['decode/cv2'])
