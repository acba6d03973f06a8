"""Random-init TSN recogniser checkpoints (MMAction2 keys), without torch.

For the tests and the embedded example, which must run without downloads:
`random_state_dict` draws every entry of an MMAction2 TSN state dict
(`backbone.*` ConvModule keys, `cls_head.fc_cls.*`) from one seeded
generator (He-normal convs, BN affine near 1 / 0, running statistics
non-trivial, fc N(0, 0.01) as TSNHead's init_std), and `write_checkpoint`
saves it as a torch .pth (convert.pth_write).
"""

from typing import Sequence

import numpy as np

from tal_jax.convert import pth_write
from tal_jax.nn import resnet_import
from tal_jax.features import tsn

def _draw(rng: np.random.Generator, key: str, shape) -> np.ndarray:
  if key.endswith('running_var'):
    return (0.5 + rng.random(shape)).astype(np.float32)
  if key.endswith('running_mean'):
    return (0.1 * rng.standard_normal(shape)).astype(np.float32)
  if '.bn.' in key:
    base = 1.0 if key.endswith('weight') else 0.0
    return (base + 0.1 * rng.standard_normal(shape)).astype(np.float32)
  if key == 'cls_head.fc_cls.weight':
    return (0.01 * rng.standard_normal(shape)).astype(np.float32)
  if key == 'cls_head.fc_cls.bias':
    return np.zeros(shape, np.float32)
  fan_out = shape[0] * int(np.prod(shape[2:]))
  return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_out)).astype(
      np.float32)


def random_state_dict(stream: tsn.Stream = tsn.RGB,
                      stage_blocks: Sequence[int] = (1, 1, 1, 1),
                      width: int = 64, num_classes: int = 200,
                      seed: int = 0) -> dict[str, np.ndarray]:
  """An MMAction2 TSN state dict {key: float32 array} (see module doc)."""
  shapes = resnet_import.expected_state_dict_shapes(
      tuple(stage_blocks), width, in_channels=stream.in_channels)
  shapes = {'backbone.' + resnet_import.mmaction_key(k): v for k, v in shapes.items()}
  feat_dim = width * 2**(len(stage_blocks) - 1) * 4
  shapes['cls_head.fc_cls.weight'] = (num_classes, feat_dim)
  shapes['cls_head.fc_cls.bias'] = (num_classes,)
  rng = np.random.default_rng(seed)
  return {k: _draw(rng, k, tuple(s)) for k, s in shapes.items()}


def write_checkpoint(path: str, stream: tsn.Stream = tsn.RGB,
                     **kwargs) -> str:
  """Saves random_state_dict(stream, **kwargs) as a .pth; returns path."""
  pth_write.save_pth(path, random_state_dict(stream, **kwargs), wrap=True)
  return path
