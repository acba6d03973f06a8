"""tools.extract_features and tools.infer --video on generated videos.

Videos are written at test time with PyAV (features.video.example_frames);
the recognisers are random-init TSN checkpoints (width 8, 200 classes)
written as .pth without torch (features.random_init).
"""

import json
import os

import numpy as np
import pytest

import tal_jax  # noqa: F401  (before any JAX computation)
from tal_jax import errors
from tal_jax.data import activitynet
from tal_jax.features import extract
from tal_jax.features import pooling
from tal_jax.features import random_init
from tal_jax.features import tsn
from tal_jax.features import video
from tal_jax.tools import extract_features
from tal_jax.tools import infer as infer_tool

from test_export import make_workdir, tiny_config


@pytest.fixture(scope='module')
def files(tmp_path_factory):
  base = tmp_path_factory.mktemp('features')
  rgb = random_init.write_checkpoint(str(base / 'rgb.pth'), tsn.RGB, width=8,
                                     seed=1)
  flow = random_init.write_checkpoint(str(base / 'flow.pth'), tsn.FLOW,
                                      width=8, seed=2)
  videos = base / 'videos'
  videos.mkdir()
  video.write_video(str(videos / 'clip_a.mp4'), video.example_frames(40))
  (videos / 'broken.mp4').write_bytes(b'not a video')
  return base, rgb, flow, str(videos)


def test_example_video_round_trip(tmp_path):
  path = video.write_example_video(str(tmp_path / 'ex.mp4'), num_frames=30)
  frames = np.stack(list(video.iter_frames(path)))
  want = video.example_frames(30)
  assert frames.shape == want.shape == (30, 64, 96, 3)
  assert np.abs(frames.astype(int) - want).mean() < 12
  info = video.video_info(path)
  assert info['fps'] == 25 and info['duration_second'] == pytest.approx(1.2)


def test_cli_writes_features_and_names_the_bad_video(files, capsys):
  base, rgb, flow, videos = files
  out = str(base / 'csv_mean_100')
  args = ['--video', videos, '--out-dir', out, '--rgb-checkpoint', rgb,
          '--flow-checkpoint', flow, '--dump-score', '--quiet']
  with pytest.raises(errors.TalError, match='1 of 2 videos failed'):
    extract_features.main(args)
  err = capsys.readouterr().err
  assert err.count('error: ') == 1 and 'broken.mp4' in err
  assert sorted(os.listdir(out)) == ['v_clip_a.csv']
  path = os.path.join(out, 'v_clip_a.csv')
  got = activitynet.read_feature_array(path, np.float64)
  assert got.shape == (100, 400)
  # The same numbers as the library's stages, and the CSV text exactly.
  ex = extract.Extractor.from_checkpoints(rgb, flow, 4)
  sampled = extract.sample_video(os.path.join(videos, 'clip_a.mp4'), True)
  assert sampled.rgb.shape == (2, 256, 256, 3)  # clip centres 8, 24.
  assert sampled.flow.shape == (2, 256, 256, 10)
  clips = ex.clip_outputs(sampled)
  with open(path) as f:
    assert f.read() == pooling.csv_text(
        pooling.merge_streams(clips['rgb'], clips['flow']))
  # Row 0 sits at the first clip (eps = 1e-4 from it), the last at clip 2.
  np.testing.assert_allclose(got[0, :200], clips['rgb'][0], atol=2e-4)
  np.testing.assert_allclose(got[-1, 200:], clips['flow'][1], atol=2e-2)
  # Resume: the written video is skipped, the file left alone.
  mtime = os.stat(path).st_mtime_ns
  report = extract_features.main(
      ['--video', os.path.join(videos, 'clip_a.mp4'), '--out-dir', out,
       '--rgb-checkpoint', rgb, '--dump-score', '--quiet'])
  assert list(report.skipped) and not report.written
  assert os.stat(path).st_mtime_ns == mtime


def test_pooled_feature_mode_npy(files):
  base, rgb, _, videos = files
  out = str(base / 'npy')
  report = extract_features.main(
      ['--video', os.path.join(videos, 'clip_a.mp4'), '--out-dir', out,
       '--rgb-checkpoint', rgb, '--format', 'npy', '--quiet'])
  x = np.load(report.written[os.path.join(videos, 'clip_a.mp4')])
  assert x.shape == (100, 256) and x.dtype == np.float32
  assert x.min() >= 0  # pooled ReLU features.


