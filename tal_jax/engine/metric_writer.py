"""Metrics as JSON lines and TensorBoard events in the workdir (process 0 only)."""

import json
import math
import os
from typing import Any

import jax


class MetricWriter:
  """Appends {'step', 'epoch', **scalars} to <workdir>/metrics.jsonl and writes
  the same scalars as TensorBoard events under <workdir>/tensorboard/."""

  def __init__(self, workdir: str, enabled: bool | None = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self._path = os.path.join(workdir, 'metrics.jsonl')
    self._tb = None
    if self.enabled:
      os.makedirs(workdir, exist_ok=True)
      try:
        from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
        self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'))
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
