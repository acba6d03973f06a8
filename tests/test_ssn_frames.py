"""SSN frame mode (ResNet backbone + head trained jointly) against MMAction2
0.24.1: tests/golden/ssn_frames.npz from tests/golden/make_ssn_frames_golden.py.

The golden model is upstream's SSN localizer with ResNet-50 cut to one block
per stage (full widths, 2048-d features), partial BN, 4 classes, dropout 0,
64x64 normalised images; its weights are regenerated here from a seed
(tests/golden/ssn_frames_weights.py), so only outputs are stored.
"""

import os
import sys

import tal_jax  # noqa: F401  (XLA flags before JAX runs)
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tal_jax import config_utils
from tal_jax.localizers.ssn import definition as ssn
from tal_jax.localizers.ssn import frames as ssn_frames
from tal_jax.engine import trainer as train
from tal_jax import errors
from tal_jax.nn import resnet_import as tv
from tal_jax.nn import resnet
from tal_jax.localizers.ssn import model as ssn_models
from tal_jax.localizers.ssn import convert as ssn_convert

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, GOLDEN)
import ssn_frames_weights as weights  # noqa: E402  pylint: disable=g-import-not-at-top


def _rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)


@pytest.fixture(scope='module')
def golden():
  return dict(np.load(os.path.join(GOLDEN, 'ssn_frames.npz')))


@pytest.fixture(scope='module')
def state(golden):
  sd = weights.state_dict(weights.decode_shapes(golden['state_names'],
                                                golden['state_shapes']))
  for name, total in zip(golden['check/names'], golden['check/sums']):
    assert np.sum(sd[str(name)], dtype=np.float64) == pytest.approx(
        total, rel=1e-12)
  return sd


def _config(golden):
  config = config_utils.load_config(os.path.join(ROOT, 'configs/ssn.py'))
  config.data.mode = 'frames'
  config.model.num_classes = int(golden['config/num_classes'])
  config.model.dropout_ratio = 0.0
  config.model.feat_dim = 2048
  config.model.backbone.stage_blocks = [
      int(b) for b in golden['config/stage_blocks']]
  # Upstream ran both videos through one backbone call: one BN group.
  config.train.videos_per_loss = 2
  return config


@pytest.fixture(scope='module')
def model(golden, state):
  """The golden's MMAction2 state dict through tal_jax's SSN importer."""
  config = _config(golden)
  module = ssn_models.build(config)
  variables = ssn_convert.ssn_variables_from_state_dict(state, config)
  return config, module, jax.tree.map(jnp.asarray, variables)


def _train_batch(golden):
  imgs = weights.images((2, 8, 9, 3, 64, 64), weights.TRAIN_IMAGE_SEED)
  assert np.sum(imgs, dtype=np.float64) == pytest.approx(
      golden['check/train_imgs_sum'], rel=1e-9)
  batch = {'inputs': imgs.transpose(0, 1, 2, 4, 5, 3)}
  for key in ('proposal_scale_factor', 'proposal_type', 'proposal_labels',
              'reg_targets'):
    value = golden[f'train/{key}']
    batch[key] = value.astype(np.int32 if value.dtype.kind == 'i'
                              else np.float32)
  return jax.tree.map(jnp.asarray, batch)


@pytest.fixture(scope='module')
def trained(golden, model):
  config, module, variables = model
  batch = _train_batch(golden)
  model_state = {'batch_stats': variables['batch_stats']}

  def loss_fn(params):
    return ssn.loss(module, params, batch, jax.random.key(0), config,
                    model_state=model_state)

  (loss, (metrics, new_state)), grads = jax.jit(jax.value_and_grad(
      loss_fn, has_aux=True))(variables['params'])
  return loss, metrics, new_state, grads, batch


def test_losses_match(golden, trained):
  loss, metrics, _, _, _ = trained
  for key in ('loss_activity', 'loss_completeness', 'loss_reg'):
    assert float(metrics[key]) == pytest.approx(float(golden[f'train/{key}']),
                                                rel=2e-5), key
  assert float(loss) == pytest.approx(float(golden['train/loss']), rel=2e-5)


