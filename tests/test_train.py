"""End-to-end training on the tiny config, resume, optimizer and loss grouping."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tal_jax  # noqa: F401
import jax
import jax.numpy as jnp
import optax

from tal_jax import config_utils
from tal_jax import errors
from tal_jax.engine import predict as infer
from tal_jax.engine import trainer as train
from tal_jax.ops import losses as ops_losses
from tal_jax.engine import loop
from tal_jax import localizers
from conftest import metrics_rows
from conftest import restore_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(cache_dir, **train_overrides):
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bmn.py:tiny'))
  config.data.cache_dir = str(cache_dir)
  for k, v in train_overrides.items():
    config.train[k] = v
  return config


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """Two tiny epochs in one go, shared by several tests."""
  base = tmp_path_factory.mktemp('run')
  config = tiny_config(base / 'cache')
  workdir = str(base / 'work')
  metrics = loop.train_and_evaluate(localizers.get(config), config, workdir, quiet=True)
  return config, workdir, metrics


def test_training_writes_metrics_and_checkpoints(trained):
  config, workdir, metrics = trained
  assert set(metrics) == {'AR@1', 'AR@5', 'AR@10', 'AR@100', 'AUC'}
  assert 0 < metrics['AUC'] < 100
  lines = metrics_rows(workdir)
  val = [l for l in lines if l['split'] == 'val']
  assert [l['epoch'] for l in val] == [1, 2]
  train_lines = [l for l in lines if l['split'] == 'train']
  assert all(np.isfinite(l['loss']) for l in train_lines)
  # lr steps x0.1 at epoch 1 (tiny preset milestones=(1,)): 4 steps per epoch.
  assert train_lines[0]['learning_rate'] == pytest.approx(1e-3)
  assert train_lines[-1]['learning_rate'] == pytest.approx(1e-4)
  steps = sorted(int(s) for s in os.listdir(os.path.join(workdir,
                                                         'checkpoints'))
                 if s.isdigit())
  assert steps[-1] == 8
  assert os.path.isdir(os.path.join(workdir, 'tensorboard'))


def test_test_mode_writes_results_and_metrics(trained):
  config, workdir, metrics = trained
  got = infer.run_test(localizers.get(config), config, workdir, quiet=True)
  results = json.load(open(os.path.join(workdir, 'results.json')))
  assert results['version'] == 'VERSION 1.3'
  assert len(results['results']) == config.data.synthetic_val
  first = next(iter(results['results'].values()))
  assert len(first) <= config.test.post_process_top_k
  assert set(first[0]) == {'score', 'segment'}
  saved = json.load(open(os.path.join(workdir, 'metrics.json')))
  assert saved == pytest.approx(got)
  # The best checkpoint by AUC is what test mode restores.
  best = max(l['AUC'] for l in metrics_rows(workdir) if l['split'] == 'val')
  assert got['AUC'] == pytest.approx(best, abs=1e-9)


def test_resume_equals_uninterrupted_run(trained, tmp_path):
  config, workdir, _ = trained
  cfg = tiny_config(config.data.cache_dir, num_epochs=1)
  half = str(tmp_path / 'half')
  loop.train_and_evaluate(localizers.get(cfg), cfg, half, quiet=True)
  cfg.train.num_epochs = 2
  loop.train_and_evaluate(localizers.get(cfg), cfg, half, quiet=True)
  a = restore_checkpoint(half, cfg)
  b = restore_checkpoint(workdir, cfg)
  for x, y in zip(jax.tree.leaves((a['params'], a['opt_state'])),
                  jax.tree.leaves((b['params'], b['opt_state']))):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_checkpoint_of_another_size_is_refused(trained):
  config, workdir, _ = trained
  other = tiny_config(config.data.cache_dir)
  other.model.hidden_dim_1d = 32
  with pytest.raises(errors.TalError, match='hidden_dim_1d'):
    restore_checkpoint(workdir, other)


def test_optimizer_matches_torch_adam_with_l2_and_clipping():
  """One step of the optax chain against torch.optim.Adam's formulas."""
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bmn.py'))
  config.train.grad_clip_norm = 1.0
  tx = train.create_optimizer(config, train.create_learning_rate_fn(config, 5))
  p = {'w': jnp.asarray([[1.0, -2.0], [0.5, 3.0]])}
  g = {'w': jnp.asarray([[3.0, -4.0], [0.0, 12.0]])}  # norm 13 -> clipped
  state = tx.init(p)
  new_p = p
  for _ in range(2):
    updates, state = tx.update(g, state, new_p)
    new_p = optax.apply_updates(new_p, updates)
  # torch: grad = clip(g) + wd * p; m, v with bias correction; eps outside sqrt.
  w = np.array([[1.0, -2.0], [0.5, 3.0]])
  m = v = np.zeros_like(w)
  gc = np.array([[3.0, -4.0], [0.0, 12.0]]) / 13.0
  for t in (1, 2):
    grad = gc + 1e-4 * w
    m = 0.9 * m + 0.1 * grad
    v = 0.999 * v + 0.001 * grad**2
    mhat, vhat = m / (1 - 0.9**t), v / (1 - 0.999**t)
    w = w - 1e-3 * mhat / (np.sqrt(vhat) + 1e-8)
  np.testing.assert_allclose(np.asarray(new_p['w']), w, rtol=1e-6)


