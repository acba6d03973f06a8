"""ResNet backbone and torchvision/MMAction2 weight import against torch.

Golden files come from tests/golden/make_resnet_golden.py (torchvision 0.29.1):
a real torchvision ResNet narrowed to width 8, stage_blocks (2, 1, 1, 1).
"""

import os
import re

import tal_jax  # noqa: F401  (XLA flags before JAX runs)
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tal_jax.nn import resnet_import as tv
from tal_jax.errors import TalError
from tal_jax.nn import resnet

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden')
PTH = os.path.join(GOLDEN, 'resnet_tiny.pth')
TINY = dict(stage_blocks=(2, 1, 1, 1), width=8, num_classes=10)
MODES = {
    'train_all': dict(norm_eval=False, partial_bn=False, frozen_stages=-1),
    'partial_bn': dict(norm_eval=False, partial_bn=True, frozen_stages=-1),
    'norm_eval': dict(norm_eval=True, partial_bn=False, frozen_stages=-1),
    'frozen_stages_1': dict(norm_eval=False, partial_bn=False,
                            frozen_stages=1),
}


@pytest.fixture(scope='module')
def golden():
  return dict(np.load(os.path.join(GOLDEN, 'resnet_tiny.npz')))


@pytest.fixture(scope='module')
def tiny_vars():
  return tv.load_resnet_checkpoint(PTH, **TINY)


def _assert_close(actual, expected, rel=1e-4):
  scale = max(np.abs(expected).max(), 1e-6)
  np.testing.assert_array_less(
      np.abs(np.asarray(actual, np.float32) - expected).max(), rel * scale)


def _n(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_resnet50_shapes_and_param_counts():
  images = jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32)
  for num_classes, count in ((1000, 25_557_032), (0, 23_508_032)):
    model = resnet.ResNet(num_classes=num_classes)
    variables = jax.eval_shape(model.init, jax.random.key(0), images)
    assert _n(variables['params']) == count
    assert _n(variables['batch_stats']) == 53_120
    out = jax.eval_shape(model.apply, variables, images)
    assert out['pooled'].shape == (2, 2048)
    assert out['feature_map'].shape == (2, 7, 7, 2048)
  # The importer's table agrees with the module, key by key.
  shapes = tv.expected_state_dict_shapes(num_classes=1000)
  assert len(shapes) == 320 - 53  # torchvision keys less num_batches_tracked
  assert shapes['layer4.0.conv2.weight'] == (512, 512, 3, 3)
  assert shapes['layer3.0.downsample.0.weight'] == (1024, 512, 1, 1)
  fake = {k: np.zeros(s, np.float32) for k, s in shapes.items()}
  imported = tv.resnet_variables_from_state_dict(fake, num_classes=1000)
  got = jax.tree.map(np.shape, imported)
  want = jax.tree.map(lambda x: x.shape, dict(variables))
  want['params']['fc'] = {'kernel': (2048, 1000), 'bias': (1000,)}
  assert got == want


def test_eval_mode_matches_torch(golden, tiny_vars):
  out = jax.jit(resnet.ResNet(**TINY).apply)(tiny_vars, golden['images'])
  for key in ('feature_map', 'pooled', 'logits'):
    _assert_close(out[key], golden[f'eval/{key}'])


def test_bf16_compute_keeps_float32_params(golden, tiny_vars):
  model = resnet.ResNet(**TINY, dtype=jnp.bfloat16)
  out = jax.jit(model.apply)(tiny_vars, golden['images'])
  assert out['feature_map'].dtype == jnp.bfloat16
  assert out['pooled'].dtype == jnp.float32
  _assert_close(out['logits'], golden['eval/logits'], rel=0.05)
  variables = jax.eval_shape(model.init, jax.random.key(0),
                             golden['images'][:1])
  assert {x.dtype for x in jax.tree.leaves(variables)} == {
      np.dtype('float32')}


def _mmaction_key(torch_key):
  """torchvision name -> MMAction2 0.24.1 ConvModule name."""
  key = re.sub(r'^conv1\.', 'conv1.conv.', torch_key)
  key = re.sub(r'^bn1\.', 'conv1.bn.', key)
  key = re.sub(r'\.downsample\.0\.', '.downsample.conv.', key)
  key = re.sub(r'\.downsample\.1\.', '.downsample.bn.', key)
  key = re.sub(r'\.conv(\d)\.weight$', r'.conv\1.conv.weight', key)
  return re.sub(r'\.bn(\d)\.', r'.conv\1.bn.', key)


