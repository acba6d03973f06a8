"""BMN on THUMOS14 windows end to end: train, test, evaluate (tiny config)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tal_jax  # noqa: F401

from tal_jax import config_utils
from tal_jax import localizers
from tal_jax.data import pipeline
from tal_jax.data import thumos14
from tal_jax.engine import loop
from tal_jax.engine import predict
from tal_jax.engine import window_test
from tal_jax.tools import evaluate
from tal_jax.tools import infer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config():
  return config_utils.load_config(
      os.path.join(ROOT, 'configs/bmn_thumos14.py:tiny'))


def test_embedded_windows_hold_real_ground_truth():
  config = tiny_config()
  train = pipeline.load_split(config, 'train')
  test = pipeline.load_split(config, 'test')
  assert train.features.shape[1:] == (32, 16)
  # Train windows all hold an action, in window snippets within [0, 32].
  for rec in train.records:
    segs = np.array([a['segment'] for a in rec['annotations']])
    assert len(segs) and segs.min() >= 0 and segs.max() <= 32
    assert rec['duration_second'] == rec['duration_frame'] == 32
  # Test windows cover every snippet of their videos (stride 5 at 30 fps).
  by_video = {}
  for rec in test.records:
    w = rec['window']
    by_video.setdefault(w['video'], set()).update(range(w['start'], w['end']))
  for video, covered in by_video.items():
    frames = int(thumos14.embedded_records('test')[video]['duration_second']
                 * 30)
    assert covered == set(range(len(range(0, frames, 5))))


@pytest.fixture(scope='module')
def tested(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('bmn_th14'))
  config = tiny_config()
  model_def = localizers.get(config)
  config_utils.save_config(config, workdir)
  loop.train_and_evaluate(model_def, config, workdir, quiet=True)
  metrics = predict.run_test(model_def, config, workdir, quiet=True)
  return config, workdir, metrics


def test_test_mode_writes_thumos14_metrics(tested):
  _, workdir, metrics = tested
  assert set(metrics) == {'AR@50', 'AR@100', 'AR@200', 'AR@500', 'AR@1000',
                          'mAP@0.30', 'mAP@0.40', 'mAP@0.50', 'mAP@0.60',
                          'mAP@0.70', 'average_mAP'}
  with open(os.path.join(workdir, 'metrics.json')) as f:
    assert json.load(f) == pytest.approx(metrics)
  # The AR-AN curve never falls.
  ars = [metrics[f'AR@{n}'] for n in (50, 100, 200, 500, 1000)]
  assert ars == sorted(ars)


def test_results_are_video_seconds_with_unet_labels(tested):
  config, workdir, _ = tested
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)['results']
  with open(os.path.join(workdir, 'proposals.json')) as f:
    proposals = json.load(f)['results']
  videos = thumos14.embedded_records('test')
  assert set(results) == set(proposals) and results
  for video, items in results.items():
    duration = videos[video]['duration_second']
    segs = np.array([i['segment'] for i in items])
    assert 0 < len(items) <= config.test.nms_max_seg_num
    assert segs.min() >= 0 and segs.max() <= duration + 0.01
    # Top-2 UntrimmedNet classes only.
    assert len({i['label'] for i in items}) <= 2
    assert {i['label'] for i in items} <= set(thumos14.CLASSES)
    assert len(proposals[video]) <= config.test.proposal_max_seg_num


def test_evaluate_tool_reproduces_test_metrics(tested, tmp_path):
  config, workdir, metrics = tested
  gt = window_test.video_ground_truth(pipeline.load_split(config, 'test'))
  gt_path = tmp_path / 'gt.json'
  gt_path.write_text(json.dumps({'database': {
      v: {'annotations': a} for v, a in gt.items()}}))
  got = evaluate.main(['--gt', str(gt_path), '--dataset', 'thumos14_opentad',
                       '--proposals', os.path.join(workdir, 'proposals.json'),
                       '--detections', os.path.join(workdir, 'results.json')])
  assert got == pytest.approx(metrics)


def test_infer_cuts_a_long_video_into_windows(tested, tmp_path):
  config, workdir, _ = tested
  feats = np.random.default_rng(0).standard_normal(
      (1014, config.model.feat_dim)).astype(np.float32)
  path = tmp_path / 'video_test_0000004.npy'
  np.save(path, feats)
  out = tmp_path / 'out.json'
  got = infer.main(['--workdir', workdir, '--features', str(path),
                    '--duration-second', '33.826', '--out', str(out),
                    '--quiet'])
  rows = got['v_video_test_0000004']
  # 1014 per-frame rows, every 5th a snippet: 203 snippets over 33.826 s, in
  # 32-snippet windows: proposals reach past the first window (5.3 s) and
  # stay inside the video.
  assert 0 < len(rows) <= config.test.proposal_max_seg_num
  assert rows[:, :2].min() >= 0 and rows[:, :2].max() <= 33.826
  assert rows[:, 1].max() > 10
  with open(out) as f:
    assert len(json.load(f)['results']['video_test_0000004']) == len(rows)


def test_two_devices_from_the_cli_equal_one_device(tested, tmp_path):
  """The window configs train and test data-parallel: the CLI on 2 simulated
  devices gives the 1-device run's metrics and detections (float32
  reduction order aside)."""
  config, workdir, metrics = tested
  two = str(tmp_path / 'two')
  env = {**os.environ,
         'XLA_FLAGS': '--xla_force_host_platform_device_count=2',
         'JAX_PLATFORMS': 'cpu',
         'PYTHONPATH': os.pathsep.join(
             [ROOT] + [p for p in [os.environ.get('PYTHONPATH')] if p])}
  for mode in ('train', 'test'):
    r = subprocess.run(
        [sys.executable, '-m', 'tal_jax.main',
         '--config=configs/bmn_thumos14.py:tiny', f'--workdir={two}',
         f'--mode={mode}', f'--config.data.cache_dir={config.data.cache_dir}'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'devices=2 x cpu' in r.stdout and 'mesh=data:2' in r.stdout
  with open(os.path.join(two, 'metrics.json')) as f:
    assert json.load(f) == pytest.approx(metrics, abs=1e-4)
  results = []
  for w in (workdir, two):
    with open(os.path.join(w, 'results.json')) as f:
      results.append(json.load(f)['results'])
  assert set(results[0]) == set(results[1])
  for video, items in results[0].items():
    top = lambda rows: np.array([r['segment'] + [r['score']]
                                 for r in rows[:10]])
    np.testing.assert_allclose(top(results[1][video]), top(items),
                               rtol=1e-4, atol=1e-4)