def test_wrong_stream_checkpoint(files):
  base, rgb, flow, videos = files
  with pytest.raises(errors.TalError, match='stem takes 3 channels'):
    extract_features.main(['--video', videos, '--out-dir', str(base / 'x'),
                           '--rgb-checkpoint', rgb, '--flow-checkpoint', rgb])
  with pytest.raises(errors.TalError, match='no such file'):
    extract_features.main(['--video', videos, '--out-dir', str(base / 'x'),
                           '--rgb-checkpoint', str(base / 'none.pth')])


def test_infer_video_end_to_end(files, capsys):
  base, rgb, flow, videos = files
  config = tiny_config(base / 'cache')
  make_workdir(base / 'work', config, seed=1)
  out, png = str(base / 'props.json'), str(base / 'props.png')
  with pytest.raises(errors.TalError, match='--video needs --rgb-checkpoint'):
    infer_tool.main(['--workdir', str(base / 'work'), '--video', videos])
  # A folder with a broken video stops (exit 2, no results written) naming
  # it; with --skip-unreadable the other one goes on.
  args = ['--workdir', str(base / 'work'), '--video', videos,
          '--rgb-checkpoint', rgb, '--flow-checkpoint', flow, '--out', out,
          '--top', '3', '--quiet']
  with pytest.raises(errors.TalError, match=(
      r'^1 of 2 videos could not be read \(broken.mp4\); the features of the '
      r'others are kept in .*video_features: fix or remove')):
    infer_tool.main(args)
  assert not os.path.exists(out)
  props = infer_tool.main(args + ['--skip-unreadable'])
  assert list(props) == ['v_clip_a']
  assert 'broken.mp4' in capsys.readouterr().err
  # One file, with the plot; the features written above are reused.
  props = infer_tool.main(
      ['--workdir', str(base / 'work'), '--video',
       os.path.join(videos, 'clip_a.mp4'), '--rgb-checkpoint', rgb,
       '--flow-checkpoint', flow, '--out', out, '--plot', png, '--top', '3',
       '--quiet'])
  rows = props['v_clip_a']
  assert len(rows) > 0
  assert np.all(rows[:, 0] >= 0) and np.all(rows[:, 1] <= 1.6 + 1e-6)
  with open(os.path.join(base / 'work', 'video_features', 'videos.json')) as f:
    rec = json.load(f)['v_clip_a']
  assert rec['duration_frame'] == 40 and rec['duration_second'] == 1.6
  with open(out) as f:
    assert list(json.load(f)['results']) == ['clip_a']
  assert os.path.getsize(png) > 0
  assert 'v_clip_a (1.60 s): top 3' in capsys.readouterr().out


def test_cli_rawframes_folders(files):
  base, rgb, _, _ = files
  from tal_jax.data import rawframes  # pylint: disable=g-import-not-at-top
  root = base / 'rawframes'
  frames = video.example_frames(25)
  rawframes.write_frames(str(root / 'v_one'), frames)
  report = extract_features.main(
      ['--video', str(root), '--rawframes', '--out-dir', str(base / 'rf'),
       '--rgb-checkpoint', rgb, '--dump-score', '--format', 'npy',
       '--quiet'])
  x = np.load(report.written[str(root / 'v_one')])
  # 25 frames: clip centres 8 and 24, read back from the JPEGs.
  ex = extract.Extractor.from_checkpoints(rgb)
  want = ex.rgb(extract.preprocess(rawframes.read_frames(
      str(root / 'v_one'), [8, 24])))['scores']
  np.testing.assert_allclose(x, pooling.pool_feature(want), rtol=1e-6,
                             atol=1e-6)


def test_recognizer_batches(files):
  """Short inputs use small power-of-two batches; the outputs do not depend
  on the batch a clip lands in."""
  _, rgb, _, _ = files
  rec = tsn.Recognizer(*tsn.load(rgb, tsn.RGB), batch_size=8)
  n = rec.mesh.devices.size
  assert [rec.batch_for(k * n) for k in (1, 2, 3, 5, 8, 40)] == [
      n, 2 * n, 4 * n, 8 * n, 8 * n, 8 * n]
  clips = np.random.default_rng(0).integers(0, 256, (11, 64, 64, 3),
                                            np.uint8)
  whole = rec(clips)['scores']
  one = np.concatenate([rec(clips[i:i + 1])['scores'] for i in (0, 9, 10)])
  np.testing.assert_allclose(one, whole[[0, 9, 10]], rtol=1e-5, atol=1e-6)
