"""BMN loss and gradients against MMAction2 1.2.0 (tests/golden/bmn_tiny.npz)."""

import json
import math
import os

import tal_jax  # noqa: F401
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tal_jax.localizers.bmn import loss as losses
from tal_jax.localizers.bmn import model as bmn
from tal_jax.localizers.bmn import boundary_matching
from tal_jax.ops import losses as ops_losses
from tal_jax.localizers.bmn import convert as bmn_convert

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden', 'bmn_tiny.npz')
PARTS = ('loss', 'tem_loss', 'pem_reg_loss', 'pem_cls_loss')


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(GOLDEN, allow_pickle=False))


def _labels(ref):
  return tuple(jnp.asarray(ref[k]) for k in ('label_iou_map', 'label_start',
                                              'label_end'))


def test_loss_matches_mmaction2(ref):
  total, parts = losses.bmn_loss_from_uniforms(
      jnp.asarray(ref['confidence_map']), jnp.asarray(ref['start']),
      jnp.asarray(ref['end']), *_labels(ref), boundary_matching.bm_valid_mask(16),
      ref['u_medium'], ref['u_low'])
  assert float(total) == float(parts['loss'])
  for k in PARTS:
    assert float(parts[k]) == pytest.approx(float(ref[k]), rel=1e-5), k


@pytest.mark.parametrize('bm_layer', ['dense', 'reassociated'])
def test_grads_match_mmaction2(ref, bm_layer):
  cfg = json.loads(str(ref['config_json']))
  sd = {k[3:]: v for k, v in ref.items() if k.startswith('sd/')}
  params = bmn_convert.bmn_params_from_state_dict(sd, cfg)
  grads_ref = bmn_convert.bmn_params_from_state_dict(
      {k[5:]: v for k, v in ref.items() if k.startswith('grad/')}, cfg)
  model = bmn.BMN(bm_layer=bm_layer, **cfg)

  def loss_fn(p):
    out = model.apply({'params': p}, jnp.asarray(ref['features']))
    return losses.bmn_loss_from_uniforms(*out, *_labels(ref),
                                         boundary_matching.bm_valid_mask(16),
                                         ref['u_medium'], ref['u_low'])

  (total, _), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(
      params)
  assert float(total) == pytest.approx(float(ref['loss']), rel=1e-5)
  flat, _ = jax.tree_util.tree_flatten_with_path(grads)
  flat_ref = jax.tree_util.tree_leaves(grads_ref)
  assert len(flat) == len(flat_ref) == 24
  for (path, g), g_ref in zip(flat, flat_ref):
    err = np.linalg.norm(np.asarray(g) - g_ref) / np.linalg.norm(g_ref)
    assert err <= 1e-4, (path, err)


def test_binary_logistic_by_hand():
  # 1 positive of 4: ratio 4, coef_1 = 2, coef_0 = 2/3; all scores 0.5.
  loss = ops_losses.binary_logistic_regression_loss(
      jnp.full((4,), 0.5), jnp.array([1., 0., 0., 0.]))
  assert float(loss) == pytest.approx(-math.log(0.5 + 1e-5), rel=1e-6)


def test_pem_reg_samples_every_cell_when_no_medium_or_low():
  # One high cell, no medium/low: r = 1/0 = inf, so `u * mask > 1 - r` holds
  # for every cell (as in MMAction2): weights 3 on the high cell, 2 elsewhere.
  gt = jnp.array([[[0.8, 0.], [0., 0.]]])
  pred = jnp.full((1, 2, 2), 0.5)
  u = jnp.full((1, 2, 2), 0.25)
  loss = losses.pem_reg_loss(pred, gt, boundary_matching.bm_valid_mask(2), u, u)
  expected = 0.5 * ((1.5 - 2.4) ** 2 + 3 * 1.0) / 9
  assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_pem_cls_by_hand():
  # One positive (> 0.9), 2 valid negatives; ratio 3, coef_1 1.5, coef_0 0.75.
  gt = jnp.array([[[0.95, 0.2], [0.0, 0.0]]])
  pred = jnp.full((1, 2, 2), 0.5)
  loss = losses.pem_cls_loss(pred, gt, boundary_matching.bm_valid_mask(2))
  log_half = math.log(0.5 + 1e-5)
  expected = -(1.5 * log_half + 2 * 0.75 * log_half) / 3
  assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_bmn_loss_with_key_is_deterministic_and_finite(ref):
  args = (jnp.asarray(ref['confidence_map']), jnp.asarray(ref['start']),
          jnp.asarray(ref['end']), *_labels(ref), boundary_matching.bm_valid_mask(16))
  a, pa = jax.jit(losses.bmn_loss)(*args, jax.random.key(3))
  b, _ = losses.bmn_loss(*args, jax.random.key(3))
  assert float(a) == pytest.approx(float(b), rel=1e-6)
  assert np.isfinite(float(a)) and set(pa) == set(PARTS)
  # tem and cls do not depend on the draws.
  for k in ('tem_loss', 'pem_cls_loss'):
    assert float(pa[k]) == pytest.approx(float(ref[k]), rel=1e-5)
