r"""Trains or tests a localizer.

  python -m tal_jax.main --config=configs/bmn.py --workdir=/tmp/bmn
  python -m tal_jax.main --config=configs/bmn.py --workdir=/tmp/bmn --mode=test
  python -m tal_jax.main --config=configs/bmn.py:tiny --workdir=/tmp/t \
      --config.train.num_epochs=1
"""

import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

import tal_jax  # noqa: F401  (sets XLA flags before JAX starts)
from tal_jax import config_utils
from tal_jax import errors
from tal_jax.engine import runlog
from tal_jax.engine import workdir_lock

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file, e.g. '
                                'configs/bmn.py or configs/bmn.py:tiny.',
                                lock_config=True)
flags.DEFINE_string('workdir', './work_dirs/bmn', 'Checkpoints, metrics, '
                    'results and config.json go here.')
flags.DEFINE_enum('mode', 'train', ['train', 'test'], 'train (resumes from '
                  'the workdir) or test (writes results.json, metrics.json).')
flags.DEFINE_bool('quiet', False, 'No progress bars or per-epoch lines.')


def enable_compilation_cache(cache_dir: str) -> None:
  """Persistent XLA cache: a resumed run or a test run skips recompiling."""
  import jax  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.path.expanduser(cache_dir), 'xla')
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)


def run(argv) -> None:
  runlog.quiet_libraries()
  if len(argv) > 1:
    raise errors.TalError(f'unexpected arguments: {" ".join(argv[1:])}')
  from tal_jax import localizers  # pylint: disable=g-import-not-at-top
  from tal_jax.engine import loop  # pylint: disable=g-import-not-at-top
  from tal_jax.engine import parallel  # pylint: disable=g-import-not-at-top
  from tal_jax.engine import predict  # pylint: disable=g-import-not-at-top
  parallel.maybe_initialize_distributed()
  config = FLAGS.config
  model_def = localizers.get(config)
  enable_compilation_cache(config.data.cache_dir)
  workdir = os.path.abspath(os.path.expanduser(FLAGS.workdir))
  config_utils.check_workdir(workdir)
  config_utils.check_config(config)
  if FLAGS.mode == 'train':
    # config.json is written by train_and_evaluate once the run is accepted.
    import jax  # pylint: disable=g-import-not-at-top
    with workdir_lock.hold(workdir, enabled=jax.process_index() == 0):
      loop.train_and_evaluate(model_def, config, workdir, FLAGS.quiet)
  else:
    predict.run_test(model_def, config, workdir, FLAGS.quiet)


def main() -> None:
  argv = config_utils.explain_config_errors(sys.argv)
  app.run(lambda a: errors.run_cli(lambda: run(a)), argv=argv)


if __name__ == '__main__':
  main()
