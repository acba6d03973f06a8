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
