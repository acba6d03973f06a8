r"""Exported BMN (jax.export, loaded by model_dir/load_model.py) vs tal_jax's own
jitted forward: artifact sizes, load time, forward time and max difference.

  python experiments/bench_export.py [--batch 8] [--repeats 5]

Full-size BMN (configs/bmn.py: T=100, D=400), random init parameters, CPU.
Both run in this process, alternating, so the ratio is fair on a busy machine.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tal_jax  # noqa: F401  (XLA flags first)
import jax
import numpy as np

from tal_jax.engine import checkpointing
from tal_jax import config_utils
from tal_jax.engine import trainer as train
from tal_jax.tools import export as export_tool
from tal_jax import localizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _median_time(fn, repeats):
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--batch', type=int, default=8)
  p.add_argument('--repeats', type=int, default=5)
  args = p.parse_args()
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bmn.py'))
  tmp = tempfile.mkdtemp()
  trainer = train.Trainer(localizers.get(config), config, 1)
  params = trainer.init_state(jax.random.key(0)).params
  checkpointing.save_params(os.path.join(tmp, 'work'), params, config)
  config_utils.save_config(config, os.path.join(tmp, 'work'))
  out = os.path.join(tmp, 'model')
  t0 = time.perf_counter()
  export_tool.main(['--workdir', os.path.join(tmp, 'work'), '--out', out])
  t_export = time.perf_counter() - t0
  sys.path.insert(0, out)
  import load_model  # pylint: disable=g-import-not-at-top
  t0 = time.perf_counter()
  model = load_model.load(out)
  t_load = time.perf_counter() - t0
  x = np.random.default_rng(0).normal(size=(args.batch, 100, 400)).astype(
      np.float32)
  forward = jax.jit(lambda p, f: trainer.module.apply({'params': p}, f))
  t0 = time.perf_counter()
  got = model(x)
  t_first = time.perf_counter() - t0
  want = jax.device_get(forward(params, x))
  diff = max(float(np.abs(got[k] - w).max())
             for k, w in zip(('confidence_map', 'start', 'end'), want))
  t_exp = _median_time(lambda: model._call(model.params, x), args.repeats)  # pylint: disable=protected-access
  t_own = _median_time(lambda: forward(params, x), args.repeats)
  size = {f: os.path.getsize(os.path.join(out, f)) / 2**20
          for f in ('model.jax', 'params.npz')}
  print(f'| item | value |\n|---|---|\n'
        f'| model.jax / params.npz | {size["model.jax"]:.1f} / '
        f'{size["params.npz"]:.1f} MiB |\n'
        f'| export (restore + lower cpu,cuda + write) | {t_export:.1f} s |\n'
        f'| load_model.load | {t_load:.2f} s |\n'
        f'| first call (compile), batch {args.batch} | {t_first:.1f} s |\n'
        f'| forward batch {args.batch}: exported / tal_jax jit | '
        f'{t_exp * 1e3:.0f} / {t_own * 1e3:.0f} ms '
        f'(ratio {t_exp / t_own:.2f}) |\n'
        f'| max abs difference | {diff:.1e} |')


if __name__ == '__main__':
  main()
