"""tools/export for BSN TEM, BSN PEM and SSN (feature mode): each model
folder, loaded in a fresh Python with only jax and numpy, gives the outputs of
tal_jax's own forward on the same inputs (BMN: tests/test_export.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tal_jax  # noqa: F401
import jax

from tal_jax import config_utils
from tal_jax import errors
from tal_jax import localizers
from tal_jax.engine import checkpointing
from tal_jax.engine import predict
from tal_jax.localizers.ssn import model as ssn_models
from tal_jax.tools import export as export_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECS = {'bsn_tem': 'bsn_tem.py:tiny', 'bsn_pem': 'bsn_pem.py:tiny',
         'ssn': 'ssn.py:tiny'}


def _config(spec):
  return config_utils.load_config(os.path.join(ROOT, 'configs', spec))


def _inputs(name, config, rng):
  """Two input sets per model (the named dimensions take two sizes)."""
  m = config.model
  if name == 'bsn_tem':
    return [{'features': rng.normal(size=(b, m.temporal_dim, m.feat_dim))
             .astype(np.float32)} for b in (3, 1)]
  if name == 'bsn_pem':
    return [{'bsp_features': rng.random((b, n, m.feat_dim))
             .astype(np.float32)} for b, n in ((2, 7), (1, 130))]
  sets = []
  for t, p in ((37, 9), (5, 3)):
    ticks = np.sort(rng.integers(-1, t + 2, (p, 4)), axis=1).astype(np.int32)
    sets.append({'tick_features': rng.normal(size=(t, m.feat_dim))
                 .astype(np.float32), 'proposal_ticks': ticks,
                 'scale_factors': rng.uniform(0.5, 1.5, (p, 2))
                 .astype(np.float32)})
  return sets


def _in_process(name, config, module, params, x):
  """tal_jax's forward: {output name: array}."""
  if name == 'bsn_tem':
    return {'tem_output': module.apply({'params': params}, x['features'])}
  if name == 'bsn_pem':
    return {'iou_score': module.apply({'params': params},
                                      x['bsp_features'])}
  m = config.model
  out = ssn_models.ssn_test_forward(
      params['head'], x['tick_features'], x['proposal_ticks'],
      x['scale_factors'], m.num_classes, ssn_models.stage(config),
      m.use_regression)
  return dict(zip(('activity', 'completeness', 'bbox_preds'), out))


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  """{name: (config, module, params, model folder, input sets)}."""
  base = tmp_path_factory.mktemp('export_all')
  rng = np.random.default_rng(0)
  out = {}
  for i, (name, spec) in enumerate(SPECS.items()):
    config = _config(spec)
    predictor = predict.Predictor(localizers.get(config), config)
    # Non-zero biases: init leaves them at 0 or tiny.
    params = jax.tree.map(
        lambda x: x + 0.05 * np.asarray(rng.normal(size=x.shape), x.dtype),
        predictor.init_variables(jax.random.key(i))['params'])
    work = str(base / name)
    checkpointing.save_params(work, params, config)
    config_utils.save_config(config, work)
    folder = str(base / f'{name}_model')
    export_tool.main(['--workdir', work, '--out', folder])
    out[name] = (config, predictor.module, params, folder,
                 _inputs(name, config, rng))
  return out, base


_SCRIPT = r'''
import importlib.util, json, sys
import numpy as np
job = json.load(open(sys.argv[1]))
assert importlib.util.find_spec('tal_jax') is None, 'tal_jax importable'
for name, run in job.items():
  sys.path.insert(0, run['folder'])
  import load_model
  model = load_model.load()
  got = {}
  for k, path in enumerate(run['inputs']):
    with np.load(path) as z:
      xs = dict(z)
    by_position = model(*[xs[s['name']] for s in model.inputs])
    by_name = model(**xs)
    for key in by_position:
      assert np.array_equal(by_position[key], by_name[key])
      got[f'{k}/{key}'] = by_position[key]
  try:
    model(**{k: np.asarray(v, np.float32) for k, v in run['bad'].items()})
    raise SystemExit(f'{name}: bad input accepted')
  except ValueError as e:
    print(f'{name}: {e}')
  np.savez(run['out'], **got)
  sys.path.pop(0)
  del sys.modules['load_model']
assert 'flax' not in sys.modules and 'tal_jax' not in sys.modules
print('ok')
'''

_BAD = {
    'bsn_tem': {'features': np.zeros((2, 16, 399))},
    'bsn_pem': {'bsp_features': np.zeros((2, 7, 31))},
    'ssn': {'tick_features': np.zeros((5, 64)),
            'proposal_ticks': np.zeros((3, 4)),
            'scale_factors': np.zeros((4, 2))},
}


