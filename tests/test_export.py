"""tools/export: a jax.export model folder loaded with only jax and numpy."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tal_jax  # noqa: F401
import jax

from tal_jax.engine import checkpointing
from tal_jax import config_utils
from tal_jax import errors
from tal_jax.engine import trainer as train
from tal_jax.engine import serving as export
from tal_jax.tools import export as export_tool
from tal_jax import localizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(cache_dir):
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bmn.py:tiny'))
  config.data.cache_dir = str(cache_dir)
  return config


def make_workdir(path, config, seed=0):
  """A workdir with an imported-style checkpoint of init params + config.json."""
  trainer = train.Trainer(localizers.get(config), config, 1)
  params = trainer.init_state(jax.random.key(seed)).params
  checkpointing.save_params(str(path), params, config)
  config_utils.save_config(config, str(path))
  return trainer, params


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  base = tmp_path_factory.mktemp('export')
  config = tiny_config(base / 'cache')
  trainer, params = make_workdir(base / 'work', config)
  out = str(base / 'model')
  export_tool.main(['--workdir', str(base / 'work'), '--out', out])
  return config, trainer, params, out, base


def test_metadata(exported):
  config, _, params, out, _ = exported
  assert sorted(os.listdir(out)) == ['load_model.py', 'metadata.json',
                                     'model.jax', 'params.npz']
  with open(os.path.join(out, 'metadata.json')) as f:
    meta = json.load(f)
  assert meta['model_name'] == 'bmn'
  assert (meta['temporal_dim'], meta['feat_dim']) == (16, 400)
  assert meta['input'] == {'name': 'features', 'shape': ['batch', 16, 400],
                           'dtype': 'float32'}
  assert [o['name'] for o in meta['outputs']] == ['confidence_map', 'start',
                                                  'end']
  assert meta['outputs'][0]['shape'] == ['batch', 16, 16, 2]
  assert meta['platforms'] == ['cpu', 'cuda']
  with np.load(os.path.join(out, 'params.npz')) as z:
    assert sorted(z.files) == sorted(meta['param_names'])
    np.testing.assert_array_equal(z['x_1d_b_0/kernel'],
                                  np.asarray(params['x_1d_b_0']['kernel']))


_SCRIPT = r'''
import importlib.util, sys
model_dir, x_path, out_path = sys.argv[1:4]
assert importlib.util.find_spec('tal_jax') is None, 'tal_jax importable'
sys.path.insert(0, model_dir)
import load_model
model = load_model.load()
x = __import__('numpy').load(x_path)
one = model(x[:1])
three = model(x)
try:
  model(x[:, :5])
  raise SystemExit('bad shape accepted')
except ValueError as e:
  print(e)
__import__('numpy').savez(out_path, **{'one_' + k: v for k, v in one.items()},
                          **three)
'''


def test_loads_in_fresh_python_without_tal_jax(exported):
  config, trainer, params, out, base = exported
  x = np.random.default_rng(0).normal(size=(3, 16, 400)).astype(np.float32)
  np.save(base / 'x.npy', x)
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  res = subprocess.run(
      [sys.executable, '-I', '-c', _SCRIPT, out, str(base / 'x.npy'),
       str(base / 'y.npz')], capture_output=True, text=True, cwd=str(base),
      env=env, check=False)
  assert res.returncode == 0, res.stderr
  assert 'features must be [B, 16, 400], got (3, 5, 400)' in res.stdout
  want = jax.device_get(trainer.module.apply({'params': params}, x))
  with np.load(base / 'y.npz') as got:
    for name, w in zip(('confidence_map', 'start', 'end'), want):
      np.testing.assert_allclose(got[name], w, rtol=1e-6, atol=1e-7)
      np.testing.assert_allclose(got['one_' + name], w[:1], rtol=1e-6,
                                 atol=1e-7)


def test_loader_smoke_main(exported):
  _, _, _, out, _ = exported
  res = subprocess.run([sys.executable, '-I',
                        os.path.join(out, 'load_model.py')],
                       capture_output=True, text=True, check=False)
  assert res.returncode == 0, res.stderr
  assert res.stdout.splitlines()[0] == 'confidence_map (2, 16, 16, 2) float32'


class _Serialized:

  def serialize(self):
    return b'stablehlo'


def test_failed_write_leaves_no_folder(exported, monkeypatch):
  """A failure mid-write (disk full at params.npz) leaves nothing behind and
  an existing model folder untouched."""
  _, _, _, out, base = exported

  def boom(*a, **k):
    raise OSError(28, 'No space left on device')

  monkeypatch.setattr(np, 'savez', boom)
  target = str(base / 'model2')
  with pytest.raises(errors.TalError, match='model2: cannot write'):
    export.write_model_dir(target, _Serialized(), [], [], {})
  assert not [p for p in os.listdir(base) if p.startswith('model2')]
  before = sorted(os.listdir(out))
  with pytest.raises(errors.TalError, match='cannot write'):
    export.write_model_dir(out, _Serialized(), [], [], {})
  assert sorted(os.listdir(out)) == before


def test_model_without_serving_entry_is_refused():
  config = config_utils.load_config(os.path.join(ROOT, 'configs/ssn.py:tiny'))
  bare = dataclasses.replace(localizers.get(config), serving=None)
  with pytest.raises(errors.TalError,
                     match=r"model 'ssn' cannot be exported or served yet "
                     r"\(supported: \['bmn', 'bsn_pem', 'bsn_tem', 'ssn'\]\)"):
    export_tool.serving_of(config, bare)


def test_workdir_without_config_needs_config_flag(tmp_path):
  with pytest.raises(errors.TalError, match='no config.json; pass --config'):
    export_tool.main(['--workdir', str(tmp_path), '--out',
                      str(tmp_path / 'm')])
