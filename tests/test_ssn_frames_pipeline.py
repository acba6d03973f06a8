"""SSN frame mode end to end on configs/ssn.py:frames_tiny (generated JPEG
rawframes, a width-8 ResNet with one block per stage, trained with the head)."""

import json
import os
import shutil

import numpy as np
import pytest

import tal_jax  # noqa: F401
import jax

from tal_jax.engine import checkpointing
from tal_jax import config_utils
from tal_jax import errors
from tal_jax.engine import predict as infer
from tal_jax.localizers.ssn import definition as ssn
from tal_jax.localizers.ssn import model as ssn_models
from tal_jax.localizers.ssn import targets as ssn_targets
from tal_jax.engine import trainer as train
from tal_jax.nn import resnet_import as tv
from tal_jax.data import pipeline
from tal_jax.data import thumos14
from tal_jax.engine import loop
from tal_jax import localizers
from conftest import metrics_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, 'tests', 'golden')


def _config(cache_dir, **train_fields):
  config = config_utils.load_config(
      os.path.join(ROOT, 'configs/ssn.py:frames_tiny'))
  config.data.cache_dir = str(cache_dir)
  config.train.update(train_fields)
  return config


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp('ssn_frames_cache')


@pytest.fixture(scope='module')
def trained(cache, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('ssn_frames_work'))
  config = _config(cache)
  loop.train_and_evaluate(localizers.get(config), config, workdir, quiet=True)
  metrics = infer.run_test(localizers.get(config), config, workdir, quiet=True)
  return config, workdir, metrics


def test_embedded_rawframes_match_the_proposal_lists(cache):
  config = _config(cache)
  paths = thumos14.data_paths(config)
  for split in ('train', 'test'):
    videos = pipeline.load_split(config, split)
    assert len(videos) == {'train': 4, 'test': 2}[split]
    for name, rec in zip(videos.names, videos.records):
      files = os.listdir(os.path.join(paths['frame_dir'], name))
      assert len(files) == rec['duration_frame']
      assert 'img_00001.jpg' in files


def test_epoch_frames_are_a_function_of_seed_and_epoch(cache):
  config = _config(cache)
  videos = pipeline.load_split(config, 'train')
  a = ssn.epoch_arrays(ssn.train_arrays(videos, config), 3, config)
  b = ssn.epoch_arrays(ssn.train_arrays(videos, config), 3, config)
  c = ssn.epoch_arrays(ssn.train_arrays(videos, config), 4, config)
  assert a['inputs'].shape == (4, 8, 9, 24, 24, 3)
  assert a['inputs'].dtype == np.uint8
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(a['inputs'], c['inputs'])


def test_trains_and_tests_with_bn_statistics_saved(trained):
  config, workdir, metrics = trained
  rows = metrics_rows(workdir)
  train_rows = [r for r in rows if r['split'] == 'train']
  assert train_rows[-1]['step'] == 4
  assert all(np.isfinite(r['loss_activity']) for r in train_rows)
  assert [r['epoch'] for r in rows if r['split'] == 'val'] == [1, 2]
  assert 'mAP@0.50' in metrics
  results = json.load(open(os.path.join(workdir, 'results.json')))['results']
  assert sorted(results) == sorted(pipeline.load_split(config, 'test').names)
  trainer = train.Trainer(localizers.get(config), config, steps_per_epoch=1)
  variables, _ = infer.restore_variables(trainer.predictor, config, workdir)
  fresh = trainer.init_state(jax.random.key(0), pretrained=False)
  # Every BN trains in this preset: the running statistics moved.
  stem = variables['batch_stats']['backbone']['bn1']['var']
  assert not np.allclose(stem, fresh.model_state['batch_stats']['backbone'][
      'bn1']['var'])


def test_resume_continues_bitwise(cache, trained, tmp_path):
  _, full_dir, _ = trained
  workdir = str(tmp_path / 'resumed')
  loop.train_and_evaluate(localizers.get(_config(cache, num_epochs=1)), _config(cache, num_epochs=1), workdir, quiet=True)
  loop.train_and_evaluate(localizers.get(_config(cache)), _config(cache), workdir, quiet=True)
  last = lambda d: [r for r in metrics_rows(d) if r['split'] == 'train'][-1]
  for k in ('loss_activity', 'loss_completeness', 'grad_norm'):
    assert last(workdir)[k] == pytest.approx(last(full_dir)[k], rel=1e-5)


