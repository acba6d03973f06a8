"""Import MMAction2 BMN checkpoints (.pth) without torch.

A `torch.save` file is either a zip (torch >= 1.6: `<name>/data.pkl` plus raw
storages `<name>/data/<key>`) or the legacy stream (magic, protocol, sys_info,
the pickle, the storage keys, then each storage as int64 numel + bytes). Both
are read with a restricted unpickler that only rebuilds tensors, OrderedDicts
and torch.Size; any other global becomes an inert placeholder (never imported
or called), so loading a checkpoint cannot run code.

`bmn_params_from_state_dict` maps MMAction2's `BMN.state_dict()` names onto
the Flax tree of `tal_jax.models.bmn.BMN` ('x_1d_b.0.weight' ->
params['x_1d_b_0']['kernel'], transposed to Flax layout).
"""

import collections
import os
import pickle
import struct
import zipfile
from typing import Any, Mapping

import ml_dtypes
import numpy as np

from tal_jax.errors import TalError

_DTYPES = {
    'DoubleStorage': np.float64, 'FloatStorage': np.float32,
    'HalfStorage': np.float16, 'BFloat16Storage': ml_dtypes.bfloat16,
    'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
    'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
}
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


class _StorageType:
  def __init__(self, name):
    self.dtype = np.dtype(_DTYPES[name])


class _Storage:
  """A storage's dtype and, once read, its flat numpy data."""

  def __init__(self, dtype):
    self.dtype, self.data = dtype, None


class _Tensor:
  """A tensor to materialise once its storage data is known."""

  def __init__(self, storage, offset, size, stride):
    self.storage, self.offset = storage, offset
    self.size, self.stride = tuple(size), tuple(stride)

  def numpy(self):
    flat = self.storage.data
    if not self.size:
      return flat[self.offset].copy()
    item = flat.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat[self.offset:], self.size, [s * item for s in self.stride])
    return np.array(view)


class _Opaque:
  """Stands in for any global the unpickler does not allow; stores its args."""

  def __init__(self, *args, **kwargs):
    self.args = args

  def __setstate__(self, state):
    self.state = state


def _rebuild_tensor_v2(storage, offset, size, stride, *unused):
  return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data, *unused):
  return data


_ALLOWED = {
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
    ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter,
    ('torch', 'Size'): tuple,
}


class _Unpickler(pickle.Unpickler):
  """Restricted unpickler; `storages` maps storage key -> _Storage."""

  def __init__(self, file, storages):
    super().__init__(file)
    self.storages = storages

  def find_class(self, module, name):
    if (module, name) in _ALLOWED:
      return _ALLOWED[(module, name)]
    if module == 'torch' and name in _DTYPES:
      return _StorageType(name)
    return type(f'{module}.{name}', (_Opaque,), {})

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and pid and pid[0] == 'storage'):
      raise pickle.UnpicklingError(f'unsupported persistent id {pid!r:.60}')
    storage_type, key = pid[1], str(pid[2])
    if not isinstance(storage_type, _StorageType):
      raise pickle.UnpicklingError(f'unsupported storage type {storage_type}')
    if key not in self.storages:
      self.storages[key] = _Storage(storage_type.dtype)
    storage = self.storages[key]
    view = pid[5] if len(pid) > 5 else None
    if view is not None:  # legacy storage view: (view_key, offset, size)
      return _Tensor(storage, view[1], (view[2],), (1,))
    return storage


def _materialise(obj):
  """Replaces _Tensor leaves (and storage views) with numpy arrays."""
  if isinstance(obj, _Tensor):
    if isinstance(obj.storage, _Tensor):  # tensor on a legacy storage view
      base = obj.storage
      obj = _Tensor(base.storage, base.offset + obj.offset, obj.size,
                    obj.stride)
    return obj.numpy()
  if isinstance(obj, dict):
    return type(obj)((k, _materialise(v)) for k, v in obj.items())
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialise(v) for v in obj)
  return obj


