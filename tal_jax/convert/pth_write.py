"""Writes a state dict of numpy arrays as a torch.save zip, without torch.

The layout torch >= 1.6 writes and `torch.load` / `convert.pth.load_pth`
read: `archive/data.pkl` (pickle protocol 2: an OrderedDict of tensors, each
`torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False,
OrderedDict())`, storages as persistent ids ('storage', torch.<T>Storage,
key, 'cpu', numel)), `archive/data/<key>` (raw little-endian bytes),
`archive/version` and `archive/byteorder`. Used to make random-init
recogniser checkpoints for tests and the example (pure numpy: the reference
environment's torch reads them too, see tests/golden/make_features_golden.py).
"""

import pickle
import struct
import zipfile
from typing import Mapping

import numpy as np

_STORAGES = {np.dtype(np.float32): 'FloatStorage',
             np.dtype(np.float64): 'DoubleStorage',
             np.dtype(np.int64): 'LongStorage',
             np.dtype(np.int32): 'IntStorage'}


def _str(s: str) -> bytes:
  b = s.encode('utf-8')
  return pickle.BINUNICODE + struct.pack('<I', len(b)) + b


def _int(i: int) -> bytes:
  return pickle.BININT + struct.pack('<i', int(i))


def _global(module: str, name: str) -> bytes:
  return pickle.GLOBAL + f'{module}\n{name}\n'.encode('ascii')


def _tuple(items) -> bytes:
  return pickle.MARK + b''.join(items) + pickle.TUPLE


def _ordered_dict() -> bytes:
  return _global('collections', 'OrderedDict') + pickle.EMPTY_TUPLE + (
      pickle.REDUCE)


def _tensor(key: str, arr: np.ndarray) -> bytes:
  storage = _tuple([_str('storage'), _global('torch', _STORAGES[arr.dtype]),
                    _str(key), _str('cpu'), _int(arr.size)]) + pickle.BINPERSID
  stride = np.cumprod((1,) + arr.shape[::-1])[:-1][::-1] if arr.ndim else ()
  return _global('torch._utils', '_rebuild_tensor_v2') + _tuple([
      storage, _int(0), _tuple([_int(s) for s in arr.shape]),
      _tuple([_int(s) for s in stride]), pickle.NEWFALSE, _ordered_dict()
  ]) + pickle.REDUCE


def state_dict_pickle(arrays: list[np.ndarray], names: list[str]) -> bytes:
  """data.pkl bytes of an OrderedDict name -> tensor (storage keys '0'...)."""
  body = b''.join(_str(n) + _tensor(str(i), a)
                  for i, (n, a) in enumerate(zip(names, arrays)))
  return (pickle.PROTO + bytes([2]) + _ordered_dict() + pickle.MARK + body +
          pickle.SETITEMS + pickle.STOP)


def save_pth(path: str, state_dict: Mapping[str, np.ndarray],
             wrap: bool = False) -> None:
  """Writes `state_dict` (float32/float64/int64/int32 arrays) to `path`.

  wrap: store {'state_dict': ...} as MMEngine checkpoints do (not needed by
  the readers; a bare state dict is written by default).
  """
  names = list(state_dict)
  arrays = [np.array(state_dict[n], order='C') for n in names]
  for n, a in zip(names, arrays):
    if a.dtype not in _STORAGES:
      raise ValueError(f'{n}: dtype {a.dtype} cannot be written')
  pkl = state_dict_pickle(arrays, names)
  if wrap:
    pkl = (pkl[:2] + pickle.EMPTY_DICT + _str('state_dict') + pkl[2:-1] +
           pickle.SETITEM + pickle.STOP)
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as z:
    z.writestr('archive/data.pkl', pkl)
    z.writestr('archive/byteorder', 'little')
    for i, a in enumerate(arrays):
      z.writestr(f'archive/data/{i}', a.astype(a.dtype.newbyteorder('<'),
                                                copy=False).tobytes())
    z.writestr('archive/version', '3\n')
