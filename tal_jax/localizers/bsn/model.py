"""BSN's two networks, TEM and PEM, as MMAction2 1.2.0 `localizers/bsn.py`.

TEM (temporal evaluation module), channels last:
  features [B, T, D] -> conv1 k3 (D -> h) ReLU -> conv2 k3 (h -> h) ReLU
  -> conv3 k1 (h -> 3) -> sigmoid(0.01 * x) -> [B, T, 3]
  with channels (action, start, end). `conv1_ratio`/`conv2_ratio` (1.0) scale
  the conv outputs before the ReLUs, `conv3_ratio` (0.01) before the sigmoid,
  biases included, as MMAction2 does.

PEM (proposal evaluation module):
  bsp_feature [..., 32] -> fc1 (32 -> 256) -> ReLU(0.1 * x) -> fc2 (256 -> 1)
  -> sigmoid(0.1 * x) -> [...] (the predicted IoU score).

Parameter trees mirror MMAction2's names: params['conv1']['kernel'] is
'conv1.weight' transposed to Flax layout ([k, in, out]), params['fc1']['kernel']
is 'fc1.weight' transposed ([in, out]). MMAction2's `init_weights` only touches
Conv2d/BatchNorm2d layers, which BSN has none of, so every layer keeps
PyTorch's default init U(+-1/sqrt(fan_in)) for weights and biases; that is what
the Flax initialisers here draw (different random numbers, same law).
`params_from_state_dict` converts a MMAction2 state dict (numpy arrays).
"""

from typing import Mapping

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import numpy as np

from tal_jax.nn import layers


class TEM(nn.Module):
  """Temporal Evaluation Module.

  Attributes:
    temporal_dim: T (only checked against the input).
    feat_dim: D, input feature channels (MMAction2 `tem_feat_dim`).
    hidden_dim: h (MMAction2 `tem_hidden_dim`).
    output_dim: 3 (action, start, end).
    conv1_ratio, conv2_ratio, conv3_ratio: output scales (1, 1, 0.01).
    dtype: compute dtype; parameters and outputs are float32.
  """
  temporal_dim: int = 100
  feat_dim: int = 400
  hidden_dim: int = 512
  output_dim: int = 3
  conv1_ratio: float = 1.0
  conv2_ratio: float = 1.0
  conv3_ratio: float = 0.01
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, features):
    """features: [B, T, D] -> [B, T, 3] float32 (action, start, end)."""
    layers.check_features('TEM', features, self.temporal_dim, self.feat_dim)
    h = self.hidden_dim
    x = features.astype(self.dtype)
    x = layers.conv_relu(x, h, (3,), 1, dtype=self.dtype, name='conv1',
                         scale=self.conv1_ratio)
    x = layers.conv_relu(x, h, (3,), 1, dtype=self.dtype, name='conv2',
                         scale=self.conv2_ratio)
    x = layers.torch_conv(self.output_dim, (1,), h, 0, dtype=self.dtype,
                          name='conv3')(x)
    return nn.sigmoid(self.conv3_ratio * x.astype(jnp.float32))


def _torch_dense(features, in_features, name):
  """nn.Dense with PyTorch's nn.Linear default init."""
  return nn.Dense(features, kernel_init=layers.torch_kernel_init,
                  bias_init=layers.torch_bias_init(in_features),
                  param_dtype=jnp.float32, name=name)


class PEM(nn.Module):
  """Proposal Evaluation Module.

  Attributes:
    feat_dim: BSP feature length (MMAction2 `pem_feat_dim`, 32).
    hidden_dim: MMAction2 `pem_hidden_dim` (256).
    fc1_ratio, fc2_ratio: output scales (0.1, 0.1), biases included.
  """
  feat_dim: int = 32
  hidden_dim: int = 256
  fc1_ratio: float = 0.1
  fc2_ratio: float = 0.1

  @nn.compact
  def __call__(self, bsp_feature):
    """bsp_feature: [..., 32] float32 -> [...] float32 IoU score in (0, 1)."""
    if bsp_feature.shape[-1] != self.feat_dim:
      raise ValueError(f'PEM expects bsp_feature [..., {self.feat_dim}], got '
                       f'{bsp_feature.shape}')
    x = jnp.asarray(bsp_feature, jnp.float32)
    x = nn.relu(self.fc1_ratio *
                _torch_dense(self.hidden_dim, self.feat_dim, 'fc1')(x))
    x = nn.sigmoid(self.fc2_ratio * _torch_dense(1, self.hidden_dim, 'fc2')(x))
    return x[..., 0]


def params_from_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict:
  """MMAction2 TEM/PEM `state_dict()` (numpy, any 'module.' prefix) -> params.

  'convN.weight' [out, in, k] -> params['convN']['kernel'] [k, in, out];
  'fcN.weight' [out, in] -> params['fcN']['kernel'] [in, out]; biases as is.
  """
  params = {}
  for name, value in state_dict.items():
    name = name.removeprefix('module.')
    layer, _, kind = name.rpartition('.')
    value = np.asarray(value, np.float32)
    if kind == 'weight':
      entry = ('kernel', np.transpose(value, tuple(range(value.ndim))[::-1]))
    elif kind == 'bias':
      entry = ('bias', value)
    else:
      continue
    params.setdefault(layer, {})[entry[0]] = entry[1]
  return params


def tem_from_config(config: ml_collections.ConfigDict):
  m = config.model
  return TEM(temporal_dim=m.temporal_dim, feat_dim=m.feat_dim,
                        hidden_dim=m.hidden_dim, dtype=jnp.dtype(config.dtype))


def pem_from_config(config: ml_collections.ConfigDict):
  return PEM(feat_dim=config.model.feat_dim,
                        hidden_dim=config.model.hidden_dim)


def pem_init_inputs(config: ml_collections.ConfigDict) -> np.ndarray:
  return np.zeros((1, 1, config.model.feat_dim), np.float32)


def tem_inputs(config: ml_collections.ConfigDict) -> np.ndarray:
  """[1, T, D] zero features: TEM's example input."""
  return np.zeros((1, config.model.temporal_dim, config.model.feat_dim),
                  np.float32)


def module_and_inputs(config: ml_collections.ConfigDict):
  """(module, example input) of config.model_name 'bsn_tem' or 'bsn_pem'."""
  if config.model_name == 'bsn_pem':
    return pem_from_config(config), pem_init_inputs(config)
  return tem_from_config(config), tem_inputs(config)
