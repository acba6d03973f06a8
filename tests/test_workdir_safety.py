"""Workdir safety (issue 14): the workdir lock, damaged checkpoints and the
fallback to an intact step, import into a non-empty workdir, metrics.jsonl
continuing from the restored step."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import tal_jax  # noqa: F401
import jax

from tal_jax.engine import checkpointing
from tal_jax import config_utils
from tal_jax import errors
from tal_jax.engine import metric_writer
from tal_jax.engine import workdir_lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARAMS = {'w': np.arange(6, dtype=np.float32).reshape(2, 3),
          'b': np.ones(3, np.float32)}


def _config():
  return config_utils.load_config(os.path.join(ROOT, 'configs/bmn.py:tiny'))


def _sharding():
  return jax.sharding.SingleDeviceSharding(jax.devices()[0])


def _save_steps(workdir, steps):
  """Checkpoints at `steps` whose params are PARAMS * step."""
  config = _config()
  mngr = checkpointing.manager(str(workdir))
  for s in steps:
    p = {k: v * s for k, v in PARAMS.items()}
    meta = {**checkpointing.model_meta(config), 'epoch': s // 4}
    checkpointing.save(mngr, s, p, p, meta, {'AUC': 100.0 - s})  # 4 is best
  mngr.close()
  return config


def _truncate_data(step_dir):
  """Halves every data file of the params item (a copy cut short)."""
  data = os.path.join(step_dir, 'params', 'd')
  for name in os.listdir(data):
    path = os.path.join(data, name)
    with open(path, 'rb') as f:
      blob = f.read()
    with open(path, 'wb') as f:
      f.write(blob[:len(blob) // 2])
  return os.path.join('params', 'd', sorted(os.listdir(data))[0])


# --- the lock ---------------------------------------------------------------

def _dead_pid():
  proc = subprocess.Popen([sys.executable, '-c', 'pass'])
  proc.wait()
  return proc.pid


def test_lock_refuses_a_live_holder(tmp_path):
  path = workdir_lock.acquire(str(tmp_path))
  with open(path) as f:
    holder = json.load(f)
  assert holder['pid'] == os.getpid()
  assert holder['host'] == socket.gethostname()
  with pytest.raises(errors.TalError, match=(
      rf'^{tmp_path} is in use by pid {os.getpid()} on '
      rf'{socket.gethostname()} \(since .*\); wait for it to end, or delete '
      rf'{path} if that process is gone$')):
    workdir_lock.acquire(str(tmp_path))
  workdir_lock.release(path)
  assert not os.path.exists(path)


def test_lock_of_a_dead_pid_is_taken_over(tmp_path):
  dead = _dead_pid()
  path = tmp_path / workdir_lock.LOCK_NAME
  path.write_text(json.dumps({'pid': dead, 'host': socket.gethostname()}))
  said = []
  with workdir_lock.hold(str(tmp_path), say=said.append):
    assert json.loads(path.read_text())['pid'] == os.getpid()
  assert said == [f'taking over the stale lock {path} (pid {dead}, no longer '
                  'running)']
  assert not path.exists()


def test_lock_of_another_host_or_garbled():
  assert not workdir_lock.is_stale({'pid': _dead_pid(), 'host': 'elsewhere'},
                                   socket.gethostname())
  assert workdir_lock.is_stale(None, socket.gethostname())


def test_lock_released_on_error(tmp_path):
  with pytest.raises(RuntimeError):
    with workdir_lock.hold(str(tmp_path)):
      raise RuntimeError('boom')
  assert os.listdir(tmp_path) == []


# --- metrics.jsonl on resume ------------------------------------------------

def test_truncate_after_drops_later_and_cut_rows(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  rows = [{'step': 4, 'loss': 1.0}, {'step': 8, 'AUC': 2.0},
          {'step': 9, 'loss': 3.0}, {'step': 12, 'loss': 4.0}]
  path.write_text(''.join(json.dumps(r) + '\n' for r in rows) + '{"step": 1')
  assert metric_writer.truncate_after(str(path), 8) == 3
  assert [json.loads(l) for l in path.read_text().splitlines()] == rows[:2]
  assert metric_writer.truncate_after(str(path), 8) == 0


def test_writer_continues_from_start_step(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  path.write_text('{"step": 4, "loss": 1.0}\n{"step": 5, "loss": 2.0}\n')
  writer = metric_writer.MetricWriter(str(tmp_path), enabled=True,
                                      start_step=4)
  writer.write(5, {'loss': 7.0}, split='train')
  writer.close()
  assert [json.loads(l) for l in path.read_text().splitlines()] == [
      {'step': 4, 'loss': 1.0}, {'step': 5, 'split': 'train', 'loss': 7.0}]


# --- damaged checkpoints ----------------------------------------------------

def test_step_problem_names_what_is_wrong(tmp_path):
  _save_steps(tmp_path, [4, 8])
  ckpts = tmp_path / 'checkpoints'
  assert checkpointing.step_problem(str(ckpts / '4')) is None
  assert checkpointing.step_problem(str(ckpts / '8')) is None
  rel = _truncate_data(str(ckpts / '8'))
  assert checkpointing.step_problem(str(ckpts / '8')).startswith(
      f'{rel} has ')
  assert checkpointing.step_problem(str(ckpts / '8')).endswith(
      'were saved (truncated?)')
  os.remove(ckpts / '4' / 'meta' / 'metadata')
  assert checkpointing.step_problem(str(ckpts / '4')) == (
      'meta/metadata is missing')
  os.makedirs(ckpts / '12')
  assert checkpointing.step_problem(str(ckpts / '12')) == 'empty step folder'
  # A checkpoint saved without the recorded sizes: the metadata checks.
  os.remove(ckpts / '8' / checkpointing.SIZES_NAME)
  (ckpts / '8' / '_CHECKPOINT_METADATA').write_text('{"ti')
  assert checkpointing.step_problem(str(ckpts / '8')) == (
      '_CHECKPOINT_METADATA is truncated or not JSON')


def test_training_falls_back_to_newest_intact_step(tmp_path):
  config = _save_steps(tmp_path, [4, 8])
  ckpts = tmp_path / 'checkpoints'
  rel = _truncate_data(str(ckpts / '8'))
  os.makedirs(ckpts / '12')
  said = []
  mngr = checkpointing.manager(str(tmp_path))
  out = checkpointing.restore_for_training(mngr, PARAMS, PARAMS, _sharding(),
                                           config, say=said.append)
  assert out['step'] == 4
  np.testing.assert_array_equal(out['params']['w'], PARAMS['w'] * 4)
  assert said[0] == (f'{ckpts}/12: damaged checkpoint (empty step folder); '
                     f'moved to {ckpts}/12.damaged')
  assert said[1].startswith(f'{ckpts}/8: damaged checkpoint ({rel} has ')
  assert said[1].endswith(f'; moved to {ckpts}/8.damaged')
  assert said[2] == 'resuming from step 4, the newest intact checkpoint'
  assert mngr.all_steps() == [4]
  # The next save at step 8 does not collide with the damaged folder.
  meta = {**checkpointing.model_meta(config), 'epoch': 2}
  checkpointing.save(mngr, 8, PARAMS, PARAMS, meta, {'AUC': 1.0})
  mngr.close()
  assert sorted(os.listdir(ckpts)) == ['12.damaged', '4', '8', '8.damaged']


def test_training_with_no_intact_step_is_one_line(tmp_path):
  config = _save_steps(tmp_path, [4])
  os.remove(tmp_path / 'checkpoints' / '4' / 'params' / '_METADATA')
  mngr = checkpointing.manager(str(tmp_path))
  with pytest.raises(errors.TalError, match=(
      rf'^{tmp_path}/checkpoints/4: damaged checkpoint \(params/_METADATA is '
      rf'missing\); no intact checkpoint in {tmp_path}/checkpoints to resume '
      r'from \(move that folder away to train from scratch\)$')):
    checkpointing.restore_for_training(mngr, PARAMS, PARAMS, _sharding(),
                                       config)
  mngr.close()


def test_truncated_checkpoint_without_sizes_is_one_line(tmp_path, capsys):
  """Checkpoints saved before the sizes were recorded: Orbax's read fails;
  one line, and none of TensorStore's late 'Event loop is closed' noise."""
  config = _save_steps(tmp_path, [4, 8])
  ckpts = tmp_path / 'checkpoints'
  os.remove(ckpts / '8' / checkpointing.SIZES_NAME)
  _truncate_data(str(ckpts / '8'))
  with pytest.raises(errors.TalError, match=(
      rf'^{ckpts}/8: damaged checkpoint \(cannot be read: .*\); intact '
      rf'steps: 4 \(use {ckpts}/4 as the checkpoint\)$')):
    checkpointing.restore_for_inference(str(tmp_path), 8, PARAMS, _sharding(),
                                        config)
  import gc  # pylint: disable=g-import-not-at-top
  gc.collect()
  assert 'Event loop is closed' not in capsys.readouterr().err


