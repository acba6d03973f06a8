"""SSN feature mode end to end on the tiny config (configs/ssn.py:tiny)."""

import json
import os
import shutil

import numpy as np
import optax
import pytest

import tal_jax  # noqa: F401

from tal_jax import config_utils
from tal_jax import errors
from tal_jax import evaluation
from tal_jax.engine import predict as infer
from tal_jax.localizers.ssn import definition as ssn
from tal_jax.engine import trainer as train
from tal_jax.data import pipeline
from tal_jax.data import thumos14
from tal_jax.engine import loop
from tal_jax import localizers
from conftest import metrics_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(cache_dir, **train_fields):
  config = config_utils.load_config(os.path.join(ROOT, 'configs/ssn.py:tiny'))
  config.data.cache_dir = str(cache_dir)
  config.train.update(train_fields)
  return config


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp('ssn_cache')


@pytest.fixture(scope='module')
def trained(cache, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('ssn_work'))
  config = _config(cache)
  loop.train_and_evaluate(localizers.get(config), config, workdir, quiet=True)
  metrics = infer.run_test(localizers.get(config), config, workdir, quiet=True)
  return config, workdir, metrics


def test_embedded_set_is_real_thumos_ground_truth(cache):
  config = _config(cache)
  videos = pipeline.load_split(config, 'train')
  assert len(videos) == 8
  real = thumos14.embedded_records('validation')
  for name, rec in zip(videos.names, videos.records):
    want = real[name]
    assert rec['duration_second'] == pytest.approx(
        want['duration_second'], abs=1 / 30)
    got = [(a['label'], *a['segment']) for a in rec['annotations']]
    exp = [(a['label'], *a['segment']) for a in want['annotations']]
    assert [g[0] for g in got] == [e[0] for e in exp]
    np.testing.assert_allclose([g[1:] for g in got], [e[1:] for e in exp],
                               atol=1 / 30 + 1e-9)


def test_tiny_trains_two_epochs_and_tests(trained):
  config, workdir, metrics = trained
  rows = metrics_rows(workdir)
  assert [r['epoch'] for r in rows if r['split'] == 'val'] == [1, 2]
  assert all(0 <= r['AUC'] <= 100 for r in rows if r['split'] == 'val')
  assert set(metrics) == {f'mAP@{t:.2f}' for t in np.arange(0.1, 1, 0.1)} | {
      'average_mAP'}
  saved = json.load(open(os.path.join(workdir, 'metrics.json')))
  assert saved == pytest.approx(metrics)
  results = json.load(open(os.path.join(workdir, 'results.json')))['results']
  test_set = pipeline.load_split(config, 'test')
  assert sorted(results) == sorted(test_set.names)
  assert all(r['label'] in thumos14.CLASSES for v in results.values()
             for r in v)
  # The same detections in seconds with class names, scored by
  # tal_jax.evaluation (mean over the classes with gt), give SSN's mAP
  # (mean over all 20 classes, 0 for those without gt) times 20 / #classes.
  gt = {n: r['annotations'] for n, r in zip(test_set.names, test_set.records)}
  ap, classes = evaluation.detection_ap_table(
      gt, results, evaluation.THUMOS_TIOU_THRESHOLDS, 'official',
      list(thumos14.CLASSES), np.float32)
  scaled = ap.mean(axis=1) * len(classes) / 20
  want = [metrics[f'mAP@{t:.2f}'] for t in evaluation.THUMOS_TIOU_THRESHOLDS]
  np.testing.assert_allclose(scaled, want, atol=1e-6)
  assert metrics['mAP@0.10'] > 0


def test_loop_evaluation_equals_test_mode_detections(trained):
  # The loop's per-epoch path (all classes merged, top-k, seconds) ranks
  # --mode=test's detections.
  config, workdir, _ = trained
  trainer = train.Trainer(localizers.get(config), config, steps_per_epoch=1)
  variables, _ = infer.restore_variables(trainer.predictor, config, workdir)
  test_set = pipeline.load_split(config, 'test')
  props = ssn.predict(trainer, variables, test_set,
                      ssn.eval_arrays(test_set, config))
  results = json.load(open(os.path.join(workdir, 'results.json')))['results']
  for name in test_set.names:
    want = np.array([r['segment'] + [r['score']] for r in results[name]])
    got = props[name]
    assert len(got) == min(len(want), config.test.post_process_top_k)
    np.testing.assert_allclose(got[:20], want[:20], rtol=1e-4, atol=1e-6)