def test_learning_rate_steps_at_milestones():
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bmn.py'))
  lr = train.create_learning_rate_fn(config, steps_per_epoch=10)
  assert float(lr(0)) == pytest.approx(1e-3)
  assert float(lr(69)) == pytest.approx(1e-3)
  assert float(lr(70)) == pytest.approx(1e-4)
  config.train.scale_lr = True
  config.train.batch_size = 32
  assert float(train.create_learning_rate_fn(config, 10)(0)) == pytest.approx(
      2e-3)


def test_grouped_loss_is_mean_of_group_losses():
  def loss_fn(x, key):
    return jnp.sum(x**2) / x.shape[0] + jax.random.uniform(key), {'n': x[0, 0]}

  x = jnp.arange(12.0).reshape(4, 3)
  rng = jax.random.key(3)
  got, _ = ops_losses.grouped_loss(loss_fn, (x,), rng, 2)
  keys = jax.random.split(rng, 2)
  want = (loss_fn(x[:2], keys[0])[0] + loss_fn(x[2:], keys[1])[0]) / 2
  np.testing.assert_allclose(float(got), float(want), rtol=1e-6)


def test_batch_not_multiple_of_loss_group_is_refused(tmp_path):
  config = tiny_config(tmp_path, batch_size=3)
  with pytest.raises(errors.TalError, match='videos_per_loss'):
    train.Trainer(localizers.get(config), config, 1)


def _main(*args):
  return subprocess.run([sys.executable, '-m', 'tal_jax.main', *args],
                        cwd=ROOT, capture_output=True, text=True)


def test_cli_unknown_config_key_names_nearest():
  r = _main('--config=configs/bmn.py:tiny', '--config.train.bach_size=4')
  assert r.returncode == 2
  assert r.stderr.strip().splitlines()[-1] == (
      "error: unknown config key 'config.train.bach_size'; did you mean "
      'train.batch_size, train.base_batch_size, test.batch_size?')


def test_cli_unwritable_workdir(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('x')
  r = _main('--config=configs/bmn.py:tiny', f'--workdir={blocker}/sub')
  assert r.returncode == 2
  assert 'cannot be created' in r.stderr
  assert 'Traceback' not in r.stderr


def test_checkpoint_every_epochs(tmp_path, monkeypatch):
  saved = []
  real_save = loop.checkpointing.save

  def spy(mngr, step, *args):
    saved.append(step)
    return real_save(mngr, step, *args)

  monkeypatch.setattr(loop.checkpointing, 'save', spy)
  config = tiny_config(tmp_path / 'cache', num_epochs=5, eval_every_epochs=4,
                       checkpoint_every_epochs=3)
  loop.train_and_evaluate(localizers.get(config), config, str(tmp_path / 'w'), quiet=True)
  # 4 steps per epoch: epoch 3 (every 3), epoch 4 (evaluated), epoch 5 (last).
  assert saved == [12, 16, 20]


def test_train_step_compiles_once(tmp_path):
  """The initial step counter carries train_step's output sharding: a fresh
  state and the states it returns hit the same compiled step."""
  from tal_jax.engine import parallel  # pylint: disable=g-import-not-at-top
  config = tiny_config(tmp_path)
  m = config.model
  rng = np.random.default_rng(0)
  n, bs = 8, config.train.batch_size
  arrays = {
      'inputs': rng.random((n, m.temporal_dim, m.feat_dim), np.float32),
      'iou_map': rng.random((n, m.temporal_dim, m.temporal_dim), np.float32),
      'start': rng.random((n, m.temporal_dim), np.float32),
      'end': rng.random((n, m.temporal_dim), np.float32)}
  trainer = train.Trainer(localizers.get(config), config, steps_per_epoch=2)
  state = trainer.init_state(jax.random.key(0))
  device_arrays = trainer.put_arrays(arrays)
  for _ in range(3):
    idx = parallel.shard_batch({'idx': np.arange(bs, dtype=np.int32)},
                               trainer.mesh, bs)['idx']
    state, _ = trainer.train_step(state, device_arrays, idx,
                                  jax.random.key(1))
  assert trainer.train_step._cache_size() == 1  # pylint: disable=protected-access