def test_truncated_orbax_metadata_is_one_line_without_orbax_logs(tmp_path,
                                                                  caplog):
  """Orbax logs its own ERROR line for unparsable metadata before failing;
  the CLIs' quiet_libraries keeps stderr to tal_jax's one line."""
  from tal_jax.engine import runlog  # pylint: disable=g-import-not-at-top
  runlog.quiet_libraries()
  config = _save_steps(tmp_path, [4])
  meta = tmp_path / 'checkpoints' / '4' / '_CHECKPOINT_METADATA'
  meta.write_bytes(meta.read_bytes()[:10])
  with pytest.raises(errors.TalError, match=(
      r'/checkpoints/4: damaged checkpoint \(_CHECKPOINT_METADATA has 10 '
      r'bytes, \d+ were saved \(truncated\?\)\); no intact checkpoint')):
    checkpointing.restore_for_inference(str(tmp_path), None, PARAMS,
                                        _sharding(), config)
  assert not [r for r in caplog.records if '/orbax/' in r.pathname], (
      caplog.text)


def test_inference_lists_intact_steps(tmp_path):
  config = _save_steps(tmp_path, [4, 8])
  ckpts = tmp_path / 'checkpoints'
  os.remove(ckpts / '4' / 'meta' / 'metadata')  # the best step
  with pytest.raises(errors.TalError, match=(
      rf'^{ckpts}/4: damaged checkpoint \(meta/metadata is missing\); intact '
      rf'steps: 8 \(use {ckpts}/8 as the checkpoint\)$')):
    checkpointing.restore_for_inference(str(tmp_path), None, PARAMS,
                                        _sharding(), config)
  out, where = checkpointing.restore_for_inference(
      str(tmp_path), 8, PARAMS, _sharding(), config)
  assert where == f'{ckpts}/8'
  np.testing.assert_array_equal(out['params']['b'], PARAMS['b'] * 8)
  with pytest.raises(errors.TalError, match=(
      rf'^{tmp_path}: no checkpoint at step 5; intact steps: 8 ')):
    checkpointing.restore_for_inference(str(tmp_path), 5, PARAMS,
                                        _sharding(), config)


