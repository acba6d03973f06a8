"""Reading MMAction2 .pth checkpoints without torch, and mapping them onto BMN."""

import json
import os
import pickle
import zipfile

import tal_jax  # noqa: F401
import jax.numpy as jnp
import numpy as np
import pytest

from tal_jax.errors import TalError
from tal_jax.localizers.bmn import model as bmn
from tal_jax.tools import import_mmaction2
from tal_jax.localizers.bmn import convert as bmn_convert
from tal_jax.convert import pth

GOLDEN_DIR = os.path.join(os.path.dirname(__file__), 'golden')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def ref():
  ref = dict(np.load(os.path.join(GOLDEN_DIR, 'bmn_tiny.npz'),
                     allow_pickle=False))
  return ref, json.loads(str(ref['config_json']))


@pytest.mark.parametrize('name', ['bmn_tiny.pth', 'bmn_tiny_legacy.pth'])
def test_load_pth_reads_torch_save(ref, name):
  ref, _ = ref
  sd = pth.load_pth(os.path.join(GOLDEN_DIR, name))
  weights = {k[3:]: v for k, v in ref.items() if k.startswith('sd/')}
  assert set(sd) == set(weights) | {'sample_mask', 'bm_mask'}  # no 'module.'
  for k, v in weights.items():
    assert sd[k].dtype == np.float32
    np.testing.assert_array_equal(sd[k], v)
  np.testing.assert_array_equal(sd['sample_mask'], ref['sample_mask'])


def test_imported_checkpoint_reproduces_golden_forward(ref):
  ref, cfg = ref
  path = os.path.join(GOLDEN_DIR, 'bmn_tiny.pth')
  params = bmn_convert.bmn_params_from_state_dict(pth.load_pth(path), cfg,
                                                  source=path)
  cmap, start, end = bmn.BMN(**cfg).apply({'params': params},
                                          jnp.asarray(ref['features']))
  np.testing.assert_allclose(np.asarray(cmap), ref['confidence_map'], atol=1e-5)
  np.testing.assert_allclose(np.asarray(start), ref['start'], atol=1e-5)
  np.testing.assert_allclose(np.asarray(end), ref['end'], atol=1e-5)


def test_mapping_errors_name_the_key(ref):
  ref, cfg = ref
  sd = {k[3:]: v for k, v in ref.items() if k.startswith('sd/')}
  missing = {k: v for k, v in sd.items() if k != 'x_1d_p.0.bias'}
  with pytest.raises(TalError, match=r"x\.pth: missing keys \['x_1d_p.0.bias'\]"):
    bmn_convert.bmn_params_from_state_dict(missing, cfg, source='x.pth')
  with pytest.raises(TalError, match=r"unexpected keys \['extra.weight'\]"):
    bmn_convert.bmn_params_from_state_dict({**sd, 'extra.weight': sd['x_1d_p.0.bias']},
                                         cfg)
  wide = dict(cfg, feat_dim=400)
  with pytest.raises(TalError, match=r'x_1d_b.0.weight has shape \(16, 6, 3\) '
                     r'but config expects \(16, 100, 3\)'):
    bmn_convert.bmn_params_from_state_dict(sd, wide)
  with pytest.raises(TalError, match='sample_mask has shape'):
    bmn_convert.bmn_params_from_state_dict(
        {**sd, 'sample_mask': np.zeros((8, 8))}, cfg)


def test_load_pth_bad_files(tmp_path):
  with pytest.raises(TalError, match='no such file'):
    pth.load_pth(str(tmp_path / 'nope.pth'))
  junk = tmp_path / 'junk.pth'
  junk.write_bytes(b'not a checkpoint at all')
  with pytest.raises(TalError, match='junk.pth'):
    pth.load_pth(str(junk))


def test_unpickler_never_imports_other_globals(tmp_path):
  # A zip checkpoint whose pickle calls os.system: it becomes an inert object.
  marker = tmp_path / 'pwned'
  payload = pickle.dumps({'state_dict': {}, 'evil': _Evil(str(marker))},
                         protocol=2)
  path = tmp_path / 'evil.pth'
  with zipfile.ZipFile(path, 'w') as z:
    z.writestr('evil/data.pkl', payload)
  with pytest.raises(TalError, match='no state dict of tensors'):
    pth.load_pth(str(path))
  assert not marker.exists()


class _Evil:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f'touch {self.marker}',))


def test_cli_imports_into_workdir(tmp_path, capsys):
  path = import_mmaction2.main([
      '--checkpoint', os.path.join(GOLDEN_DIR, 'bmn_tiny.pth'),
      '--config', os.path.join(REPO, 'configs', 'bmn.py') + ':tiny',
      '--set', 'model.feat_dim=24', '--workdir', str(tmp_path / 'w')])
  assert os.path.isdir(path)
  assert 'parameters to' in capsys.readouterr().out


def test_cli_shape_mismatch_is_one_line_error(tmp_path):
  with pytest.raises(TalError, match='x_1d_b.0.weight has shape'):
    import_mmaction2.main([
        '--checkpoint', os.path.join(GOLDEN_DIR, 'bmn_tiny.pth'),
        '--config', os.path.join(REPO, 'configs', 'bmn.py') + ':tiny',
        '--workdir', str(tmp_path / 'w')])


def test_cli_into_a_workdir_with_checkpoints(tmp_path, capsys):
  """Refused without --force (the trained steps would keep being restored);
  with --force the trained checkpoints move aside and the import is step 0,
  the only one."""
  args = ['--checkpoint', os.path.join(GOLDEN_DIR, 'bmn_tiny.pth'),
          '--config', os.path.join(REPO, 'configs', 'bmn.py') + ':tiny',
          '--set', 'model.feat_dim=24', '--workdir', str(tmp_path)]
  import_mmaction2.main(args)
  os.rename(tmp_path / 'checkpoints' / '0', tmp_path / 'checkpoints' / '12')
  with pytest.raises(TalError, match=(
      rf'^{tmp_path} already holds checkpoints \(steps 12\) that test, infer, '
      'export and resume would keep restoring instead of the import;')):
    import_mmaction2.main(args)
  capsys.readouterr()
  path = import_mmaction2.main(args + ['--force'])
  assert path == str(tmp_path / 'checkpoints' / '0')
  assert os.listdir(tmp_path / 'checkpoints') == ['0']
  assert os.listdir(tmp_path / 'checkpoints.before-import') == ['12']
  assert (f'--force: moved the existing checkpoints to {tmp_path}/'
          'checkpoints.before-import') in capsys.readouterr().out
