"""Import torchvision / MMAction2 ResNet-50 weights into tal_jax ResNet.

Two key layouts are accepted (numpy state dicts, e.g. from
`tal_jax.convert.pth.load_pth`, which reads a .pth without torch):
  torchvision   'conv1.weight', 'bn1.*', 'layer1.0.conv1.weight',
                'layer1.0.bn1.*', 'layer1.0.downsample.0.weight',
                'layer1.0.downsample.1.*', 'fc.weight', 'fc.bias'
  MMAction2     (ConvModule wrappers) 'conv1.conv.weight', 'conv1.bn.*',
                'layer1.0.conv1.conv.weight', 'layer1.0.conv1.bn.*',
                'layer1.0.downsample.conv.weight', 'layer1.0.downsample.bn.*',
                usually under 'backbone.' in a localizer/recognizer checkpoint.
If any key starts with 'backbone.', only those keys are used (the heads of an
SSN/TSN checkpoint are someone else's). BN buffers 'num_batches_tracked' are
ignored (momentum is fixed at 0.1), and so is the torchvision classifier 'fc.*'
unless the Flax model has one (num_classes > 0), as MMAction2 does when it
initialises a backbone from 'torchvision://resnet50'.

Conv weights [O, I, kh, kw] become Flax kernels [kh, kw, I, O]; fc weight
[K, C] becomes [C, K]; BN weight/bias -> params scale/bias, running_mean/var
-> batch_stats mean/var.
"""

import re
from typing import Mapping, Sequence

import numpy as np

from tal_jax.convert.pth import load_pth
from tal_jax.errors import TalError
from tal_jax.nn.resnet import EXPANSION
from tal_jax.nn.resnet import RESNET50_STAGE_BLOCKS

_BN_FIELDS = {'weight': ('params', 'scale'), 'bias': ('params', 'bias'),
              'running_mean': ('batch_stats', 'mean'),
              'running_var': ('batch_stats', 'var')}

# The same ResNet layer named by torchvision and by MMAction2's ConvModule
# wrappers: (torchvision, MMAction2) fragments of a key, renamed in this order
# either way; '^' anchors a fragment at the key's start, '#' is one digit.
# Convs come before bns ('bn1.' becomes 'conv1.bn.', which holds 'conv1.').
_NAME_PAIRS = (
    ('^conv1.', '^conv1.conv.'),
    ('^bn1.', '^conv1.bn.'),
    ('.downsample.0.', '.downsample.conv.'),
    ('.downsample.1.', '.downsample.bn.'),
    ('.conv#.', '.conv#.conv.'),
    ('.bn#.', '.conv#.bn.'),
)


def _renames(source: int, target: int) -> tuple:
  """(compiled pattern, replacement) per _NAME_PAIRS entry, renaming its
  fragment `source` (0 torchvision, 1 MMAction2) to its fragment `target`."""
  renames = []
  for pair in _NAME_PAIRS:
    fragment = pair[source]
    anchor = '^' if fragment.startswith('^') else ''
    parts = fragment.removeprefix('^').split('#')
    pattern = anchor + r'(\d)'.join(re.escape(part) for part in parts)
    repl = pair[target].removeprefix('^').replace('#', r'\1')
    renames.append((re.compile(pattern), repl))
  return tuple(renames)


_TO_TORCHVISION = _renames(1, 0)
_TO_MMACTION = _renames(0, 1)


def _rename(key: str, renames: tuple) -> str:
  for pattern, repl in renames:
    key = pattern.sub(repl, key)
  return key


def torchvision_key(key: str) -> str:
  """Renames one MMAction2 ResNet key to torchvision's ('conv1.bn.weight' ->
  'bn1.weight'); torchvision keys come back unchanged."""
  return _rename(key, _TO_TORCHVISION)


def mmaction_key(key: str) -> str:
  """Renames one torchvision ResNet key to MMAction2's ('layer1.0.bn2.weight'
  -> 'layer1.0.conv2.bn.weight'); the inverse of torchvision_key."""
  return _rename(key, _TO_MMACTION)


def _backbone_only(state_dict: Mapping[str, np.ndarray]) -> dict:
  """Keys under 'backbone.' (prefix stripped) if there are any, else all."""
  prefix = 'backbone.'
  if any(k.startswith(prefix) for k in state_dict):
    return {k[len(prefix):]: v for k, v in state_dict.items()
            if k.startswith(prefix)}
  return dict(state_dict)


