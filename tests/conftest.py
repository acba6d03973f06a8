"""Shared test set-up: tal_jax first (XLA flags), a persistent XLA cache."""

import json
import os
import tempfile

import tal_jax  # noqa: F401
from tal_jax import localizers
import jax

# Several tests build the same tiny models; the persistent cache lets them
# share compiled programs within and across runs of the suite.
jax.config.update('jax_compilation_cache_dir',
                  os.path.join(tempfile.gettempdir(), 'tal_jax_test_xla'))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)

# The real annotation files (read-only) live in ../shared/data beside the
# checkout, as on the development machines and in CI.
SHARED_DATA = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '..',
    'shared', 'data')


def restore_checkpoint(workdir, config, step=None):
  """{'params', 'opt_state', 'meta'} of a workdir's checkpoint (latest when
  `step` is None), restored onto this process's devices."""
  from tal_jax.engine import checkpointing  # pylint: disable=g-import-not-at-top
  from tal_jax.engine import trainer as train  # pylint: disable=g-import-not-at-top
  mngr = checkpointing.manager(workdir, read_only=True)
  step = mngr.latest_step() if step is None else step
  trainer = train.Trainer(localizers.get(config), config, 1)
  like = trainer.init_state(jax.random.key(0))
  out = checkpointing.restore(mngr, step, like.params, like.opt_state,
                              trainer.replicated, config)
  mngr.close()
  return out


def metrics_rows(workdir):
  """The rows of a run's <workdir>/metrics.jsonl, in order."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]
