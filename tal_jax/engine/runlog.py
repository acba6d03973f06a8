"""Console output of a run: progress bars only on a terminal, quiet on demand."""

import sys

import jax


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
  """'AR@1 0.3021  AR@5 ...  AUC 61.20' in a fixed key order."""
  order = ['AR@1', 'AR@5', 'AR@10', 'AR@100', 'AUC']
  keys = [k for k in order if k in metrics] + sorted(set(metrics) - set(order))
  return '  '.join(f'{k} {metrics[k]:.4f}' for k in keys)
