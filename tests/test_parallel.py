"""Data-parallel training on 4 simulated devices equals 1 device; resume across
device counts (4 -> 1, 1 -> 4); start-up from the environment.

The 4-device runs happen in one subprocess (tests/_parallel_worker.py) with
XLA_FLAGS=--xla_force_host_platform_device_count=4, since the device count is
fixed when JAX starts; this process has 1 CPU device.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import tal_jax  # noqa: F401
import jax

from tal_jax import config_utils
from tal_jax import errors
from tal_jax.engine import parallel
from tal_jax.engine import loop
from tal_jax import localizers
from conftest import metrics_rows
from conftest import restore_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XLA_CACHE = os.path.join(tempfile.gettempdir(), 'tal_jax_test_xla')
# Params and Adam moments after a few steps: equal up to float32 reduction
# order (measured: params differ by at most 7.8e-7 after 4 steps).
RTOL, ATOL = 1e-5, 2e-6


def tiny_config(cache_dir, num_epochs):
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bmn.py:tiny'))
  config.data.cache_dir = str(cache_dir)
  config.train.num_epochs = num_epochs
  return config


def val_metrics(workdir):
  return {l['epoch']: l for l in metrics_rows(workdir) if l['split'] == 'val'}


def _state(restored):
  return restored['params'], restored['opt_state']


def assert_same_state(a, b):
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b) > 0
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=RTOL,
                               atol=ATOL)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """1-device runs here, 4-device runs in a subprocess, on the tiny config.

  one_1: 1 epoch, 1 device          four_1: 1 epoch, 4 devices
  one_2: 2 epochs, 1 device         four_1 -> 1: resumed to 2 epochs, 1 device
  one_1 -> 4: resumed to 2 epochs, 4 devices
  """
  base = tmp_path_factory.mktemp('parallel')
  cache = str(base / 'cache')
  d = {k: str(base / k) for k in ('one_1', 'one_2', 'four_1', 'one_to_four')}
  loop.train_and_evaluate(localizers.get(tiny_config(cache, 1)), tiny_config(cache, 1), d['one_1'], quiet=True)
  shutil.copytree(d['one_1'], d['one_to_four'])
  job = {'cache_dir': cache, 'out': str(base / 'report.json'),
         'xla_cache': XLA_CACHE,
         'runs': [{'workdir': d['four_1'], 'num_epochs': 1},
                  {'workdir': d['one_to_four'], 'num_epochs': 2}]}
  with open(base / 'job.json', 'w') as f:
    json.dump(job, f)
  env = {**os.environ,
         'XLA_FLAGS': '--xla_force_host_platform_device_count=4',
         'JAX_PLATFORMS': 'cpu',
         'PYTHONPATH': os.pathsep.join(
             [ROOT] + [p for p in [os.environ.get('PYTHONPATH')] if p])}
  r = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'tests', '_parallel_worker.py'),
       str(base / 'job.json')], cwd=ROOT, env=env, capture_output=True,
      text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  with open(job['out']) as f:
    report = json.load(f)
  # Resume the 4-device run on this process's single device.
  d['four_to_one'] = str(base / 'four_to_one')
  shutil.copytree(d['four_1'], d['four_to_one'])
  loop.train_and_evaluate(localizers.get(tiny_config(cache, 2)), tiny_config(cache, 2), d['four_to_one'], quiet=True)
  loop.train_and_evaluate(localizers.get(tiny_config(cache, 2)), tiny_config(cache, 2), d['one_2'], quiet=True)
  return d, report, tiny_config(cache, 2)


def test_subprocess_has_four_devices_and_keeps_user_xla_flags(runs):
  _, report, _ = runs
  assert report['device_count'] == 4
  flags = report['xla_flags'].split()
  assert '--xla_force_host_platform_device_count=4' in flags
  assert '--xla_cpu_experimental_ynn_fusion_type=' in flags
  # Global batch 8 over 4 devices: 2 rows each, in order; one process.
  assert report['rows'] == [[0, 2], [2, 4], [4, 6], [6, 8]]
  assert report['host_slice'] == [0, 8]


def test_indivisible_global_batch_is_a_clear_error(runs):
  _, report, _ = runs
  assert report['batch_error'] == (
      'config.train.batch_size=6 (the global batch) does not divide by the 4 '
      'devices of 1 process(es); use a multiple of 4')


def test_four_devices_equal_one_device(runs):
  d, report, config = runs
  step = 4  # 16 videos / global batch 4 = 4 steps in the epoch.
  assert_same_state(_state(restore_checkpoint(d['four_1'], config, step)),
                    _state(restore_checkpoint(d['one_1'], config, step)))
  # Data-parallel evaluation: the same proposals, so the same AR@AN.
  one = val_metrics(d['one_1'])[1]
  four = val_metrics(d['four_1'])[1]
  for k in ('AR@1', 'AR@5', 'AR@10', 'AR@100', 'AUC'):
    assert four[k] == pytest.approx(one[k], abs=1e-9), k
  assert report['metrics'][0]['AUC'] == pytest.approx(one['AUC'], abs=1e-9)


def test_saved_on_four_resumed_on_one_equals_uninterrupted(runs):
  d, _, config = runs
  assert_same_state(_state(restore_checkpoint(d['four_to_one'], config, 8)),
                    _state(restore_checkpoint(d['one_2'], config, 8)))
  assert val_metrics(d['four_to_one'])[2]['AUC'] == pytest.approx(
      val_metrics(d['one_2'])[2]['AUC'], abs=1e-9)


def test_saved_on_one_resumed_on_four_equals_uninterrupted(runs):
  d, report, config = runs
  assert_same_state(_state(restore_checkpoint(d['one_to_four'], config, 8)),
                    _state(restore_checkpoint(d['one_2'], config, 8)))
  assert report['metrics'][1]['AUC'] == pytest.approx(
      val_metrics(d['one_2'])[2]['AUC'], abs=1e-9)


def test_host_slice_on_one_device():
  mesh = parallel.make_mesh()
  assert parallel.host_slice(8, mesh) == slice(0, 8)
  assert parallel.check_global_batch(8, mesh) == 8


@pytest.mark.parametrize('environ, want', [
    ({}, None),
    ({'JAX_COORDINATOR_ADDRESS': '10.0.0.1:1234', 'JAX_NUM_PROCESSES': '2',
      'JAX_PROCESS_ID': '1'},
     {'coordinator_address': '10.0.0.1:1234', 'num_processes': 2,
      'process_id': 1}),
    ({'JAX_COORDINATOR_ADDRESS': '10.0.0.1:1234'},
     {'coordinator_address': '10.0.0.1:1234'}),
    ({'TAL_JAX_DISTRIBUTED': '1'}, {}),
    ({'SLURM_STEP_NUM_TASKS': '16', 'SLURM_JOB_ID': '7'},
     {'cluster_detection_method': 'slurm'}),
    ({'SLURM_STEP_NUM_TASKS': '1', 'SLURM_JOB_ID': '7'}, None),
    ({'SLURM_STEP_NUM_TASKS': '16', 'TAL_JAX_DISTRIBUTED': '0'}, None),
])
def test_distributed_args_from_environment(environ, want):
  assert parallel.distributed_args(environ) == want


def test_bad_process_id_is_a_clear_error():
  with pytest.raises(errors.TalError, match="JAX_PROCESS_ID='x'"):
    parallel.distributed_args({'JAX_COORDINATOR_ADDRESS': 'h:1',
                               'JAX_PROCESS_ID': 'x'})


def test_single_process_start_up_is_a_no_op():
  assert parallel.maybe_initialize_distributed({}) is False
  assert jax.process_count() == 1