@pytest.fixture(scope='module')
def loaded(exported):
  """Outputs of each model folder in a fresh Python (no tal_jax, no flax)."""
  models, base = exported
  job = {}
  for name, (_, _, _, folder, sets) in models.items():
    paths = []
    for k, x in enumerate(sets):
      paths.append(str(base / f'{name}_x{k}.npz'))
      np.savez(paths[-1], **x)
    job[name] = {'folder': folder, 'inputs': paths,
                 'out': str(base / f'{name}_y.npz'),
                 'bad': {k: v.tolist() for k, v in _BAD[name].items()}}
  with open(base / 'job.json', 'w') as f:
    json.dump(job, f)
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  res = subprocess.run([sys.executable, '-I', '-c', _SCRIPT,
                        str(base / 'job.json')], capture_output=True,
                       text=True, cwd=str(base), env=env, check=False)
  assert res.returncode == 0, res.stderr[-3000:]
  outputs = {}
  for name, run in job.items():
    with np.load(run['out']) as z:
      outputs[name] = dict(z)
  return outputs, res.stdout


@pytest.mark.parametrize('name', list(SPECS))
def test_exported_equals_in_process_forward(exported, loaded, name):
  config, module, params, _, sets = exported[0][name]
  got = loaded[0][name]
  for k, x in enumerate(sets):
    want = _in_process(name, config, module, params, x)
    for key, w in want.items():
      w = np.asarray(w)
      assert got[f'{k}/{key}'].shape == w.shape
      assert np.abs(w).max() > 1e-3  # not a trivial output
      np.testing.assert_allclose(got[f'{k}/{key}'], w, rtol=1e-6, atol=1e-7,
                                 err_msg=f'{name} {key}')


def test_ssn_export_equals_the_padded_test_path(exported, loaded):
  """definition.video_detections pads ticks and proposals to buckets and
  passes num_ticks: same head scores as the exported unpadded function."""
  config, _, params, _, sets = exported[0]['ssn']
  x = sets[0]
  t, p = len(x['tick_features']), len(x['proposal_ticks'])
  feats = np.zeros((64, 64), np.float32)
  feats[:t] = x['tick_features']
  ticks = np.zeros((16, 4), np.int32)
  ticks[:p] = x['proposal_ticks']
  scale = np.ones((16, 2), np.float32)
  scale[:p] = x['scale_factors']
  m = config.model
  padded = ssn_models.ssn_test_forward(
      params['head'], feats, ticks, scale, m.num_classes,
      ssn_models.stage(config), m.use_regression, np.int32(t))
  for key, w in zip(('activity', 'completeness', 'bbox_preds'), padded):
    np.testing.assert_allclose(loaded[0]['ssn'][f'0/{key}'],
                               np.asarray(w)[:p], rtol=1e-5, atol=1e-6)


def test_bad_inputs_are_refused_by_shape(loaded):
  lines = loaded[1].splitlines()
  assert 'bsn_tem: features must be [B, 16, 400], got (2, 16, 399)' in lines
  assert 'bsn_pem: bsp_features must be [B, P, 32], got (2, 7, 31)' in lines
  assert ('ssn: scale_factors must be [P, 2], got (4, 2) (proposals is 3 in '
          'an earlier input)') in lines


@pytest.mark.parametrize('name, inputs, outputs', [
    ('bsn_tem', [('features', ['batch', 16, 400], 'float32')],
     [('tem_output', ['batch', 16, 3])]),
    ('bsn_pem', [('bsp_features', ['batch', 'proposals', 32], 'float32')],
     [('iou_score', ['batch', 'proposals'])]),
    ('ssn', [('tick_features', ['ticks', 64], 'float32'),
             ('proposal_ticks', ['proposals', 4], 'int32'),
             ('scale_factors', ['proposals', 2], 'float32')],
     [('activity', ['proposals', 21]), ('completeness', ['proposals', 20]),
      ('bbox_preds', ['proposals', 20, 2])]),
])
def test_metadata(exported, name, inputs, outputs):
  folder = exported[0][name][3]
  with open(os.path.join(folder, 'metadata.json')) as f:
    meta = json.load(f)
  assert meta['model_name'] == name
  assert [(x['name'], x['shape'], x['dtype']) for x in meta['inputs']] == inputs
  assert meta['input'] == meta['inputs'][0]
  assert [(o['name'], o['shape']) for o in meta['outputs']] == outputs
  assert meta['platforms'] == ['cpu', 'cuda']


def test_loader_smoke_main_on_zeros(exported):
  folder = exported[0]['ssn'][3]
  res = subprocess.run([sys.executable, '-I',
                        os.path.join(folder, 'load_model.py')],
                       capture_output=True, text=True, check=False)
  assert res.returncode == 0, res.stderr
  assert res.stdout.splitlines() == ['activity (2, 21) float32',
                                     'completeness (2, 20) float32',
                                     'bbox_preds (2, 20, 2) float32']


