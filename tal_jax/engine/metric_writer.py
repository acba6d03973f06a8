"""Metrics as JSON lines and TensorBoard events in the workdir (process 0 only)."""

import json
import math
import os
from typing import Any

import jax

from tal_jax import errors


def truncate_after(path: str, step: int) -> int:
  """Drops the rows of a metrics.jsonl logged after `step` (a killed run's
  rows past its last checkpoint, which the resumed run logs again); returns
  how many. Unparsable lines (a row cut by the kill) go too."""
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    lines = f.readlines()
  keep = []
  for line in lines:
    try:
      row_step = json.loads(line)['step']
    except (ValueError, KeyError, TypeError):
      continue
    if row_step <= step:
      keep.append(line if line.endswith('\n') else line + '\n')
  if len(keep) != len(lines):
    errors.write_text(path, ''.join(keep))
  return len(lines) - len(keep)


class MetricWriter:
  """Appends {'step', 'epoch', **scalars} to <workdir>/metrics.jsonl and writes
  the same scalars as TensorBoard events under <workdir>/tensorboard/.

  `start_step`: the step the run starts (or resumes) from; rows logged after
  it by an earlier, killed run are dropped first (TensorBoard purges its
  events after it), so a resumed run's logs equal an uninterrupted run's.
  """

  def __init__(self, workdir: str, enabled: bool | None = None,
               start_step: int | None = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self._path = os.path.join(workdir, 'metrics.jsonl')
    self._tb = None
    if self.enabled:
      os.makedirs(workdir, exist_ok=True)
      if start_step is not None:
        truncate_after(self._path, start_step)
      try:
        from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
        self._tb = SummaryWriter(
            os.path.join(workdir, 'tensorboard'),
            purge_step=None if start_step is None else start_step + 1)
      except ImportError:
        self._tb = None

  def write(self, step: int, scalars: dict[str, Any], **extra: Any) -> None:
    if not self.enabled:
      return
    clean = {k: float(v) for k, v in scalars.items()}
    record = {'step': int(step), **extra, **clean}
    with open(self._path, 'a') as f:
      f.write(json.dumps(record, allow_nan=True) + '\n')
    if self._tb is not None:
      for k, v in clean.items():
        if math.isfinite(v):
          self._tb.add_scalar(k, v, int(step))
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
