"""Reads PyTorch checkpoints (.pth) without torch.

A `torch.save` file is either a zip (torch >= 1.6: `<name>/data.pkl` plus raw
storages `<name>/data/<key>`) or the legacy stream (magic, protocol, sys_info,
the pickle, the storage keys, then each storage as int64 numel + bytes). Both
are read with a restricted unpickler that only rebuilds tensors, OrderedDicts
and torch.Size; any other global becomes an inert placeholder (never imported
or called), so loading a checkpoint cannot run code.

Each localizer maps the state dict onto its own parameters
(`tal_jax.localizers.<name>.convert`, its ModelDef's `import_state_dict`).
"""

import collections
import os
import pickle
import struct
import zipfile

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
