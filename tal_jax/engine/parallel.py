"""Device mesh, batch sharding and multi-host start-up.

One code path serves 1 device, N local devices and N hosts: a 1-D mesh over all
devices with axis 'data'. Batches are split over it, parameters and optimizer
state are replicated, and `jax.jit` inserts the gradient all-reduce (the loss is
the mean over the global batch, so its gradient is already the average).

Multi-host: every process runs the same program. `maybe_initialize_distributed`
starts JAX's distributed runtime from the environment; each process then feeds
the rows of each global batch that its own devices hold (`host_slice`), and
replicated outputs (losses, predictions) are readable on every process.
"""

import os
from typing import Callable, Mapping, TypeVar

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from tal_jax import errors

DATA_AXIS = 'data'
T = TypeVar('T')


def distributed_args(environ: Mapping[str, str]) -> dict | None:
  """Arguments of jax.distributed.initialize asked for by `environ`, or None.

  - JAX_COORDINATOR_ADDRESS (host:port of process 0), with JAX_NUM_PROCESSES
    and JAX_PROCESS_ID: explicit start-up (any cluster, or localhost).
  - TAL_JAX_DISTRIBUTED=1: JAX's auto-detection (Cloud TPU VMs, SLURM, Open
    MPI, Kubernetes); TAL_JAX_DISTRIBUTED=0 turns every start-up off.
  - Inside `srun` with more than one task (SLURM_STEP_NUM_TASKS > 1): SLURM
    auto-detection, one process per task.
  """
  flag = environ.get('TAL_JAX_DISTRIBUTED', '')
  if flag == '0':
    return None
  if environ.get('JAX_COORDINATOR_ADDRESS'):
    args = {'coordinator_address': environ['JAX_COORDINATOR_ADDRESS']}
    for key, name in (('num_processes', 'JAX_NUM_PROCESSES'),
                      ('process_id', 'JAX_PROCESS_ID')):
      if environ.get(name):
        try:
          args[key] = int(environ[name])
        except ValueError:
          raise errors.TalError(f'{name}={environ[name]!r} is not an '
                                'integer') from None
    return args
  if flag == '1':
    return {}
  if int(environ.get('SLURM_STEP_NUM_TASKS', '1') or 1) > 1:
    return {'cluster_detection_method': 'slurm'}
  return None


def maybe_initialize_distributed(environ: Mapping[str, str] | None = None
                                 ) -> bool:
  """Calls jax.distributed.initialize when the environment asks for it.

  Must run before any JAX computation. Returns True when this process is part
  of a multi-process run (see `distributed_args` for the variables).
  """
  args = distributed_args(os.environ if environ is None else environ)
  if args is None:
    return False
  if not jax.distributed.is_initialized():
    jax.distributed.initialize(**args)
  return True


def make_mesh() -> Mesh:
  """A 1-D mesh over every device of every process, axis 'data'.

  Devices are ordered by process, so each process's devices hold a
  contiguous block of rows of every batch.
  """
  devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Shards the leading (batch) axis over 'data'."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_global_batch(batch_size: int, mesh: Mesh) -> int:
  """Per-device batch; a clear error when the global batch does not divide."""
  n = mesh.devices.size
  if batch_size % n:
    raise errors.TalError(
        f'config.train.batch_size={batch_size} (the global batch) does not '
        f'divide by the {n} devices of {jax.process_count()} process(es); use '
        f'a multiple of {n}')
  return batch_size // n


def eval_global_batch(batch_size: int, mesh: Mesh) -> int:
  """Inference's global batch: `batch_size` rounded down to a multiple of the
  device count, at least one row per device."""
  n = mesh.devices.size
  return max(n, batch_size // n * n)


def host_slice(global_batch: int, mesh: Mesh | None = None) -> slice:
  """The rows of a global batch [B, ...] that this process's devices hold."""
  mesh = make_mesh() if mesh is None else mesh
  index_map = batch_sharded(mesh).addressable_devices_indices_map(
      (global_batch,))
  rows = [idx[0].indices(global_batch)[:2] for idx in index_map.values()]
  start, stop = min(r[0] for r in rows), max(r[1] for r in rows)
  if sum(b - a for a, b in set(rows)) != stop - start:
    raise errors.TalError('this process\'s devices do not hold a contiguous '
                          'block of the batch; use make_mesh()')
  return slice(start, stop)


def shard_batch(batch: dict, mesh: Mesh, global_batch: int) -> dict:
  """Makes global arrays from this host's rows of a global batch.

  Args:
    batch: host numpy arrays holding this process's rows [B_host, ...]
      (`host_slice(global_batch, mesh)` of the global batch).
    mesh: the data mesh.
    global_batch: B, the global batch size.
  """
  sharding = batch_sharded(mesh)

  def put(x):
    shape = (global_batch,) + x.shape[1:]
    return jax.make_array_from_process_local_data(sharding, x, shape)

  return jax.tree.map(put, batch)


def barrier(name: str) -> None:
  """Waits until every process reaches `name` (no-op on one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top  # noqa: E501
    multihost_utils.sync_global_devices(name)


def process_0_first(fn: Callable[[], T], name: str) -> T:
  """Runs `fn` on process 0, then on the others (e.g. filling a shared cache:
  process 0 writes it, the others read what it wrote)."""
  if jax.process_index() == 0:
    out = fn()
    barrier(name)
    return out
  barrier(name)
  return fn()