def test_pretrained_backbone_is_loaded(cache):
  config = _config(cache)
  config.model.backbone.stage_blocks = [2, 1, 1, 1]
  config.train.backbone_pretrained = os.path.join(GOLDEN, 'resnet_tiny.pth')
  trainer = train.Trainer(localizers.get(config), config, steps_per_epoch=1)
  state = trainer.init_state(jax.random.key(0))
  want = tv.load_resnet_checkpoint(config.train.backbone_pretrained,
                                   stage_blocks=(2, 1, 1, 1), width=8)
  jax.tree.map(np.testing.assert_array_equal, state.params['backbone'],
               want['params'])
  jax.tree.map(np.testing.assert_array_equal,
               state.model_state['batch_stats']['backbone'],
               want['batch_stats'])


def test_feature_width_must_match_the_backbone(cache):
  config = _config(cache)
  config.model.feat_dim = 2048
  with pytest.raises(errors.TalError, match='feat_dim=2048.*gives 256'):
    ssn_models.build(config)


def _copied(cache, dst):
  config = _config(cache)
  paths = thumos14.data_paths(config)
  shutil.copytree(paths['frame_dir'], dst / 'rawframes')
  config.data.frame_dir = str(dst / 'rawframes')
  for split in ('train', 'val', 'test'):
    setattr(config.data, f'ann_file_{split}', paths[f'ann_file_{split}'])
  return config


def test_missing_folder_or_frame_names_it(cache, tmp_path):
  config = _copied(cache, tmp_path)
  videos = pipeline.load_split(config, 'train')
  folder = os.path.join(config.data.frame_dir, videos.names[1])
  arrays = ssn.train_arrays(videos, config)
  split = arrays['ssn_split'][0]
  sample = ssn_targets.sample_split(
      split.videos, ssn.epoch_rng(config, 0), counts=(1, 6, 1), mode='train',
      pools=split.pools)
  name = f'img_{int(sample["frame_inds"][1].min()) + 1:05d}.jpg'
  os.remove(os.path.join(folder, name))
  with pytest.raises(errors.TalError, match=name):
    ssn.epoch_arrays(arrays, 0, config)
  shutil.rmtree(folder)
  with pytest.raises(errors.TalError,
                     match=f'video {videos.names[1]}: frame folder'):
    ssn.train_arrays(videos, config)


def test_imported_checkpoint_restores_bn_statistics(cache, tmp_path):
  # What tools/import_mmaction2 writes for an SSN frame-mode checkpoint:
  # params and BN statistics, no optimizer state.
  config = _config(cache)
  trainer = train.Trainer(localizers.get(config), config, steps_per_epoch=1)
  state = trainer.init_state(jax.random.key(1), pretrained=False)
  stats = jax.tree.map(lambda x: x + 0.5, state.model_state)
  checkpointing.save_params(str(tmp_path), state.params, config,
                            model_state=stats)
  variables, _ = infer.restore_variables(trainer.predictor, config, str(tmp_path))
  jax.tree.map(np.testing.assert_array_equal, variables,
               {'params': state.params, **stats})


def test_two_devices_equal_one(cache, tmp_path):
  """Frame mode data-parallel on 2 simulated devices (a subprocess: the
  device count is fixed when JAX starts) = 1 device: params and BN stats."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  config = _config(cache, num_epochs=1)
  thumos14.data_paths(config)  # generate the set before the subprocess
  out = {}
  for devices in (1, 2):
    workdir = str(tmp_path / f'dev{devices}')
    env = dict(os.environ, XLA_FLAGS=(
        os.environ.get('XLA_FLAGS', '') +
        f' --xla_force_host_platform_device_count={devices}'))
    subprocess.run(
        [sys.executable, '-m', 'tal_jax.main',
         '--config=configs/ssn.py:frames_tiny', f'--workdir={workdir}',
         f'--config.data.cache_dir={cache}', '--config.train.num_epochs=1'],
        cwd=ROOT, env=env, check=True, capture_output=True)
    trainer = train.Trainer(localizers.get(config), config, steps_per_epoch=1)
    out[devices], _ = infer.restore_variables(trainer.predictor, config, workdir)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6), out[2], out[1])
