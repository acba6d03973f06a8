"""ResNet-50 backbone (torchvision v1.5 layout), MMAction2 0.24.1 BN modes.

Layout as torchvision's `resnet50` and MMAction2 0.24.1's `ResNet(depth=50,
style='pytorch')`: stem conv 7x7/2 + BN + ReLU + max-pool 3x3/2 (padding 1),
then four stages of bottlenecks (1x1, 3x3, 1x1; expansion 4) whose stride sits
on the 3x3 conv; the first block of each stage has a 1x1 conv + BN shortcut.
Input is channels last, `images: [B, H, W, 3]`.

Parameter tree (Flax names; `tal_jax.nn.resnet_import` maps torch names):
  conv1, bn1                       stem ('conv1.weight', 'bn1.*')
  layer{i}_{j}/conv{k}, bn{k}      block j of stage i, k = 1..3
  layer{i}_{j}/downsample_conv, downsample_bn   shortcut of block 0
  fc                               only with num_classes > 0
BN running statistics live in the 'batch_stats' collection ('mean', 'var');
BN affine parameters are 'scale' and 'bias' in 'params'.

BatchNorm follows torch exactly: eps 1e-5, momentum 0.1, normalisation with the
biased batch variance, running variance updated with the unbiased one.

BN modes (MMAction2 0.24.1 `ResNet.train()`), in train mode (`train=True`):
  norm_eval=True    every BN uses its running stats and never updates them;
                    its affine parameters still train (norm_eval only calls
                    `.eval()`, it does not set requires_grad=False).
  partial_bn=True   only the first BN (the stem's bn1) uses batch statistics
                    and updates its running stats; every other BN uses running
                    stats and its scale/bias are frozen (SSN's config:
                    norm_eval=False, partial_bn=True).
  frozen_stages=n   n >= 0 freezes the stem (conv1 + bn1, bn1 in eval mode);
                    stages 1..n are frozen too (all params, BNs in eval mode).
Frozen parameters are an optimizer matter: `param_labels` returns the
'trainable' / 'frozen' label tree for `optax.multi_transform`.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from tal_jax.nn.layers import torch_bias_init
from tal_jax.nn.layers import torch_kernel_init

RESNET50_STAGE_BLOCKS = (3, 4, 6, 3)
EXPANSION = 4
BN_EPS = 1e-5
BN_MOMENTUM = 0.1

# torchvision / mmcv kaiming_init: normal, fan_out, gain sqrt(2) (ReLU).
_conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


class TorchBatchNorm(nn.Module):
  """BatchNorm2d with torch's train-mode semantics, channels last.

  Attributes:
    use_running_average: normalise with the running stats (torch eval mode).
    dtype: output dtype; statistics are always computed in float32.
    group_size: batch statistics per consecutive group of this many images
      (None: the whole batch), as data parallelism with one group per GPU
      computes them; the running stats move by the mean of the groups'
      statistics.
  """
  use_running_average: bool
  dtype: Any = jnp.float32
  group_size: int | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [B, ..., C] -> [B, ..., C] in `dtype`."""
    c = x.shape[-1]
    scale = self.param('scale', nn.initializers.ones, (c,), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (c,), jnp.float32)
    ra_mean = self.variable('batch_stats', 'mean', jnp.zeros, (c,),
                            jnp.float32)
    ra_var = self.variable('batch_stats', 'var', jnp.ones, (c,), jnp.float32)
    x32 = x.astype(jnp.float32)
    if self.use_running_average:
      mul = scale * jax.lax.rsqrt(ra_var.value + BN_EPS)
      return (x32 * mul + (bias - ra_mean.value * mul)).astype(self.dtype)
    size = self.group_size or x.shape[0]
    if x.shape[0] % size:
      raise ValueError(f'batch {x.shape[0]} is not a multiple of the BN '
                       f'group size {size}')
    xg = x32.reshape((-1, size) + x.shape[1:])      # [G, n, ..., C]
    axes = tuple(range(1, xg.ndim - 1))
    mean = jnp.mean(xg, axes, keepdims=True)
    var = jnp.mean(jnp.square(xg - mean), axes, keepdims=True)
    if not self.is_initializing():
      n = xg[0].size // c
      unbiased = var * (n / max(n - 1, 1))
      ra_mean.value = ((1 - BN_MOMENTUM) * ra_mean.value +
                       BN_MOMENTUM * mean.reshape(-1, c).mean(0))
      ra_var.value = ((1 - BN_MOMENTUM) * ra_var.value +
                      BN_MOMENTUM * unbiased.reshape(-1, c).mean(0))
    mul = scale * jax.lax.rsqrt(var + BN_EPS)
    out = xg * mul + (bias - mean * mul)
    return out.reshape(x.shape).astype(self.dtype)