def test_train_features_and_partial_bn_statistics(golden, model, trained):
  _, module, variables = model
  _, _, new_state, _, batch = trained
  pooled, _ = module.apply(variables, batch['inputs'], train=True,
                           method='frame_features', mutable=['batch_stats'])
  assert _rel(pooled[0, 0], golden['train/pooled_first9']) < 1e-5
  bn1 = new_state['batch_stats']['backbone']['bn1']
  np.testing.assert_allclose(bn1['mean'], golden['train/bn1_running_mean'],
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(bn1['var'], golden['train/bn1_running_var'],
                             rtol=1e-5, atol=1e-6)
  # Partial BN: every other BN keeps its running statistics.
  before = variables['batch_stats']['backbone']['layer2_0']['bn2']['var']
  after = new_state['batch_stats']['backbone']['layer2_0']['bn2']['var']
  np.testing.assert_array_equal(before, after)


def _backbone_names(golden, state, stage_blocks):
  """[(flax path, torch name)] of the backbone's params, found by importing
  a state dict whose every tensor holds its own index."""
  names = [str(n) for n in golden['state_names']]
  markers = {n: np.full(state[n].shape, i, np.float32)
             if state[n].dtype.kind == 'f' else state[n]
             for i, n in enumerate(names)}
  tree = tv.resnet_variables_from_state_dict(markers,
                                             stage_blocks=stage_blocks)
  return [(path, names[int(np.asarray(leaf).ravel()[0])])
          for path, leaf in jax.tree_util.tree_leaves_with_path(
              tree['params'])]


def _get(tree, path):
  for k in path:
    tree = tree[getattr(k, 'key', k)]
  return tree


def _grads_by_torch_name(pairs, grads):
  """{torch name: gradient in torch layout} of every param."""
  out = {}
  for path, name in pairs:
    g = np.asarray(_get(grads['backbone'], path))
    out[name] = g.transpose(3, 2, 0, 1) if g.ndim == 4 else g
  for fc in ('activity_fc', 'completeness_fc', 'regressor_fc'):
    out[f'cls_head.{fc}.weight'] = np.asarray(grads['head'][fc]['kernel']).T
    out[f'cls_head.{fc}.bias'] = np.asarray(grads['head'][fc]['bias'])
  return out


def test_gradients_match(golden, state, model, trained):
  config, _, variables = model
  grads = trained[3]
  pairs = _backbone_names(golden, state,
                          tuple(config.model.backbone.stage_blocks))
  by_name = _grads_by_torch_name(pairs, grads)
  names = [str(n) for n in golden['state_names']]
  for i, name in enumerate(str(n) for n in golden['grad_names']):
    g = by_name[name].astype(np.float64)
    norm = np.linalg.norm(g)
    assert norm == pytest.approx(golden['grad_norm'][i], rel=1e-4), name
    direction = weights.grad_direction(names.index(name), g.shape)
    assert abs(np.sum(g * direction) - golden['grad_dot'][i]) <= (
        1e-4 * golden['grad_norm'][i]), name
  for key in golden:
    if key.startswith('grad/'):
      assert _rel(by_name[key[len('grad/'):]], golden[key]) < 1e-5, key
  # Frozen parameters (partial BN) are the ones upstream leaves without grad.
  labels = ssn_frames.param_labels(variables['params'], config)
  frozen = {name for path, name in pairs
            if _get(labels['backbone'], path) == 'frozen'}
  assert frozen == {str(n) for n in golden['frozen_names']}
  assert all(leaf == 'trainable' for leaf in jax.tree.leaves(labels['head']))
  # The logged grad_norm is the norm upstream clips: trainable tensors only.
  want = np.sqrt(np.sum(np.square(golden['grad_norm'])))
  assert float(train._trainable_norm(grads, labels)) == pytest.approx(  # pylint: disable=protected-access
      want, rel=1e-4)


def test_test_time_features_and_scores(golden, model):
  config, module, variables = model
  n = int(golden['test/num_ticks'])
  imgs = weights.images((1, n, 3, 64, 64), weights.TEST_IMAGE_SEED)
  assert np.sum(imgs, dtype=np.float64) == pytest.approx(
      golden['check/test_imgs_sum'], rel=1e-9)
  frames = jnp.asarray(imgs[0].transpose(0, 2, 3, 1))
  feats = np.concatenate([np.asarray(module.apply(
      variables, frames[i:i + 16], method='frame_features'))
                          for i in range(0, n, 16)])
  assert _rel(feats[:8], golden['test/pooled_first8']) < 1e-5
  act, comp, bbox = ssn_models.ssn_test_forward(
      variables['params']['head'], feats, golden['test/proposal_tick_list'],
      golden['test/scale_factor_list'], config.model.num_classes,
      (1, 1, 1), True)
  norm = golden['test/reg_norm_consts']
  bbox = np.asarray(bbox, np.float64) * norm[1] + norm[0]
  assert _rel(act, golden['test/activity_scores']) < 1e-5
  assert _rel(comp, golden['test/completeness_scores']) < 1e-5
  assert _rel(bbox, golden['test/bbox_preds']) < 1e-5


def test_bn_groups_are_per_video_statistics():
  # Two groups of one image each: each is normalised by its own statistics,
  # and the running stats move by the mean of the two groups' statistics.
  x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3, 3, 2)),
                  jnp.float32)
  grouped = resnet.TorchBatchNorm(False, group_size=2)
  whole = resnet.TorchBatchNorm(False)
  variables = whole.init(jax.random.key(0), x)
  out, new = grouped.apply(variables, x, mutable=['batch_stats'])
  a, sa = whole.apply(variables, x[:2], mutable=['batch_stats'])
  b, sb = whole.apply(variables, x[2:], mutable=['batch_stats'])
  np.testing.assert_allclose(out, np.concatenate([a, b]), atol=1e-6)
  for key in ('mean', 'var'):
    np.testing.assert_allclose(
        new['batch_stats'][key],
        (sa['batch_stats'][key] + sb['batch_stats'][key]) / 2, atol=1e-6)


def test_import_checks_the_config(golden, state):
  config = _config(golden)
  config.model.num_classes = 20
  with pytest.raises(errors.TalError, match=r'x.pth: head/activity_fc/bias '
                     r'has shape \(5,\) but the config expects \(21,\)'):
    ssn_convert.ssn_variables_from_state_dict(state, config, source='x.pth')
  head_only = {k: v for k, v in state.items() if k.startswith('cls_head.')}
  with pytest.raises(errors.TalError, match='missing keys'):
    ssn_convert.ssn_variables_from_state_dict(head_only, _config(golden))
  # Feature mode takes the head alone.
  config = _config(golden)
  config.data.mode = 'features'
  got = ssn_convert.ssn_variables_from_state_dict(head_only, config)
  assert set(got) == {'params'} and set(got['params']) == {'head'}
