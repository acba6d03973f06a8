"""Console output of a run: progress bars only on a terminal, quiet on demand."""

import sys

import jax
import jax.numpy as jnp


def quiet_libraries() -> None:
  """Only errors from absl-logging libraries (Orbax logs every save at INFO
  and a read-only restore at WARNING)."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.ERROR)
  absl_logger = logging.get_absl_logger()
  if not any(isinstance(f, _OrbaxErrors) for f in absl_logger.filters):
    absl_logger.addFilter(_OrbaxErrors())


class _OrbaxErrors:
  """Drops Orbax's own ERROR lines (a damaged checkpoint's metadata, logged
  before the exception that tal_jax turns into one `error:` line naming the
  step folder); keeps every other library's."""

  def filter(self, record) -> bool:
    return '/orbax/' not in record.pathname.replace('\\', '/')


def show_progress(quiet: bool) -> bool:
  """Progress bars: not under --quiet, not when stderr is not a terminal (CI
  logs stay readable), and only on process 0."""
  return (not quiet and sys.stderr.isatty() and jax.process_index() == 0)


def info(message: str, quiet: bool = False) -> None:
  """One line on stdout from process 0, unless quiet."""
  if not quiet and jax.process_index() == 0:
    print(message, flush=True)


def format_metrics(metrics: dict[str, float]) -> str:
  """'AR@1 0.3021  AR@5 ...  AUC 61.20  mAP@0.30 ...': AR@n by n, AUC, then
  the other names, each '@' family by its number."""
  def order(key):
    name, _, at = key.partition('@')
    try:
      number = float(at) if at else 0.0
    except ValueError:
      number = 0.0
    return ({'AR': 0, 'AUC': 1}.get(name, 2), name, number, key)
  keys = sorted(metrics, key=order)
  return '  '.join(f'{k} {metrics[k]:.4f}' for k in keys)


def compute_dtype(module) -> str:
  """The dtype a flax module computes in: its `dtype` field (BMN, TEM follow
  config.dtype), float32 for modules without one (PEM, SSN)."""
  return jnp.dtype(getattr(module, 'dtype', jnp.float32)).name


def startup_line(stage: str, mesh, global_batch: int, per_device_batch: int,
                 dtype: str) -> str:
  """The one line a run prints first: where it runs and how it splits work.

  'train: backend=cpu, devices=4 x cpu, process=0/1, mesh=data:4,
  global_batch=8, per_device_batch=2, dtype=float32' (fields ', '-separated
  key=value; the device kind may hold spaces, e.g. 'NVIDIA H100 80GB HBM3').
  """
  devices = list(mesh.devices.flat)
  kinds = '/'.join(sorted({d.device_kind for d in devices}))
  axes = 'x'.join(f'{name}:{size}' for name, size in mesh.shape.items())
  return (f'{stage}: backend={jax.default_backend()}, devices={len(devices)} x '
          f'{kinds}, process={jax.process_index()}/{jax.process_count()}, '
          f'mesh={axes}, global_batch={global_batch}, '
          f'per_device_batch={per_device_batch}, dtype={dtype}')