def _conv(features: int, kernel: int, stride: int, dtype: Any,
          name: str) -> nn.Conv:
  """Bias-free conv with torch padding kernel // 2."""
  pad = kernel // 2
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=[(pad, pad), (pad, pad)], use_bias=False,
                 dtype=dtype, param_dtype=jnp.float32, kernel_init=_conv_init,
                 name=name)


class Bottleneck(nn.Module):
  """torchvision Bottleneck (v1.5): stride on the 3x3 conv.

  Attributes:
    planes: width of the 1x1/3x3 convs; the output has planes * 4 channels.
    stride: spatial stride of the 3x3 conv and of the shortcut.
    downsample: whether the shortcut is a 1x1 conv + BN.
    bn_eval: use running stats in all three (four) BNs.
    dtype: compute dtype.
    bn_group_size: see TorchBatchNorm.
  """
  planes: int
  stride: int
  downsample: bool
  bn_eval: bool
  dtype: Any = jnp.float32
  bn_group_size: int | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [B, H, W, Cin] -> [B, H/stride, W/stride, planes * 4]."""
    bn = lambda name: TorchBatchNorm(self.bn_eval, self.dtype,
                                     self.bn_group_size, name=name)
    out = nn.relu(bn('bn1')(_conv(self.planes, 1, 1, self.dtype, 'conv1')(x)))
    out = _conv(self.planes, 3, self.stride, self.dtype, 'conv2')(out)
    out = nn.relu(bn('bn2')(out))
    out = bn('bn3')(_conv(self.planes * EXPANSION, 1, 1, self.dtype,
                          'conv3')(out))
    if self.downsample:
      x = _conv(self.planes * EXPANSION, 1, self.stride, self.dtype,
                'downsample_conv')(x)
      x = bn('downsample_bn')(x)
    return nn.relu(out + x)


def _bn_eval(train: bool, stage: int, is_first_bn: bool, norm_eval: bool,
             partial_bn: bool, frozen_stages: int) -> bool:
  """Whether one BN uses running stats (MMAction2 0.24.1 ResNet.train()).

  `stage` is 0 for the stem and i for layer{i}.
  """
  return (not train or norm_eval or stage <= frozen_stages
          or (partial_bn and not is_first_bn))


class ResNet(nn.Module):
  """ResNet with bottleneck blocks; ResNet-50 by default.

  Attributes:
    stage_blocks: blocks per stage; (3, 4, 6, 3) is ResNet-50.
    width: stem channels and stage-1 planes (64 for ResNet-50); stage i has
      width * 2**(i-1) planes and width * 2**(i-1) * 4 output channels.
    num_classes: > 0 adds torchvision's `fc` classifier on the pooled feature.
    norm_eval, partial_bn, frozen_stages: MMAction2 0.24.1 BN / freezing modes
      (see the module docstring).
    dtype: compute dtype (e.g. jnp.bfloat16); parameters and BN statistics
      stay float32.
    bn_group_size: batch statistics per group of this many images (SSN: the
      frames of the videos one GPU holds upstream); None: the whole batch.
  """
  stage_blocks: Sequence[int] = RESNET50_STAGE_BLOCKS
  width: int = 64
  num_classes: int = 0
  norm_eval: bool = False
  partial_bn: bool = False
  frozen_stages: int = -1
  dtype: Any = jnp.float32
  bn_group_size: int | None = None

  @nn.compact
  def __call__(self, images: jax.Array,
               train: bool = False) -> dict[str, jax.Array]:
    """Runs the backbone.

    Args:
      images: [B, H, W, 3] normalised images (MMAction2 SSN: BGR minus
        [104, 117, 128]; torchvision: RGB ImageNet mean/std).
      train: torch train mode (batch statistics where the BN mode allows);
        call `apply(..., mutable=['batch_stats'])` when it is True.
    Returns:
      'feature_map': [B, ceil(H/32), ceil(W/32), 32 * width] in `dtype`
        (7x7x2048 for a 224x224 ResNet-50 input).
      'pooled': [B, 32 * width] float32, spatial mean of the feature map.
      'logits': [B, num_classes] float32, only if num_classes > 0.
    """
    modes = dict(norm_eval=self.norm_eval, partial_bn=self.partial_bn,
                 frozen_stages=self.frozen_stages)
    x = _conv(self.width, 7, 2, self.dtype, 'conv1')(images.astype(self.dtype))
    x = TorchBatchNorm(_bn_eval(train, 0, True, **modes), self.dtype,
                       self.bn_group_size, name='bn1')(x)
    x = nn.max_pool(nn.relu(x), (3, 3), strides=(2, 2),
                    padding=((1, 1), (1, 1)))
    for i, blocks in enumerate(self.stage_blocks):
      bn_eval = _bn_eval(train, i + 1, False, **modes)
      for j in range(blocks):
        x = Bottleneck(self.width * 2**i, 2 if (i > 0 and j == 0) else 1,
                       downsample=(j == 0), bn_eval=bn_eval, dtype=self.dtype,
                       bn_group_size=self.bn_group_size,
                       name=f'layer{i + 1}_{j}')(x)
    out = {'feature_map': x,
           'pooled': jnp.mean(x.astype(jnp.float32), axis=(1, 2))}
    if self.num_classes > 0:
      fan_in = out['pooled'].shape[-1]
      out['logits'] = nn.Dense(
          self.num_classes, dtype=jnp.float32, param_dtype=jnp.float32,
          kernel_init=torch_kernel_init, bias_init=torch_bias_init(fan_in),
          name='fc')(out['pooled'])
    return out


def init_variables(model: ResNet, rng: jax.Array,
                   image_size: int = 64) -> dict:
  """{'params': ..., 'batch_stats': ...} for `model` (torchvision init)."""
  images = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  return dict(jax.jit(model.init)(rng, images))


def bn_layers_using_batch_stats(model: ResNet) -> list[tuple[str, ...]]:
  """Flax paths of the BNs that use (and update) batch stats when train=True.

  ('bn1',) is the stem; ('layer1_0', 'bn2') a block's. Same rule as the module.
  """
  modes = dict(norm_eval=model.norm_eval, partial_bn=model.partial_bn,
               frozen_stages=model.frozen_stages)
  paths = [] if _bn_eval(True, 0, True, **modes) else [('bn1',)]
  for i, blocks in enumerate(model.stage_blocks):
    if _bn_eval(True, i + 1, False, **modes):
      continue
    for j in range(blocks):
      names = ['bn1', 'bn2', 'bn3'] + (['downsample_bn'] if j == 0 else [])
      paths += [(f'layer{i + 1}_{j}', name) for name in names]
  return paths


def _is_frozen(path: tuple[str, ...], partial_bn: bool,
               frozen_stages: int) -> bool:
  """Whether the param at `path` has requires_grad=False in MMAction2 0.24.1."""
  top = path[0]
  if top in ('conv1', 'bn1'):
    return frozen_stages >= 0
  if top.startswith('layer'):
    stage = int(top[len('layer'):].split('_')[0])
    if stage <= frozen_stages:
      return True
    is_bn = path[1].startswith('bn') or path[1] == 'downsample_bn'
    return partial_bn and is_bn
  return False  # fc


def param_labels(params: Any, partial_bn: bool = False,
                 frozen_stages: int = -1) -> Any:
  """'trainable' / 'frozen' for every leaf of a ResNet `params` tree.

  Use with `optax.multi_transform({'trainable': tx, 'frozen':
  optax.set_to_zero()}, labels)`: frozen leaves then get no update, no weight
  decay and no share of a gradient-clipping norm, as torch parameters with
  requires_grad=False. norm_eval freezes nothing (see the module docstring).
  """
  def label(path, _):
    names = tuple(getattr(k, 'key', str(k)) for k in path)
    return 'frozen' if _is_frozen(names, partial_bn, frozen_stages) else (
        'trainable')
  return jax.tree_util.tree_map_with_path(label, params)
