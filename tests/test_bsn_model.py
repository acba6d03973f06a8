"""BSN TEM/PEM models, labels and losses against MMAction2 1.2.0 golden values.

Fixtures: tests/golden/bsn_tem.npz, bsn_pem.npz (make_bsn_golden.py).
"""

import json
import os

import tal_jax  # noqa: F401  (sets the XLA flag before JAX starts)
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tal_jax.localizers.bsn import losses as bsn_losses
from tal_jax.localizers.bsn import targets as bsn_targets
from tal_jax.localizers.bsn import model as bsn
from tal_jax.ops import segments

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden')


def _load(name):
  return dict(np.load(os.path.join(GOLDEN, name), allow_pickle=False))


@pytest.fixture(scope='module')
def tem_ref():
  return _load('bsn_tem.npz')


@pytest.fixture(scope='module')
def pem_ref():
  return _load('bsn_pem.npz')


def _sd(ref):
  return {k[3:]: v for k, v in ref.items() if k.startswith('sd/')}


def _rel(a, b):
  return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


def _grad_errors(grads, ref):
  """Per torch tensor ||a-b||/||b|| of the Flax grads (in torch layout)."""
  errs = {}
  for layer, entries in grads.items():
    k = np.asarray(entries['kernel'])
    errs[f'{layer}.weight'] = _rel(np.transpose(k, tuple(range(k.ndim))[::-1]),
                                   ref[f'grad/{layer}.weight'])
    errs[f'{layer}.bias'] = _rel(entries['bias'], ref[f'grad/{layer}.bias'])
  return errs


def _tem_model(ref):
  cfg = json.loads(str(ref['config_json']))
  return bsn.TEM(temporal_dim=cfg['temporal_dim'], feat_dim=cfg['tem_feat_dim'],
                 hidden_dim=cfg['tem_hidden_dim'])


def test_tem_forward(tem_ref):
  params = bsn.params_from_state_dict(_sd(tem_ref))
  out = _tem_model(tem_ref).apply({'params': params}, tem_ref['features'])
  assert out.shape == tem_ref['tem_output'].shape
  assert np.abs(np.asarray(out) - tem_ref['tem_output']).max() <= 1e-5
  # TEM.predict rows: outputs then the float64 anchors i/T, (i+1)/T.
  tmin, tmax = bsn_targets.tem_anchors(16)
  np.testing.assert_array_equal(tem_ref['tem_rows'][..., 3], np.broadcast_to(
      tmin, (3, 16)))
  np.testing.assert_array_equal(tem_ref['tem_rows'][..., 4], np.broadcast_to(
      tmax, (3, 16)))
  np.testing.assert_array_equal(tem_ref['tem_rows'][..., :3],
                                tem_ref['tem_output'])


def test_tem_labels_bit_identical(tem_ref):
  records = json.loads(str(tem_ref['records_json']))
  gts = [segments.normalize_gt(r) for r in records]
  np.testing.assert_array_equal(
      np.concatenate(gts), tem_ref['gt'][tem_ref['gt_mask']])
  labels = bsn_targets.tem_targets_batch(tem_ref['gt'], tem_ref['gt_mask'], 16,
                                         0.1)
  for got, key in zip(labels, ('label_action', 'label_start', 'label_end')):
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, tem_ref[key])
  single = bsn_targets.tem_targets(gts[1], 16)
  np.testing.assert_array_equal(single[0], tem_ref['label_action'][1])


def test_tem_labels_by_hand():
  # T=10, gt [0.2, 0.5]: pad = max(0.1, 0.03) = 0.1, start region [0.15, 0.25].
  action, start, end = bsn_targets.tem_targets(np.array([[0.2, 0.5]]), 10)
  np.testing.assert_allclose(action, [0, 0, 1, 1, 1, 0, 0, 0, 0, 0], atol=1e-6)
  np.testing.assert_allclose(start, [0, .5, .5, 0, 0, 0, 0, 0, 0, 0], atol=1e-6)
  np.testing.assert_allclose(end, [0, 0, 0, 0, .5, .5, 0, 0, 0, 0], atol=1e-6)


