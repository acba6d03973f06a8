"""BMN forward against MMAction2 1.2.0 (tests/golden/bmn_tiny.npz) and by hand."""

import json
import math
import os

import tal_jax  # noqa: F401  (before any JAX computation)
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tal_jax import config_utils
from tal_jax.localizers.bmn import model as bmn
from tal_jax.localizers.bmn import boundary_matching
from tal_jax.localizers.bmn import convert as bmn_convert

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden', 'bmn_tiny.npz')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def golden():
  ref = dict(np.load(GOLDEN, allow_pickle=False))
  cfg = json.loads(str(ref['config_json']))
  sd = {k[3:]: v for k, v in ref.items() if k.startswith('sd/')}
  return ref, cfg, bmn_convert.bmn_params_from_state_dict(sd, cfg)


@pytest.mark.parametrize('bm_layer', ['dense', 'reassociated'])
def test_forward_matches_mmaction2(golden, bm_layer):
  ref, cfg, params = golden
  model = bmn.BMN(bm_layer=bm_layer, **cfg)
  cmap, start, end = jax.jit(model.apply)({'params': params},
                                          jnp.asarray(ref['features']))
  assert cmap.shape == ref['confidence_map'].shape == (2, 16, 16, 2)
  for got, key in ((cmap, 'confidence_map'), (start, 'start'), (end, 'end')):
    np.testing.assert_allclose(np.asarray(got), ref[key], rtol=0, atol=1e-5)


def test_sample_mask_matches_mmaction2_exactly(golden):
  ref, cfg, _ = golden
  t = cfg['temporal_dim']
  mask = boundary_matching.bm_sample_mask(t, cfg['num_samples'],
                               cfg['num_samples_per_bin'],
                               cfg['boundary_ratio'])
  np.testing.assert_array_equal(mask.reshape(t, -1), ref['sample_mask'])
  # The fixture exercises the modf asymmetry at both ends of the sequence.
  assert ref['mask_cross_zero'] > 0 and ref['mask_cross_end'] > 0


def test_sample_mask_by_hand_shows_truncation_asymmetry():
  # T=2, N=1, 2 points per bin, ratio 0.5. Cell (d=0, s=0) samples -0.5 and
  # 0.5: -0.5 truncates toward zero and puts 1.5 - 0.5 = 1.0 on index 0.
  # Cell (d=0, s=1) samples 0.5 and 1.5: 1.5 keeps only 0.5 on index 1.
  mask = boundary_matching.bm_sample_mask(2, 1, 2, 0.5)
  np.testing.assert_allclose(mask[:, 0, 0, 0], [0.75, 0.25])
  np.testing.assert_allclose(mask[:, 0, 0, 1], [0.25, 0.5])
  np.testing.assert_array_equal(mask[:, 0, 1, :], 0)  # d=1: all points outside


def test_bm_valid_mask():
  np.testing.assert_array_equal(
      boundary_matching.bm_valid_mask(3), [[1, 1, 1], [1, 1, 0], [1, 0, 0]])


def test_reassociated_equals_dense_other_sizes():
  model = bmn.BMN(temporal_dim=12, feat_dim=8, boundary_ratio=0.3,
                  num_samples=3, num_samples_per_bin=3, hidden_dim_1d=8,
                  hidden_dim_2d=4, hidden_dim_3d=12)
  x = jax.random.normal(jax.random.key(1), (3, 12, 8))
  params = model.init(jax.random.key(0), x)
  dense = model.apply(params, x)
  fast = model.clone(bm_layer='reassociated').apply(params, x)
  for a, b in zip(dense, fast):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_init_matches_pytorch_defaults():
  model = bmn.BMN(temporal_dim=16, feat_dim=24, num_samples=4,
                  num_samples_per_bin=2, hidden_dim_1d=16, hidden_dim_2d=8,
                  hidden_dim_3d=16)
  params = model.init(jax.random.key(0), jnp.zeros((1, 16, 24)))['params']
  fan_in = {'x_1d_b_0': 6 * 3, 'x_1d_b_2': 4 * 3, 'x_1d_s_0': 4 * 3,
            'x_1d_s_2': 16, 'x_1d_e_0': 4 * 3, 'x_1d_e_2': 16,
            'x_1d_p_0': 16 * 3, 'x_3d_p_0': 16 * 4, 'x_2d_p_0': 16,
            'x_2d_p_2': 8 * 9, 'x_2d_p_4': 8 * 9, 'x_2d_p_6': 8}
  assert sorted(params) == sorted(fan_in)
  for name, p in params.items():
    bound = 1 / math.sqrt(fan_in[name])
    for leaf in (p['kernel'], p['bias']):
      assert leaf.dtype == jnp.float32
      assert float(jnp.max(jnp.abs(leaf))) <= bound
    if p['kernel'].size >= 200:  # U(-b, b): spread close to the bound
      assert float(jnp.max(jnp.abs(p['kernel']))) > 0.9 * bound


def test_bfloat16_compute_close_to_float32(golden):
  ref, cfg, params = golden
  out = bmn.BMN(dtype=jnp.bfloat16, **cfg).apply(
      {'params': params}, jnp.asarray(ref['features']))
  assert all(o.dtype == jnp.float32 for o in out)
  np.testing.assert_allclose(np.asarray(out[0]), ref['confidence_map'],
                             atol=0.03)


def test_from_config_tiny_preset():
  config = config_utils.load_config(os.path.join(REPO, 'configs', 'bmn.py') +
                                    ':tiny')
  model = bmn.bmn_from_config(config)
  assert (model.temporal_dim, model.feat_dim, model.hidden_dim_3d,
          model.bm_layer) == (16, 400, 16, 'reassociated')
  assert bmn.BMN.from_config(config.model) == model
  with pytest.raises(ValueError, match='expects features'):
    model.init(jax.random.key(0), jnp.zeros((1, 16, 24)))