def test_ssn_frame_mode_is_refused():
  config = _config('ssn.py:frames_tiny')
  serving = localizers.get(config).serving
  with pytest.raises(errors.TalError, match='frame mode'):
    serving.input_specs(config)


def test_infer_tool_refuses_a_model_without_proposals(exported):
  from tal_jax.tools import infer as infer_tool  # pylint: disable=g-import-not-at-top
  _, base = exported
  np.save(base / 'v_one.npy', np.ones((16, 400), np.float32))
  with pytest.raises(errors.TalError,
                     match="^model 'bsn_tem' gives no proposals on its own"):
    infer_tool.main(['--workdir', str(base / 'bsn_tem'), '--features',
                     str(base / 'v_one.npy'), '--out', str(base / 'o.json'),
                     '--quiet'])
  assert not os.path.exists(base / 'o.json')


def _import_loader(folder):
  """The model folder's load_model.py as a module (in this process)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(
      'load_model_ssn', os.path.join(folder, 'load_model.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.load(folder)


@pytest.mark.parametrize('name, value, match', [
    ('tick_features', np.full((5, 64), 'a'),
     '^tick_features must be float32 numbers, got dtype <U1$'),
    ('tick_features', np.zeros((5, 64), complex),
     'must be float32 numbers, got dtype complex128'),
    ('tick_features', np.where(np.arange(5)[:, None] == 3, np.nan,
                               np.zeros((5, 64))),
     r'^tick_features must be finite, got nan at index \[3, 0\]$'),
    ('tick_features', np.full((5, 64), 1e300),
     r'^tick_features must be finite, got 1e\+300 at index \[0, 0\]$'),
    ('tick_features', np.zeros((0, 64), np.float32),
     r'^tick_features must be \[T, 64\], got \(0, 64\) \(ticks must be '
     r'>= 1\)$'),
    ('tick_features', [[0.0] * 64, [0.0] * 63], '^tick_features: not an '
     'array'),
    ('proposal_ticks', np.array([[0, 1.5, 3, 4], [1, 2, 3, 4], [0, 1, 2, 3]]),
     r'^proposal_ticks must be whole numbers within int32, got 1.5 at index '
     r'\[0, 1\]$'),
    ('proposal_ticks', np.array([[0, 1, 3, 2**40]] * 3),
     'proposal_ticks must be whole numbers within int32, got 1099511627776'),
])
def test_loader_names_the_bad_input(exported, name, value, match):
  """Before: a fraction or an int64 beyond int32 was cast silently (wrong
  ticks), NaN / inf ran through to NaN outputs, text raised numpy's
  conversion error without the input's name, 0 ticks jax's shape error."""
  _, _, _, folder, sets = exported[0]['ssn']
  model = _import_loader(folder)
  x = dict(sets[0])
  x['proposal_ticks'] = x['proposal_ticks'][:3]
  x['scale_factors'] = x['scale_factors'][:3]
  x[name] = value
  with pytest.raises(ValueError, match=match):
    model(**x)


def test_loader_integral_floats_are_ticks(exported):
  _, _, _, folder, sets = exported[0]['ssn']
  model = _import_loader(folder)
  x = dict(sets[0])
  want = model(**x)
  got = model(**dict(x, proposal_ticks=x['proposal_ticks'].astype(float)))
  for key, value in want.items():
    np.testing.assert_array_equal(got[key], value)


def test_export_never_replaces_a_folder_that_is_no_export(exported, tmp_path):
  """Before: --out <a workdir> deleted the workdir (checkpoints included)
  and put the model there."""
  _, base = exported
  work = str(base / 'bsn_pem')
  before = sorted(os.listdir(work))
  with pytest.raises(errors.TalError, match=(
      f'^--out {work}: a folder that is not an earlier export')):
    export_tool.main(['--workdir', work, '--out', work])
  assert sorted(os.listdir(work)) == before
  (tmp_path / 'f').write_text('')
  with pytest.raises(errors.TalError, match='is a file, expected a model'):
    export_tool.main(['--workdir', work, '--out', str(tmp_path / 'f')])
  # An earlier export is replaced.
  assert export_tool.main(['--workdir', work, '--out',
                           exported[0]['bsn_pem'][3]])


@pytest.mark.parametrize('platforms', ['tpu9', ',', 'cpu,gpu'])
def test_export_unknown_platform(exported, tmp_path, platforms):
  """Before: jax exported for 'tpu9' silently, a model that runs nowhere."""
  _, base = exported
  with pytest.raises(errors.TalError, match=(
      f"^--platforms '{platforms}': expected a comma-separated list of cpu, "
      'cuda, rocm, tpu$')):
    export_tool.main(['--workdir', str(base / 'bsn_pem'), '--out',
                      str(tmp_path / 'm'), '--platforms', platforms])
  assert not os.path.exists(tmp_path / 'm')
