"""Faults: SIGKILL mid-training then resume, NaN losses, atomic writes."""

import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import tal_jax  # noqa: F401
import orbax.checkpoint as ocp

from tal_jax.engine import checkpointing
from tal_jax import config_utils
from tal_jax import errors
from tal_jax import results_io
from tal_jax.engine import runlog
from tal_jax.engine import loop
from tal_jax import localizers

from conftest import metrics_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 3  # tiny preset: 16 videos, batch 4 -> 4 steps per epoch


def _cmd(workdir, cache_dir):
  return [sys.executable, '-m', 'tal_jax.main', '--config=configs/bmn.py:tiny',
          f'--workdir={workdir}', f'--config.data.cache_dir={cache_dir}',
          f'--config.train.num_epochs={EPOCHS}',
          '--config.train.log_every_steps=1']


def _restore_raw(workdir, step):
  """{'params', 'opt_state'} of a checkpoint as saved (no target needed)."""
  mngr = checkpointing.manager(workdir, read_only=True)
  out = mngr.restore(step, args=ocp.args.Composite(
      params=ocp.args.StandardRestore(), opt_state=ocp.args.StandardRestore()))
  mngr.close()
  return {'params': out['params'], 'opt_state': out['opt_state']}


def _leaves(tree):
  import jax  # pylint: disable=g-import-not-at-top
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.fixture(scope='module')
def baseline(tmp_path_factory):
  """An uninterrupted run, in a subprocess (stderr is not a terminal)."""
  base = tmp_path_factory.mktemp('faults')
  cache = base / 'cache'
  res = subprocess.run(_cmd(base / 'base', cache), cwd=ROOT,
                       capture_output=True, text=True, check=False)
  assert res.returncode == 0, res.stderr
  return base, cache, res


def test_no_progress_bars_when_not_a_terminal(baseline):
  _, _, res = baseline
  assert '%|' not in res.stderr and 'it/s' not in res.stderr
  assert 'epoch 3: AR@1' in res.stdout


def test_progress_quiet_flag_and_tty(monkeypatch):
  class Tty:
    def isatty(self):
      return True

  monkeypatch.setattr(sys, 'stderr', Tty())
  assert runlog.show_progress(quiet=False)
  assert not runlog.show_progress(quiet=True)
  monkeypatch.setattr(Tty, 'isatty', lambda self: False)
  assert not runlog.show_progress(quiet=False)


def _wait_and_kill(proc, workdir, kill_step, timeout=240):
  """SIGKILLs `proc` once metrics.jsonl shows a train step >= kill_step."""
  path = os.path.join(workdir, 'metrics.jsonl')
  deadline = time.time() + timeout
  while time.time() < deadline and proc.poll() is None:
    if os.path.exists(path):
      with open(path) as f:
        steps = [json.loads(l)['step'] for l in f if '"train"' in l]
      if steps and max(steps) >= kill_step:
        proc.send_signal(signal.SIGKILL)
        break
    time.sleep(0.005)
  proc.wait(timeout=60)
  return proc.returncode