def test_key_renames_match_mmaction2_names():
  keys = list(tv.expected_state_dict_shapes((2, 1), 8, 5, 10))
  mm = [tv.mmaction_key(k) for k in keys]
  assert mm == [_mmaction_key(k) for k in keys]
  assert 'layer1.1.conv3.bn.running_var' in mm
  assert [tv.torchvision_key(k) for k in mm] == keys
  assert [tv.torchvision_key(k) for k in keys] == keys


def test_mmaction2_layout_under_backbone_prefix(tiny_vars):
  from tal_jax.convert.pth import load_pth
  sd = load_pth(PTH)
  mm = {'backbone.' + _mmaction_key(k): v for k, v in sd.items()
        if not k.startswith('fc.')}
  assert 'backbone.layer1.0.conv2.bn.running_var' in mm
  assert 'backbone.layer2.0.downsample.conv.weight' in mm
  mm['cls_head.activity_fc.weight'] = np.zeros((3, 4), np.float32)
  got = tv.resnet_variables_from_state_dict(mm, **dict(TINY, num_classes=0))
  want = dict(tiny_vars, params=dict(tiny_vars['params']))
  del want['params']['fc']
  jax.tree.map(np.testing.assert_array_equal, got, want)


def _get(tree, path):
  for k in path:
    tree = tree[getattr(k, 'key', k)]
  return tree


def _torch_name(path):
  """Flax param path -> torchvision key."""
  names = [getattr(k, 'key', str(k)) for k in path]
  leaf = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias',
          'mean': 'running_mean', 'var': 'running_var'}[names[-1]]
  mod = names[:-1]
  if mod[0].startswith('layer'):
    stage, block = mod[0].split('_')
    sub = {'downsample_conv': 'downsample.0',
           'downsample_bn': 'downsample.1'}.get(mod[1], mod[1])
    mod = [stage, block, sub]
  return '.'.join(mod + [leaf])


@pytest.mark.parametrize('mode', list(MODES))
def test_train_mode_bn_matches_torch(golden, tiny_vars, mode):
  """Train-mode outputs, running-stat updates and frozen set per BN mode."""
  model = resnet.ResNet(**TINY, **MODES[mode])
  apply = jax.jit(lambda v, x: model.apply(v, x, train=True,
                                           mutable=['batch_stats']))
  out, updates = apply(tiny_vars, golden['images'])
  _assert_close(out['logits'], golden[f'{mode}/logits'])
  _assert_close(out['pooled'], golden[f'{mode}/pooled'])
  for path, value in jax.tree_util.tree_leaves_with_path(
      updates['batch_stats']):
    _assert_close(value, golden[f'{mode}/stats/{_torch_name(path)}'])
  changed = {tuple(getattr(k, 'key', k) for k in path[:-1])
             for path, value in jax.tree_util.tree_leaves_with_path(
                 updates['batch_stats'])
             if np.any(value != _get(tiny_vars['batch_stats'], path))}
  assert changed == set(resnet.bn_layers_using_batch_stats(model))
  labels = resnet.param_labels(tiny_vars['params'],
                               MODES[mode]['partial_bn'],
                               MODES[mode]['frozen_stages'])
  for path, label in jax.tree_util.tree_leaves_with_path(labels):
    name = _torch_name(path)  # torch grad None <=> requires_grad False
    torch_frozen = float(golden[f'{mode}/grad_norm/{name}']) < 0
    assert (label == 'frozen') == torch_frozen, name


def test_partial_bn_gradients_match_torch(golden, tiny_vars):
  """SSN's mode: grads through bn1's batch stats and the eval-mode BNs."""
  model = resnet.ResNet(**TINY, partial_bn=True)

  @jax.jit
  def grad_fn(params, images, proj):
    def loss_fn(params):
      out, _ = model.apply(dict(tiny_vars, params=params), images,
                           train=True, mutable=['batch_stats'])
      return jnp.sum(out['logits'] * proj)
    return jax.grad(loss_fn)(params)

  grads = grad_fn(tiny_vars['params'], golden['images'], golden['proj'])
  labels = resnet.param_labels(tiny_vars['params'], partial_bn=True)
  for (path, grad), label in zip(jax.tree_util.tree_leaves_with_path(grads),
                                 jax.tree.leaves(labels)):
    if label == 'frozen':
      continue
    name = _torch_name(path)
    grad_t = golden[f'partial_bn/grad/{name}']
    grad_t = grad_t.transpose(2, 3, 1, 0) if grad_t.ndim == 4 else grad_t
    grad_t = grad_t.T if name == 'fc.weight' else grad_t
    _assert_close(grad, grad_t, rel=1e-4)


