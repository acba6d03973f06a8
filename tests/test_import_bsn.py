"""Importing MMAction2 BSN TEM / PEM state dicts (golden weights from MMAction2 1.2.0)."""

import os

import numpy as np
import pytest

import tal_jax  # noqa: F401
import jax.numpy as jnp

from tal_jax import config_utils
from tal_jax import errors
from tal_jax.tools import import_mmaction2
from tal_jax.localizers.bsn import convert as bsn_convert
from tal_jax import localizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, 'tests', 'golden')


def _golden(name):
  ref = np.load(os.path.join(GOLDEN, name))
  sd = {k[3:]: ref[k] for k in ref.files if k.startswith('sd/')}
  return ref, sd


def _tem_config():
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bsn_tem.py:tiny'))
  config.model.temporal_dim, config.model.feat_dim = 16, 8
  config.model.hidden_dim = 16
  return config


def test_tem_state_dict_gives_mmaction2_outputs():
  ref, sd = _golden('bsn_tem.npz')
  config = _tem_config()
  params = bsn_convert.bsn_params_from_state_dict(sd, config)
  out = localizers.get(config).build(config).apply(
      {'params': params}, jnp.asarray(ref['features']))
  np.testing.assert_allclose(np.asarray(out), ref['tem_output'], atol=1e-5)


def test_pem_state_dict_gives_mmaction2_outputs():
  ref, sd = _golden('bsn_pem.npz')
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bsn_pem.py'))
  params = bsn_convert.bsn_params_from_state_dict(sd, config)
  out = localizers.get(config).build(config).apply(
      {'params': params}, jnp.asarray(ref['train_feature']))
  np.testing.assert_allclose(np.asarray(out), ref['train_output'], atol=1e-5)


def test_tem_of_another_width_is_refused_with_the_torch_name():
  _, sd = _golden('bsn_tem.npz')
  config = _tem_config()
  config.model.hidden_dim = 32
  want = r'conv1\.bias gives shape \(16,\) but config expects \(32,\)'
  with pytest.raises(errors.TalError, match=want):
    bsn_convert.bsn_params_from_state_dict(sd, config, source='tem.pth')


def test_pem_checkpoint_for_tem_config_names_missing_keys():
  _, sd = _golden('bsn_pem.npz')
  with pytest.raises(errors.TalError, match=r"missing keys \['conv1.bias'"):
    bsn_convert.bsn_params_from_state_dict(sd, _tem_config(), source='pem.pth')


def test_unsupported_model_is_refused(tmp_path):
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bsn_pgm.py'))
  with pytest.raises(errors.TalError, match='cannot import'):
    import_mmaction2.load_checkpoint(str(tmp_path / 'x.pth'), config)
