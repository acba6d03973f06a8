"""Seeded numpy weights and inputs of the SSN frame-mode golden fixture.

Pure numpy (no torch): `make_ssn_frames_golden.py` loads these arrays into
MMAction2 0.24.1's SSN, and the CI tests regenerate the identical arrays from
the names, shapes and seeds stored in the npz. `np.random.default_rng`
(PCG64 + its ziggurat normal) gives the same bits under numpy 1.23 and 2.4;
the npz also holds `check/*` sums to prove it.

Weight rule, per torch state-dict entry, drawn in the given (state-dict) order
from ONE generator, each draw float64 then cast to float32:
  conv weight [O, I, kh, kw]   N(0, 1) * sqrt(2 / (I * kh * kw))   (He)
  linear weight [O, I]         N(0, 1) * sqrt(1 / I)
  other bias [O]               N(0, 1) * 0.1
  BN weight [C]                1 + 0.1 * N(0, 1)
  BN bias [C]                  0.1 * N(0, 1)
  BN running_mean [C]          0.1 * N(0, 1)
  BN running_var [C]           0.5 + 1.5 * U[0, 1)
  BN num_batches_tracked []    0 (int64, no draw)
A module is a BN when its '<module>.running_mean' entry exists.
"""

from typing import Iterable, Sequence

import numpy as np

WEIGHT_SEED = 20261126
TRAIN_IMAGE_SEED = 1
TEST_IMAGE_SEED = 2
DIRECTION_SEED = 3
MAX_NDIM = 4


def _bn_modules(names: Iterable[str]) -> set[str]:
  suffix = '.running_mean'
  return {n[:-len(suffix)] for n in names if n.endswith(suffix)}


def _draw(rng: np.random.Generator, leaf: str, shape: tuple[int, ...],
          is_bn: bool) -> np.ndarray:
  """One state-dict entry (see the module docstring for the rule)."""
  if leaf == 'num_batches_tracked':
    return np.zeros(shape, np.int64)
  if is_bn:
    if leaf == 'running_var':
      value = 0.5 + 1.5 * rng.random(shape)
    else:
      normal = rng.standard_normal(shape)
      value = 1.0 + 0.1 * normal if leaf == 'weight' else 0.1 * normal
  elif leaf == 'weight' and len(shape) >= 2:
    fan_in = int(np.prod(shape[1:]))
    gain = 2.0 if len(shape) == 4 else 1.0
    value = rng.standard_normal(shape) * np.sqrt(gain / fan_in)
  else:
    value = 0.1 * rng.standard_normal(shape)
  return value.astype(np.float32)


def state_dict(names_and_shapes: Sequence[tuple[str, Sequence[int]]],
               seed: int = WEIGHT_SEED) -> dict[str, np.ndarray]:
  """{torch name: array} for the model's state-dict entries, in their order.

  Args:
    names_and_shapes: (torch state-dict key, shape) in the model's own
      state_dict() order (the order fixes the random stream).
    seed: generator seed.
  Returns:
    float32 arrays (int64 zeros for 'num_batches_tracked').
  """
  names = [n for n, _ in names_and_shapes]
  bns = _bn_modules(names)
  rng = np.random.default_rng(seed)
  out = {}
  for name, shape in names_and_shapes:
    module, leaf = name.rsplit('.', 1)
    out[name] = _draw(rng, leaf, tuple(int(s) for s in shape), module in bns)
  return out


def encode_shapes(names_and_shapes) -> tuple[np.ndarray, np.ndarray]:
  """(names [N] str, shapes [N, MAX_NDIM] int64 padded with -1) for an npz."""
  names = np.array([n for n, _ in names_and_shapes])
  shapes = np.full((len(names), MAX_NDIM), -1, np.int64)
  for i, (_, shape) in enumerate(names_and_shapes):
    shapes[i, :len(shape)] = shape
  return names, shapes


def decode_shapes(names: np.ndarray,
                  shapes: np.ndarray) -> list[tuple[str, tuple[int, ...]]]:
  """Inverse of `encode_shapes`."""
  return [(str(n), tuple(int(s) for s in row if s >= 0))
          for n, row in zip(names, shapes)]


def images(shape: Sequence[int], seed: int) -> np.ndarray:
  """Normalised input images: N(0, 1) float32 of `shape` (torch layout)."""
  return np.random.default_rng(seed).standard_normal(tuple(shape)).astype(
      np.float32)


def grad_direction(index: int, shape: Sequence[int],
                   seed: int = DIRECTION_SEED) -> np.ndarray:
  """Unit float64 direction for the parameter at state-dict position `index`.

  The golden stores dot(grad.ravel(), direction.ravel()) per trainable param.
  """
  v = np.random.default_rng([seed, index]).standard_normal(tuple(shape))
  return v / np.sqrt(np.sum(v * v))