def _layer_table(stage_blocks: Sequence[int], width: int, num_classes: int,
                 in_channels: int = 3):
  """(torch module, flax module path, kind, torch weight shape) per layer."""
  table = [('conv1', ('conv1',), 'conv', (width, in_channels, 7, 7)),
           ('bn1', ('bn1',), 'bn', (width,))]
  inplanes = width
  for i, blocks in enumerate(stage_blocks):
    planes = width * 2**i
    for j in range(blocks):
      t, f = f'layer{i + 1}.{j}', f'layer{i + 1}_{j}'
      convs = [(planes, inplanes, 1, 1), (planes, planes, 3, 3),
               (planes * EXPANSION, planes, 1, 1)]
      for k, shape in enumerate(convs, 1):
        table.append((f'{t}.conv{k}', (f, f'conv{k}'), 'conv', shape))
        table.append((f'{t}.bn{k}', (f, f'bn{k}'), 'bn', (shape[0],)))
      if j == 0:
        table.append((f'{t}.downsample.0', (f, 'downsample_conv'), 'conv',
                      (planes * EXPANSION, inplanes, 1, 1)))
        table.append((f'{t}.downsample.1', (f, 'downsample_bn'), 'bn',
                      (planes * EXPANSION,)))
      inplanes = planes * EXPANSION
  if num_classes > 0:
    table.append(('fc', ('fc',), 'fc', (num_classes, inplanes)))
  return table


def expected_state_dict_shapes(
    stage_blocks: Sequence[int] = RESNET50_STAGE_BLOCKS, width: int = 64,
    num_classes: int = 0, in_channels: int = 3) -> dict[str, tuple[int, ...]]:
  """torchvision key -> shape for the model (no 'num_batches_tracked')."""
  shapes = {}
  for name, _, kind, shape in _layer_table(stage_blocks, width, num_classes,
                                           in_channels):
    if kind == 'conv':
      shapes[f'{name}.weight'] = shape
    elif kind == 'fc':
      shapes[f'{name}.weight'] = shape
      shapes[f'{name}.bias'] = shape[:1]
    else:
      for field in _BN_FIELDS:
        shapes[f'{name}.{field}'] = shape
  return shapes


def _flax_value(kind: str, field: str, arr: np.ndarray) -> np.ndarray:
  arr = np.asarray(arr, np.float32)
  if kind == 'conv':
    return arr.transpose(2, 3, 1, 0)
  if kind == 'fc' and field == 'weight':
    return arr.T
  return arr


def _check_keys(sd: Mapping[str, np.ndarray], expected: Mapping[str, tuple],
                num_classes: int, source: str) -> None:
  ignored = {k for k in sd if k.endswith('.num_batches_tracked')
             or (num_classes <= 0 and k.startswith('fc.'))}
  missing = sorted(set(expected) - set(sd))
  unexpected = sorted(set(sd) - set(expected) - ignored)
  if missing or unexpected:
    raise TalError(f'ResNet checkpoint {source}: missing keys {missing[:5]}'
                   f'{" ..." if len(missing) > 5 else ""} ({len(missing)}), '
                   f'unexpected keys {unexpected[:5]}'
                   f'{" ..." if len(unexpected) > 5 else ""} '
                   f'({len(unexpected)})')
  for key, shape in expected.items():
    if tuple(np.shape(sd[key])) != tuple(shape):
      raise TalError(f'ResNet checkpoint {source}: {key} has shape '
                     f'{tuple(np.shape(sd[key]))}, expected {tuple(shape)}')


def resnet_variables_from_state_dict(
    state_dict: Mapping[str, np.ndarray],
    stage_blocks: Sequence[int] = RESNET50_STAGE_BLOCKS, width: int = 64,
    num_classes: int = 0, source: str = 'state dict',
    in_channels: int = 3) -> dict:
  """Maps a torchvision/MMAction2 ResNet state dict onto Flax variables.

  Args:
    state_dict: torch key -> numpy array (either layout, optionally under
      'backbone.').
    stage_blocks, width, num_classes: the `tal_jax.nn.resnet.ResNet`
      attributes the variables are for (ResNet-50 without fc by default).
    source: names the checkpoint in error messages.
    in_channels: input channels of the stem conv (3; 10 for MMAction2's
      TSN flow model, 5 stacked x/y flow pairs).
  Returns:
    {'params': {...}, 'batch_stats': {...}} of float32 numpy arrays.
  Raises:
    TalError: missing or unexpected keys, or a shape mismatch.
  """
  sd = {torchvision_key(k): v for k, v in _backbone_only(state_dict).items()}
  expected = expected_state_dict_shapes(stage_blocks, width, num_classes,
                                        in_channels)
  _check_keys(sd, expected, num_classes, source)
  variables = {'params': {}, 'batch_stats': {}}
  for name, path, kind, _ in _layer_table(stage_blocks, width, num_classes,
                                          in_channels):
    if kind == 'bn':
      fields = _BN_FIELDS
    elif kind == 'conv':
      fields = {'weight': ('params', 'kernel')}
    else:
      fields = {'weight': ('params', 'kernel'), 'bias': ('params', 'bias')}
    for field, (collection, leaf) in fields.items():
      node = variables[collection]
      for part in path:
        node = node.setdefault(part, {})
      node[leaf] = _flax_value(kind, field, sd[f'{name}.{field}'])
  return variables


def load_resnet_checkpoint(path: str, **kwargs) -> dict:
  """Reads a .pth (no torch needed) and returns Flax ResNet variables.

  `kwargs` go to `resnet_variables_from_state_dict` (stage_blocks, width,
  num_classes).
  """
  return resnet_variables_from_state_dict(load_pth(path), source=path,
                                          **kwargs)
