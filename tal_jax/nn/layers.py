"""PyTorch-initialised layers: the default inits of torch's Conv and Linear."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def torch_kernel_init(key, shape, dtype=jnp.float32):
  """PyTorch's conv/linear default: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)).

  `shape` is a Flax kernel shape (*spatial, in_features/groups, out_features), so
  fan_in = prod(shape[:-1]).
  """
  bound = 1.0 / math.sqrt(int(np.prod(shape[:-1])))
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def torch_bias_init(fan_in: int):
  """Returns PyTorch's default bias init U(+-1/sqrt(fan_in)) for a layer."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def torch_conv(features: int, kernel_size: tuple, in_features: int,
               padding: int = 0, groups: int = 1, dtype=jnp.float32,
               name: str | None = None) -> nn.Conv:
  """nn.Conv initialised and padded like PyTorch's Conv{1,2,3}d.

  Args:
    features: output channels.
    kernel_size: spatial kernel, e.g. (3,) for Conv1d or (3, 3) for Conv2d.
    in_features: input channels (needed for the bias init's fan_in).
    padding: symmetric zero padding per spatial dim (PyTorch `padding`).
    groups: PyTorch `groups` (feature_group_count).
    dtype: compute dtype; parameters stay float32.
    name: Flax module name.
  Returns:
    nn.Conv mapping [..., *spatial, in_features] -> [..., *spatial, features].
  """
  fan_in = in_features // groups * int(np.prod(kernel_size))
  return nn.Conv(
      features,
      tuple(kernel_size),
      padding=[(padding, padding)] * len(kernel_size),
      feature_group_count=groups,
      dtype=dtype,
      param_dtype=jnp.float32,
      kernel_init=torch_kernel_init,
      bias_init=torch_bias_init(fan_in),
      name=name)


def conv_relu(x, features: int, kernel_size: tuple, padding: int = 0,
              groups: int = 1, dtype=jnp.float32, name: str | None = None,
              scale: float = 1.0):
  """ReLU(scale * torch_conv(x)): [..., *spatial, C] -> [..., *spatial, features].

  `scale` multiplies the conv output, bias included (MMAction2 BSN's
  `conv*_ratio`); at 1.0 no multiply is done. Call it inside a compact
  module: the conv is that module's child `name`.
  """
  y = torch_conv(features, kernel_size, x.shape[-1], padding, groups, dtype,
                 name)(x)
  return nn.relu(y if scale == 1.0 else scale * y)


def check_features(model: str, features, temporal_dim: int, feat_dim: int):
  """Raises ValueError unless `features` is [B, temporal_dim, feat_dim]."""
  if features.shape[-2:] != (temporal_dim, feat_dim):
    raise ValueError(f'{model} expects features [B, {temporal_dim}, '
                     f'{feat_dim}], got {features.shape}')