def test_partial_bn_labels_and_optimizer(tiny_vars):
  """SSN's partial BN: only bn1's affine trains among BNs; convs train."""
  params = tiny_vars['params']
  labels = resnet.param_labels(params, partial_bn=True)
  assert labels['bn1'] == {'scale': 'trainable', 'bias': 'trainable'}
  assert labels['layer1_0']['bn2']['scale'] == 'frozen'
  assert labels['layer2_0']['downsample_bn']['bias'] == 'frozen'
  assert labels['layer2_0']['downsample_conv']['kernel'] == 'trainable'
  assert labels['fc']['kernel'] == 'trainable'
  stages = resnet.param_labels(params, frozen_stages=1)
  assert stages['conv1']['kernel'] == 'frozen'
  assert stages['layer1_1']['conv3']['kernel'] == 'frozen'
  assert stages['layer2_0']['bn1']['scale'] == 'trainable'
  assert set(jax.tree.leaves(resnet.param_labels(params))) == {'trainable'}
  tx = optax.multi_transform(
      {'trainable': optax.sgd(0.1, momentum=0.9), 'frozen':
       optax.set_to_zero()}, labels)

  @jax.jit
  def step(params):
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    return optax.apply_updates(params, updates)

  new = step(params)
  np.testing.assert_array_equal(new['layer1_0']['bn1']['scale'],
                                params['layer1_0']['bn1']['scale'])
  np.testing.assert_allclose(new['bn1']['scale'],
                             params['bn1']['scale'] - 0.1, rtol=1e-6)


def test_import_errors(tmp_path):
  from tal_jax.convert.pth import load_pth
  sd = load_pth(PTH)
  with pytest.raises(TalError, match=r'missing keys .*layer2\.0\.conv1'):
    tv.resnet_variables_from_state_dict(
        {k: v for k, v in sd.items() if not k.startswith('layer2.0.conv1')},
        **TINY)
  with pytest.raises(TalError, match=r'unexpected keys .*layer4\.1\.conv1'):
    tv.resnet_variables_from_state_dict(
        dict(sd, **{'layer4.1.conv1.weight': np.zeros(1)}), **TINY)
  with pytest.raises(TalError, match=r'missing keys .*layer1\.2'):
    tv.load_resnet_checkpoint(PTH, stage_blocks=(3, 1, 1, 1), width=8)
  with pytest.raises(TalError, match=r'conv1\.weight has shape \(8, 3, 7, 7\)'
                     r', expected \(64, 3, 7, 7\)'):
    tv.resnet_variables_from_state_dict(sd, stage_blocks=(2, 1, 1, 1))
  with pytest.raises(TalError, match='no such file'):
    tv.load_resnet_checkpoint(str(tmp_path / 'nope.pth'))


@pytest.mark.parametrize('mode', list(MODES))
def test_resnet50_modes_match_mmaction2(mode):
  """Frozen params and batch-stat BNs = MMAction2 0.24.1 ResNet(50).train()."""
  import json
  with open(os.path.join(GOLDEN, 'resnet_mmaction_modes.json')) as f:
    record = json.load(f)[mode]
  model = resnet.ResNet(**MODES[mode])
  params = jax.eval_shape(model.init, jax.random.key(0),
                          jax.ShapeDtypeStruct((1, 32, 32, 3),
                                               jnp.float32))['params']
  labels = resnet.param_labels(params, MODES[mode]['partial_bn'],
                               MODES[mode]['frozen_stages'])
  frozen = {_torch_name(path) for path, label in
            jax.tree_util.tree_leaves_with_path(labels) if label == 'frozen'}
  assert frozen == {tv.torchvision_key(n) for n in record['frozen_params']}
  bns = {_torch_name([*path, 'scale'])
         for path in resnet.bn_layers_using_batch_stats(model)}
  assert bns == {tv.torchvision_key(n + '.weight')
                 for n in record['bn_train']}