def _load_zip(path):
  with zipfile.ZipFile(path) as z:
    pkl = [n for n in z.namelist() if n.endswith('/data.pkl')]
    if len(pkl) != 1:
      raise TalError(f'checkpoint {path}: zip without a single data.pkl')
    prefix = pkl[0][:-len('data.pkl')]
    storages = {}
    with z.open(pkl[0]) as f:
      obj = _Unpickler(f, storages).load()
    for key, storage in storages.items():
      raw = z.read(f'{prefix}data/{key}')
      storage.data = np.frombuffer(raw, storage.dtype)
  return obj


def _load_legacy(path):
  with open(path, 'rb') as f:
    header = [_Unpickler(f, {}).load() for _ in range(3)]
    if header[0] != _LEGACY_MAGIC:
      raise TalError(f'checkpoint {path}: not a torch.save file')
    storages = {}
    obj = _Unpickler(f, storages).load()
    keys = _Unpickler(f, {}).load()
    for key in keys:
      storage = storages[str(key)]
      (numel,) = struct.unpack('<q', f.read(8))
      raw = f.read(numel * storage.dtype.itemsize)
      storage.data = np.frombuffer(raw, storage.dtype)
  return obj


def load_pth(path: str) -> dict[str, np.ndarray]:
  """Reads a torch.save checkpoint's state dict as numpy arrays, without torch.

  Accepts a bare state dict or `{'state_dict': ...}` (MMEngine/mmcv
  checkpoints); strips a leading 'module.' (DataParallel) from every key.

  Raises:
    TalError: the file is missing, not a torch checkpoint, or holds no tensors.
  """
  if not os.path.isfile(path):
    raise TalError(f'checkpoint {path}: no such file')
  try:
    obj = _load_zip(path) if zipfile.is_zipfile(path) else _load_legacy(path)
    obj = _materialise(obj)
  except TalError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    # A damaged file fails anywhere in zipfile or pickle (BadZipFile, bad
    # CRC, unknown compression, UnpicklingError, struct.error, ...).
    raise TalError(f'checkpoint {path}: cannot read ({type(e).__name__}: '
                   f'{str(e).splitlines()[0] if str(e) else ""})') from None
  if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
    obj = obj['state_dict']
  if not isinstance(obj, dict) or not any(
      isinstance(v, np.ndarray) for v in obj.values()):
    raise TalError(f'checkpoint {path}: no state dict of tensors found')
  return {(k[len('module.'):] if k.startswith('module.') else k): v
          for k, v in obj.items() if isinstance(v, np.ndarray)}


# (torch module, kind, in, out, kernel, groups) per layer; widths from config.
def _bmn_layers(m: Mapping[str, Any]):
  d, h1, h2, h3 = (m['feat_dim'], m['hidden_dim_1d'], m['hidden_dim_2d'],
                   m['hidden_dim_3d'])
  n = m['num_samples']
  return [
      ('x_1d_b.0', 1, d, h1, (3,), 4), ('x_1d_b.2', 1, h1, h1, (3,), 4),
      ('x_1d_s.0', 1, h1, h1, (3,), 4), ('x_1d_s.2', 1, h1, 1, (1,), 1),
      ('x_1d_e.0', 1, h1, h1, (3,), 4), ('x_1d_e.2', 1, h1, 1, (1,), 1),
      ('x_1d_p.0', 1, h1, h1, (3,), 1), ('x_3d_p.0', 3, h1, h3, (n, 1, 1), 1),
      ('x_2d_p.0', 2, h3, h2, (1, 1), 1), ('x_2d_p.2', 2, h2, h2, (3, 3), 1),
      ('x_2d_p.4', 2, h2, h2, (3, 3), 1), ('x_2d_p.6', 2, h2, 2, (1, 1), 1),
  ]


# Buffers MMAction2 stores that are constants here (built from the config).
_BMN_BUFFERS = ('sample_mask', 'bm_mask')


