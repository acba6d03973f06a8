"""The one start-up line of every run: backend, devices, process, mesh, batch
and compute dtype.

The 4-device run happens in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=4 (the device count is fixed
when JAX starts; this process has one CPU device), as tests/test_parallel.py.
"""

import os
import subprocess
import sys

import tal_jax  # noqa: F401
import jax
import pytest

from tal_jax import config_utils
from tal_jax import localizers
from tal_jax.engine import parallel
from tal_jax.engine import predict
from tal_jax.engine import runlog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(spec, **overrides):
  config = config_utils.load_config(os.path.join(ROOT, 'configs', spec))
  for key, value in overrides.items():
    section, _, field = key.rpartition('.')
    setattr(config[section] if section else config, field, value)
  return config


def _fields(line):
  """'stage: k=v, k=v' -> (stage, {k: v})."""
  stage, _, rest = line.partition(': ')
  return stage, dict(f.split('=', 1) for f in rest.split(', '))


def _startup_lines(stdout):
  return [l for l in stdout.splitlines() if ': backend=' in l]


@pytest.fixture(scope='module')
def four_devices(tmp_path_factory):
  """TEM tiny (bfloat16) trained 1 epoch then tested on 4 CPU devices."""
  base = tmp_path_factory.mktemp('startup')
  env = {**os.environ,
         'XLA_FLAGS': '--xla_force_host_platform_device_count=4',
         'JAX_PLATFORMS': 'cpu'}
  common = [sys.executable, '-m', 'tal_jax.main',
            f'--config={ROOT}/configs/bsn_tem.py:tiny',
            f'--workdir={base / "work"}',
            f'--config.data.cache_dir={base / "cache"}',
            '--config.train.num_epochs=1', '--config.train.batch_size=8',
            '--config.test.batch_size=6', '--config.dtype=bfloat16']
  out = {}
  for mode in ('train', 'test'):
    r = subprocess.run(common + [f'--mode={mode}'], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out[mode] = r.stdout
  return out


@pytest.mark.parametrize('mode, batch, per_device', [
    ('train', '8', '2'),  # config.train.batch_size 8 over 4 devices
    ('test', '4', '1'),  # config.test.batch_size 6 -> 4, a multiple of 4
])
def test_one_line_with_every_field(four_devices, mode, batch, per_device):
  lines = _startup_lines(four_devices[mode])
  assert len(lines) == 1, four_devices[mode]
  assert four_devices[mode].splitlines()[0] == lines[0]
  stage, fields = _fields(lines[0])
  assert stage == mode
  assert fields == {'backend': 'cpu', 'devices': '4 x cpu', 'process': '0/1',
                    'mesh': 'data:4', 'global_batch': batch,
                    'per_device_batch': per_device, 'dtype': 'bfloat16'}


def test_quiet_run_prints_no_line(tmp_path, capsys):
  config = _config('bsn_tem.py:tiny', **{'data.cache_dir': str(tmp_path),
                                         'train.num_epochs': 1})
  from tal_jax.engine import loop  # pylint: disable=g-import-not-at-top
  loop.train_and_evaluate(localizers.get(config), config,
                          str(tmp_path / 'w'), quiet=True)
  assert not _startup_lines(capsys.readouterr().out)


def test_line_on_this_process():
  mesh = parallel.make_mesh()
  line = runlog.startup_line('train', mesh, 4, 4, 'float32')
  kind = jax.devices()[0].device_kind
  assert line == (f'train: backend={jax.default_backend()}, devices=1 x '
                  f'{kind}, process=0/1, mesh=data:1, global_batch=4, '
                  'per_device_batch=4, dtype=float32')


@pytest.mark.parametrize('spec, want', [
    ('bmn.py:tiny', 'bfloat16'),  # BMN and TEM compute in config.dtype
    ('bsn_tem.py:tiny', 'bfloat16'),
    ('bsn_pem.py:tiny', 'float32'),  # PEM and SSN always in float32
    ('ssn.py:tiny', 'float32'),
])
def test_compute_dtype_is_the_models(spec, want):
  config = _config(spec, dtype='bfloat16')
  module = localizers.get(config).build(config)
  assert runlog.compute_dtype(module) == want


def test_ssn_tests_one_video_at_a_time():
  config = _config('ssn.py:tiny')
  line = predict.test_startup_line(
      predict.Predictor(localizers.get(config), config))
  stage, fields = _fields(line)
  assert stage == 'test'
  assert (fields['global_batch'], fields['per_device_batch']) == ('1', '1')


def test_metric_lines_order_ar_by_number():
  """The printed metric line: AR@n by n (THUMOS14's AR@50 ... AR@1000 too),
  AUC, then the rest, '@' families by number."""
  from tal_jax.engine import runlog  # pylint: disable=g-import-not-at-top
  line = runlog.format_metrics({'mAP@0.70': 0.1, 'AR@1000': 0.5, 'AR@50': 0.2,
                                'AR@100': 0.3, 'mAP@0.30': 0.4, 'AUC': 61.2,
                                'average_mAP': 0.25})
  assert line == ('AR@50 0.2000  AR@100 0.3000  AR@1000 0.5000  AUC 61.2000  '
                  'average_mAP 0.2500  mAP@0.30 0.4000  mAP@0.70 0.1000')