# --- import into a workdir with checkpoints ---------------------------------

def test_import_refuses_then_force_moves_checkpoints_aside(tmp_path):
  config = _save_steps(tmp_path, [4, 8])
  with pytest.raises(errors.TalError, match=(
      rf'^{tmp_path} already holds checkpoints \(steps 4, 8\) that test, '
      r'infer, export and resume would keep restoring instead of the import; '
      r'use another workdir, or --force to move them to '
      r'checkpoints.before-import$')):
    checkpointing.clear_for_import(str(tmp_path), force=False)
  moved = checkpointing.clear_for_import(str(tmp_path), force=True)
  assert moved == f'{tmp_path}/checkpoints.before-import'
  checkpointing.save_params(str(tmp_path), PARAMS, config)
  # The import is what inference restores now (it was step 8 before).
  out, where = checkpointing.restore_for_inference(
      str(tmp_path), None, PARAMS, _sharding(), config)
  assert where == f'{tmp_path}/checkpoints/0'
  np.testing.assert_array_equal(out['params']['w'], PARAMS['w'])
  assert sorted(os.listdir(moved)) == ['4', '8']
  # A second forced import keeps the first set aside too.
  assert checkpointing.clear_for_import(str(tmp_path), force=True) == (
      f'{tmp_path}/checkpoints.before-import.2')
  assert checkpointing.clear_for_import(str(tmp_path / 'new'), False) is None


def test_disk_full_inside_orbax_names_the_step(tmp_path, monkeypatch):
  """TensorStore reports ENOSPC as a ValueError: it becomes an OSError naming
  the step folder (one line from run_cli, exit 1)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  def full(*args, **kwargs):
    raise ValueError('UNKNOWN: Error writing local file "x/d/1": '
                     'No space left on device [OS error: 28]')

  config = _config()
  mngr = checkpointing.manager(str(tmp_path))
  monkeypatch.setattr(ocp.CheckpointManager, 'save', full)
  meta = {**checkpointing.model_meta(config), 'epoch': 1}
  with pytest.raises(OSError) as e:
    checkpointing.save(mngr, 4, PARAMS, PARAMS, meta, {'AUC': 1.0})
  assert (e.value.errno, e.value.filename) == (28, f'{tmp_path}/checkpoints/4')
  assert errors.failure(e.value) == (
      f'{tmp_path}/checkpoints/4: No space left on device', 1)
  mngr.close()


def test_flipped_byte_is_caught_by_the_checksum(tmp_path):
  """Same size, one byte altered: Orbax would read other numbers."""
  _save_steps(tmp_path, [4])
  step = tmp_path / 'checkpoints' / '4'
  data = step / 'params' / 'd'
  path = data / sorted(os.listdir(data))[0]
  blob = bytearray(path.read_bytes())
  blob[len(blob) // 2] ^= 1
  path.write_bytes(bytes(blob))
  assert checkpointing.step_problem(str(step)) == (
      f'params/d/{path.name} differs from what was saved (checksum)')


def _events(path):
  """(step, session_log status, scalar tags) of a TFRecord event file."""
  import struct  # pylint: disable=g-import-not-at-top
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  out = []
  with open(path, 'rb') as f:
    while header := f.read(12):
      (length,) = struct.unpack('<Q', header[:8])
      event = event_pb2.Event.FromString(f.read(length))
      f.read(4)
      out.append((event.step, event.session_log.status,
                  [v.tag for v in event.summary.value]))
  return out


def test_tensorboard_purges_events_after_the_restored_step(tmp_path):
  """TensorBoard hides the earlier events at steps >= a SessionLog START's
  step: the resumed writer starts one at the restored step + 1."""
  pytest.importorskip('tensorboardX')
  writer = metric_writer.MetricWriter(str(tmp_path), enabled=True,
                                      start_step=8)
  writer.write(9, {'loss': 1.0})
  writer.close()
  [path] = [os.path.join(tmp_path, 'tensorboard', f)
            for f in os.listdir(tmp_path / 'tensorboard')]
  events = _events(path)
  start = 1  # SessionLog.START
  assert (9, start, []) in events
  assert events[-1] == (9, 0, ['loss'])