def _model_fields(config):
  m = config.model if hasattr(config, 'model') else config
  return {k: m[k] for k in ('temporal_dim', 'feat_dim', 'hidden_dim_1d', 'hidden_dim_2d',
                            'hidden_dim_3d', 'num_samples')}


def bmn_params_from_state_dict(state_dict: Mapping[str, np.ndarray], config,
                               source: str = 'state dict') -> dict:
  """Maps an MMAction2 BMN state dict onto tal_jax BMN params (float32).

  Args:
    state_dict: torch names -> numpy arrays (e.g. from `load_pth`).
    config: the run config (uses config.model widths) or a mapping with the
      model fields directly.
    source: names the checkpoint in error messages.
  Returns:
    {'x_1d_b_0': {'kernel', 'bias'}, ...}, the 'params' collection of BMN.
  Raises:
    TalError: missing or unexpected keys, or a shape that the config rejects.
  """
  fields = _model_fields(config)
  layers = _bmn_layers(fields)
  expected = {f'{name}.{p}' for name, *_ in layers for p in ('weight', 'bias')}
  missing = sorted(expected - set(state_dict))
  unexpected = sorted(set(state_dict) - expected - set(_BMN_BUFFERS))
  if missing or unexpected:
    raise TalError(f'checkpoint {source}: missing keys {missing}, unexpected '
                   f'keys {unexpected}')
  t = fields['temporal_dim']
  buffer_shapes = {'sample_mask': (t, fields['num_samples'] * t * t),
                   'bm_mask': (t, t)}
  for key, shape in buffer_shapes.items():
    if key in state_dict and tuple(state_dict[key].shape) != shape:
      raise TalError(f'checkpoint {source}: {key} has shape '
                     f'{tuple(state_dict[key].shape)} but config expects {shape}')
  params = {}
  for name, _, cin, cout, kernel, groups in layers:
    w = np.asarray(state_dict[f'{name}.weight'], np.float32)
    b = np.asarray(state_dict[f'{name}.bias'], np.float32)
    for key, arr, shape in ((f'{name}.weight', w,
                             (cout, cin // groups) + kernel),
                            (f'{name}.bias', b, (cout,))):
      if arr.shape != shape:
        raise TalError(f'checkpoint {source}: {key} has shape {arr.shape} but '
                       f'config expects {shape}')
    spatial = tuple(range(2, w.ndim))
    params[name.replace('.', '_')] = {
        'kernel': np.ascontiguousarray(np.transpose(w, spatial + (1, 0))),
        'bias': b}
  return params


def load_bmn_checkpoint(path: str, config) -> dict:
  """`load_pth` + `bmn_params_from_state_dict`; returns BMN params."""
  return bmn_params_from_state_dict(load_pth(path), config, source=path)


def expected_param_shapes(config) -> dict[str, tuple[int, ...]]:
  """{'layer/kernel': shape} of the config's model, from an abstract init."""
  import jax  # pylint: disable=g-import-not-at-top
  from tal_jax import tasks  # pylint: disable=g-import-not-at-top
  model_def = tasks.get(config)
  module = model_def.build(config)
  shapes = jax.eval_shape(module.init, jax.random.key(0),
                          model_def.init_inputs(config))['params']
  return {'/'.join(str(getattr(k, 'key', k)) for k in path): tuple(x.shape)
          for path, x in jax.tree_util.tree_leaves_with_path(shapes)}


def bsn_params_from_state_dict(state_dict: Mapping[str, np.ndarray], config,
                               source: str = 'state dict') -> dict:
  """Maps an MMAction2 TEM or PEM state dict onto tal_jax params (float32).

  Raises:
    TalError: missing or unexpected keys, or a shape the config rejects
      (named in torch's terms, e.g. 'conv1.weight').
  """
  from tal_jax.models import bsn  # pylint: disable=g-import-not-at-top
  params = bsn.params_from_state_dict(state_dict)
  got = {f'{layer}/{kind}': np.shape(v) for layer, p in params.items()
         for kind, v in p.items()}
  want = expected_param_shapes(config)
  torch_name = lambda k: k.replace('/kernel', '.weight').replace('/', '.')
  missing = sorted(torch_name(k) for k in set(want) - set(got))
  unexpected = sorted(torch_name(k) for k in set(got) - set(want))
  if missing or unexpected:
    raise TalError(f'checkpoint {source}: missing keys {missing}, unexpected '
                   f'keys {unexpected} for {config.model_name}')
  for key in sorted(want):
    if got[key] != want[key]:
      raise TalError(f'checkpoint {source}: {torch_name(key)} gives shape '
                     f'{got[key]} but config expects {want[key]}')
  return params


_SSN_HEAD_FCS = ('activity_fc', 'completeness_fc', 'regressor_fc')


def ssn_variables_from_state_dict(state_dict: Mapping[str, np.ndarray],
                                  config, source: str = 'state dict') -> dict:
  """An MMAction2 0.24.1 SSN state dict -> {'params': {'head', 'backbone'?},
  'batch_stats'?}: the head from 'cls_head.*' (FC weights transposed), and in
  frame mode the ResNet from 'backbone.*' (tal_jax.convert.torchvision).

  Raises:
    TalError: a missing head FC or a shape the config rejects.
  """
  from tal_jax import ssn_frames  # pylint: disable=g-import-not-at-top
  from tal_jax.convert import torchvision as tv  # pylint: disable=g-import-not-at-top
  head = {}
  for fc in _SSN_HEAD_FCS:
    if fc == 'regressor_fc' and not config.model.use_regression:
      continue
    try:
      w, b = (state_dict[f'cls_head.{fc}.weight'],
              state_dict[f'cls_head.{fc}.bias'])
    except KeyError as e:
      raise TalError(f'checkpoint {source}: missing key {e.args[0]} for '
                     'ssn') from None
    head[fc] = {'kernel': np.asarray(w, np.float32).T,
                'bias': np.asarray(b, np.float32)}
  out = {'params': {'head': head}}
  if ssn_frames.is_frames(config):
    b = config.model.backbone
    backbone = tv.resnet_variables_from_state_dict(
        state_dict, stage_blocks=tuple(b.stage_blocks), width=b.width,
        source=source)
    out['params']['backbone'] = backbone['params']
    out['batch_stats'] = {'backbone': backbone['batch_stats']}
  _check_shapes(out['params'], config, source)
  return out


def _check_shapes(params, config, source):
  """TalError naming the first leaf whose shape the config rejects."""
  import jax  # pylint: disable=g-import-not-at-top
  got = {'/'.join(str(getattr(k, 'key', k)) for k in path): tuple(x.shape)
         for path, x in jax.tree_util.tree_leaves_with_path(params)}
  want = expected_param_shapes(config)
  for key in sorted(want):
    if key not in got:
      raise TalError(f'checkpoint {source}: no {key} for {config.model_name}')
    if got[key] != want[key]:
      raise TalError(f'checkpoint {source}: {key} has shape {got[key]} but '
                     f'the config expects {want[key]}')


def load_checkpoint(path: str, config) -> dict:
  """Variables ({'params', ...}) of `config.model_name` ('bmn', 'bsn_tem',
  'bsn_pem', 'ssn') from a .pth."""
  if config.model_name == 'bmn':
    return {'params': load_bmn_checkpoint(path, config)}
  if config.model_name in ('bsn_tem', 'bsn_pem'):
    return {'params': bsn_params_from_state_dict(load_pth(path), config,
                                                 source=path)}
  if config.model_name == 'ssn':
    return ssn_variables_from_state_dict(load_pth(path), config, source=path)
  raise TalError(f'cannot import a {config.model_name!r} checkpoint (BMN, '
                 'BSN TEM, BSN PEM and SSN are supported)')
