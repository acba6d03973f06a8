"""Device mesh, batch sharding and multi-host start-up.

One code path serves 1 device, N local devices and N hosts: a 1-D mesh over all
devices with axis 'data'. Batches are split over it, parameters and optimizer
state are replicated, and `jax.jit` inserts the gradient all-reduce.
"""

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from tal_jax import errors

DATA_AXIS = 'data'


def maybe_initialize_distributed() -> None:
  """Calls jax.distributed.initialize when the environment asks for it.

  Triggered by JAX_COORDINATOR_ADDRESS (with JAX_NUM_PROCESSES and
  JAX_PROCESS_ID), or by SLURM / TPU environments that JAX auto-detects when
  TAL_JAX_DISTRIBUTED=1 is set.
  """
  if os.environ.get('JAX_COORDINATOR_ADDRESS'):
    jax.distributed.initialize(
        coordinator_address=os.environ['JAX_COORDINATOR_ADDRESS'],
        num_processes=int(os.environ['JAX_NUM_PROCESSES']),
        process_id=int(os.environ['JAX_PROCESS_ID']))
  elif os.environ.get('TAL_JAX_DISTRIBUTED') == '1':
    jax.distributed.initialize()


def make_mesh() -> Mesh:
  """A 1-D mesh over every device of every process, axis 'data'."""
  return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))


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
        f'config.train.batch_size={batch_size} does not divide by the '
        f'{n} devices; use a multiple of {n}')
  return batch_size // n


def host_slice(global_batch: int) -> slice:
  """The rows of a global batch this process feeds (its local devices)."""
  per_host = global_batch // jax.process_count()
  start = jax.process_index() * per_host
  return slice(start, start + per_host)


def shard_batch(batch: dict, mesh: Mesh, global_batch: int) -> dict:
  """Makes global arrays from this host's rows of a global batch.

  Args:
    batch: host numpy arrays holding this process's rows [B_host, ...].
    mesh: the data mesh.
    global_batch: B, the global batch size.
  """
  sharding = batch_sharded(mesh)

  def put(x):
    shape = (global_batch,) + x.shape[1:]
    return jax.make_array_from_process_local_data(sharding, x, shape)

  return jax.tree.map(put, batch)