def test_epoch_sampling_depends_only_on_seed_and_epoch(cache):
  config = _config(cache)
  videos = pipeline.load_split(config, 'train')
  a = ssn.epoch_arrays(ssn.train_arrays(videos, config), 3, config)
  b = ssn.epoch_arrays(ssn.train_arrays(videos, config), 3, config)
  c = ssn.epoch_arrays(ssn.train_arrays(videos, config), 4, config)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert a['inputs'].shape == (8, 8, 9, 64)
  np.testing.assert_array_equal(a['proposal_type'][0],
                                [0, 1, 1, 1, 1, 1, 1, 2])
  assert not np.array_equal(a['inputs'], c['inputs'])


def test_resumed_run_trains_on_the_same_samples(cache, trained, tmp_path):
  _, full_dir, _ = trained
  workdir = str(tmp_path / 'resumed')
  loop.train_and_evaluate(localizers.get(_config(cache, num_epochs=1)), _config(cache, num_epochs=1), workdir, quiet=True)
  loop.train_and_evaluate(localizers.get(_config(cache)), _config(cache), workdir, quiet=True)
  keys = ('loss_activity', 'loss_completeness', 'loss_reg', 'grad_norm')
  last = lambda d: [r for r in metrics_rows(d) if r['split'] == 'train'][-1]
  assert last(workdir)['step'] == last(full_dir)['step'] == 4
  for k in keys:
    assert last(workdir)[k] == pytest.approx(last(full_dir)[k], rel=1e-5)


def test_sgd_matches_torch_recurrence():
  config = _config('/unused', learning_rate=0.1, weight_decay=0.01,
                   grad_clip_norm=100.0)
  tx = train.create_optimizer(config, optax.constant_schedule(0.1))
  p = np.array([1.0, -2.0], np.float32)
  state = tx.init(p)
  buf, want = np.zeros(2), p.copy()
  for g in (np.array([0.5, 0.25], np.float32),
            np.array([-1.0, 2.0], np.float32)):
    updates, state = tx.update(g, state, p)
    p = np.asarray(optax.apply_updates(p, updates))
    buf = 0.9 * buf + g + 0.01 * want  # torch.optim.SGD, dampening 0
    want = want - 0.1 * buf
    np.testing.assert_allclose(p, want, rtol=1e-6)


def _copy_set(cache, dst):
  paths = thumos14.data_paths(_config(cache))
  feats = str(dst / 'features')
  shutil.copytree(paths['feature_dir'], feats)
  config = _config(cache)
  config.data.feature_dir = feats
  for split in ('train', 'val', 'test'):
    setattr(config.data, f'ann_file_{split}', paths[f'ann_file_{split}'])
  return config, paths


def test_missing_feature_names_the_video(cache, tmp_path):
  config, _ = _copy_set(cache, tmp_path)
  videos = pipeline.load_split(config, 'train')
  os.remove(os.path.join(config.data.feature_dir, videos.names[2] + '.npy'))
  with pytest.raises(errors.TalError,
                     match=f'video {videos.names[2]}: feature file .*npy'):
    ssn.train_arrays(videos, config)


def test_malformed_proposal_line_names_file_and_video(cache, tmp_path):
  config, paths = _copy_set(cache, tmp_path)
  lines = open(paths['ann_file_train']).read().splitlines()
  first_proposal = 5 + int(lines[4]) + 1  # after #0, id, frames, fps, gts
  lines[first_proposal] = '1 0.5 start 10 20'
  bad = tmp_path / 'bad_list.txt'
  bad.write_text('\n'.join(lines) + '\n')
  config.data.ann_file_train = str(bad)
  with pytest.raises(errors.TalError) as e:
    pipeline.load_split(config, 'train')
  msg = str(e.value)
  assert '\n' not in msg
  assert msg == (f'{bad}:{first_proposal + 1}: video {lines[1]}: expected 5 '
                 "numbers, got '1 0.5 start 10 20'")


def test_unknown_mode_is_refused_with_one_line(cache):
  config = _config(cache)
  config.data.mode = 'clips'
  with pytest.raises(errors.TalError, match="config.data.mode='clips'"):
    pipeline.load_split(config, 'train')
