"""Runs tiny BMN training on a subprocess's simulated devices (test helper).

Used by tests/test_parallel.py, started as
  XLA_FLAGS=--xla_force_host_platform_device_count=4 \\
      python tests/_parallel_worker.py JOB.json
JOB.json: {"cache_dir", "out", "runs": [{"workdir", "num_epochs"}, ...]}; each
run calls train.train_and_evaluate (a fresh run, or a resume when the workdir
holds checkpoints). Writes to "out" what the process saw: device count,
XLA_FLAGS after `import tal_jax`, the error for an indivisible batch, the rows
of a batch each device holds, and each run's metrics.
"""

import json
import os
import sys

import tal_jax  # noqa: F401  (XLA flags first)
import jax

from tal_jax import config_utils
from tal_jax import errors
from tal_jax.engine import parallel
from tal_jax.engine import loop
from tal_jax import localizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(cache_dir, num_epochs):
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bmn.py:tiny'))
  config.data.cache_dir = cache_dir
  config.train.num_epochs = num_epochs
  return config


def main(job_file):
  with open(job_file) as f:
    job = json.load(f)
  jax.config.update('jax_compilation_cache_dir', job['xla_cache'])
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
  report = {'device_count': jax.device_count(),
            'xla_flags': os.environ.get('XLA_FLAGS', '')}
  mesh = parallel.make_mesh()
  try:
    parallel.check_global_batch(6, mesh)
  except errors.TalError as e:
    report['batch_error'] = str(e)
  sharding = parallel.batch_sharded(mesh)
  report['rows'] = [idx[0].indices(8)[:2] for idx in
                    sharding.devices_indices_map((8,)).values()]
  report['host_slice'] = parallel.host_slice(8, mesh).indices(8)[:2]
  report['metrics'] = []
  for run in job['runs']:
    config = tiny_config(job['cache_dir'], run['num_epochs'])
    report['metrics'].append(
        loop.train_and_evaluate(localizers.get(config), config, run['workdir'], quiet=True))
  with open(job['out'], 'w') as f:
    json.dump(report, f)


if __name__ == '__main__':
  main(sys.argv[1])