def test_tem_loss_and_grads(tem_ref):
  params = bsn.params_from_state_dict(_sd(tem_ref))
  model = _tem_model(tem_ref)
  labels = [jnp.asarray(tem_ref[k])
            for k in ('label_action', 'label_start', 'label_end')]

  def loss_fn(p):
    return bsn_losses.tem_loss(model.apply({'params': p}, tem_ref['features']),
                               *labels)

  (total, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  for key in ('loss_action', 'loss_start', 'loss_end', 'loss'):
    assert abs(float(metrics[key]) / float(tem_ref[key]) - 1) <= 1e-5, key
  assert float(total) == float(metrics['loss'])
  errs = _grad_errors(grads, tem_ref)
  assert len(errs) == 6 and max(errs.values()) <= 1e-4, errs


def test_tem_init_is_torch_default():
  model = bsn.TEM(temporal_dim=4, feat_dim=6, hidden_dim=8)
  params = model.init(jax.random.key(0), jnp.zeros((1, 4, 6)))['params']
  assert params['conv1']['kernel'].shape == (3, 6, 8)
  assert params['conv3']['kernel'].shape == (1, 8, 3)
  for layer, fan_in in (('conv1', 18), ('conv2', 24), ('conv3', 8)):
    for v in params[layer].values():
      assert 0 < np.abs(v).max() <= 1 / np.sqrt(fan_in)
  out = model.apply({'params': params}, jnp.ones((2, 4, 6)))
  assert out.shape == (2, 4, 3)  # 0.01 scale: outputs stay close to 0.5
  assert np.abs(np.asarray(out) - 0.5).max() < 0.01


def test_pem_forward(pem_ref):
  params = bsn.params_from_state_dict(_sd(pem_ref))
  model = bsn.PEM()
  out = model.apply({'params': params}, pem_ref['train_feature'])
  assert out.shape == pem_ref['train_output'].shape
  assert np.abs(np.asarray(out) - pem_ref['train_output']).max() <= 1e-5
  init = model.init(jax.random.key(0), jnp.zeros((1, 32)))['params']
  assert np.abs(init['fc1']['kernel']).max() <= 1 / np.sqrt(32)
  assert np.abs(init['fc2']['bias']).max() <= 1 / np.sqrt(256)


def test_pem_loss_and_grads(pem_ref):
  params = bsn.params_from_state_dict(_sd(pem_ref))
  model = bsn.PEM()
  x, iou = pem_ref['train_feature'], pem_ref['train_iou']
  valid = np.ones(iou.shape, bool)

  def loss_fn(p):
    return bsn_losses.pem_loss_from_uniforms(
        model.apply({'params': p}, x), iou, valid, pem_ref['u_medium'],
        pem_ref['u_low'])

  (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  assert abs(float(loss) / float(pem_ref['loss']) - 1) <= 1e-5
  errs = _grad_errors(grads, pem_ref)
  assert len(errs) == 4 and max(errs.values()) <= 1e-4, errs
  # The mean-before-weights quirk: the loss is the plain mean smooth-L1.
  plain = np.mean(np.asarray(bsn_losses.smooth_l1(
      model.apply({'params': params}, x), iou)))
  assert abs(float(loss) / plain - 1) <= 1e-5


def test_pem_loss_padding_and_nan():
  pred = jnp.array([0.5, 0.2, 0.9, 0.0])
  iou = jnp.array([0.8, 0.1, 0.3, 0.0])
  u = jnp.zeros(4)
  # Padding (last entry) is excluded: mean of 0.5*d^2 over 3 real entries.
  loss, _ = bsn_losses.pem_loss_from_uniforms(
      pred, iou, jnp.array([True, True, True, False]), u, u)
  expected = 0.5 * (0.3**2 + 0.1**2 + 0.6**2) / 3
  assert abs(float(loss) - expected) < 1e-6
  # No iou > 0.6 and nothing drawn: MMAction2's 0/0 gives NaN.
  loss, _ = bsn_losses.pem_loss_from_uniforms(
      pred, iou * 0.5, jnp.ones(4, bool), u, u)
  assert np.isnan(float(loss))
  loss, _ = bsn_losses.pem_loss(pred, iou, jnp.ones(4, bool),
                                jax.random.key(0))
  assert abs(float(loss) - 0.5 * (0.3**2 + 0.1**2 + 0.6**2) / 4) < 1e-6


def test_pem_targets_padding():
  props = [np.arange(14, dtype=np.float64).reshape(2, 7) / 10,
           np.ones((5, 7)) * 0.3]
  feats = [np.full((2, 32), 1 / 3), np.zeros((5, 32))]
  feature, iou, valid = bsn_targets.pem_targets(props, feats, top_k=4)
  assert feature.shape == (2, 4, 32) and feature.dtype == np.float32
  np.testing.assert_array_equal(valid, [[1, 1, 0, 0], [1, 1, 1, 1]])
  np.testing.assert_array_equal(iou[0], np.float32([0.5, 1.2, 0, 0]))
  assert feature[0, 0, 0] == np.float32(1 / 3) and feature[0, 2, 0] == 0


def test_state_dict_conversion_layouts():
  sd = {'module.conv1.weight': np.arange(24.).reshape(4, 2, 3),
        'module.conv1.bias': np.ones(4), 'fc1.weight': np.ones((5, 3)),
        'fc1.bias': np.zeros(5), 'num_batches': np.array(1)}
  params = bsn.params_from_state_dict(sd)
  assert params['conv1']['kernel'].shape == (3, 2, 4)
  kernel = params['conv1']['kernel']
  assert kernel[2, 1, 3] == sd['module.conv1.weight'][3, 1, 2]
  assert params['fc1']['kernel'].shape == (3, 5)
  assert set(params) == {'conv1', 'fc1'}