def test_sigkill_then_rerun_equals_uninterrupted_run(baseline):
  base, cache, _ = baseline
  workdir = base / 'killed'
  kill_step = random.randint(5, 4 * EPOCHS - 1)  # epoch 2 or later, mid-run
  print(f'killing after step {kill_step}')
  proc = subprocess.Popen(_cmd(workdir, cache), cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  assert _wait_and_kill(proc, str(workdir), kill_step) == -signal.SIGKILL
  res = subprocess.run(_cmd(workdir, cache), cwd=ROOT, capture_output=True,
                       text=True, check=False)
  assert res.returncode == 0, res.stderr
  assert 'resumed from' in res.stdout
  final = 4 * EPOCHS
  got = _restore_raw(str(workdir), final)
  want = _restore_raw(str(base / 'base'), final)
  for x, y in zip(_leaves(got), _leaves(want), strict=True):
    np.testing.assert_array_equal(x, y)
  # The rows the killed run logged after its last checkpoint were dropped
  # before the resumed run logged them again (issue 14).
  assert metrics_rows(workdir) == metrics_rows(base / 'base')
  assert sorted(os.listdir(workdir)) == ['checkpoints', 'config.json',
                                         'metrics.jsonl', 'tensorboard']


def _poisoned_model_def(model_def):
  """The model's table row with huge (finite) features: the loss overflows."""
  field = ('train_arrays' if hasattr(model_def, 'train_arrays')
           else 'split_arrays')
  original = getattr(model_def, field)

  def poisoned(videos, config):
    arrays = dict(original(videos, config))
    key = 'inputs' if 'inputs' in arrays else 'features'
    arrays[key] = np.full_like(arrays[key], 3e38)
    return arrays

  return dataclasses.replace(model_def, **{field: poisoned})


def test_nan_loss_stops_and_keeps_last_checkpoint(baseline, tmp_path):
  base, cache, _ = baseline
  workdir = str(tmp_path / 'nan')
  shutil.copytree(base / 'base', workdir)
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bmn.py:tiny'))
  config.data.cache_dir = str(cache)
  config.train.num_epochs = EPOCHS + 1
  config.train.log_every_steps = 1
  poisoned = _poisoned_model_def(localizers.get(config))
  last = 4 * EPOCHS
  with pytest.raises(errors.TalError,
                     match=rf'^loss is nan at step {last + 1}: training '
                     'stopped; the last checkpoint in the workdir is intact$'):
    loop.train_and_evaluate(poisoned, config, workdir, quiet=True)
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  assert max(int(s) for s in os.listdir(ckpt_dir) if s.isdigit()) == last
  assert not [s for s in os.listdir(ckpt_dir) if not s.isdigit()]
  got = _leaves(_restore_raw(workdir, last))
  want = _leaves(_restore_raw(str(base / 'base'), last))
  for x, y in zip(got, want, strict=True):
    assert np.all(np.isfinite(x))
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize('metrics', [
    {'loss': float('nan'), 'grad_norm': 1.0},
    {'loss': 1.0, 'grad_norm': float('inf')},
])
def test_check_finite_names_the_step(metrics):
  """A finite loss with an infinite gradient would make the next parameters
  NaN; both stop training."""
  key = 'loss' if not np.isfinite(metrics['loss']) else 'grad_norm'
  with pytest.raises(errors.TalError, match=f'^{key} is (nan|inf) at step 7'):
    loop._check_finite(metrics, 7)  # pylint: disable=protected-access
  loop._check_finite({'loss': 1.0, 'grad_norm': 2.0}, 7)  # pylint: disable=protected-access


def _broken_dump(obj, f, **kw):
  del obj, kw
  f.write('{"partial": ')
  raise OSError(28, 'No space left on device')


@pytest.mark.parametrize('write', [
    lambda p: errors.write_json(p, {'AUC': 1.0}),
    lambda p: results_io.write_results(p, {'a': []}),
])
def test_failed_json_write_keeps_old_file(tmp_path, monkeypatch, write):
  """results.json / metrics.json: a failure mid-write leaves the old content
  and no temporary file."""
  path = tmp_path / 'metrics.json'
  path.write_text('{"old": 1}')
  monkeypatch.setattr(json, 'dump', _broken_dump)
  with pytest.raises(OSError):
    write(str(path))
  assert path.read_text() == '{"old": 1}'
  assert os.listdir(tmp_path) == ['metrics.json']


def test_failed_text_write_leaves_no_file(tmp_path, monkeypatch):
  """Converted files (proposal lists, CSVs) go through errors.write_text."""
  path = tmp_path / 'formatted_proposals.txt'

  class Boom:
    def __init__(self, *a, **k):
      pass

    def __enter__(self):
      return self

    def __exit__(self, *a):
      return False

    def write(self, text):
      raise OSError(28, 'No space left on device')

  monkeypatch.setattr('builtins.open', Boom)
  with pytest.raises(OSError):
    results_io.write_proposal_list(str(path), ['#0\nv\n'])
  monkeypatch.undo()
  assert os.listdir(tmp_path) == []
