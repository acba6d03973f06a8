r"""BMN forward and train-step time: tal_jax 'dense' vs 'reassociated' vs MMAction2.

Usage (from the repository root):
  python experiments/bench_bmn_layer.py [--batch 8] [--reps 3] [--skip-mmaction2]

Full-size BMN (T=100, D=400, widths 256/128/512, N=32x3), fp32, random
weights and features. 'train step' = forward + BMN loss + gradients (labels
excluded; they are computed once per split in tal_jax). MMAction2 1.2.0 runs in
a subprocess of the reference environment ($TAL_JAX_REFENV,
experiments/README.md) (train step there includes its
per-batch label generation, as in its training loop). Prints a table of medians.
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tal_jax  # noqa: E402,F401
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from tal_jax.localizers.bmn import loss as losses  # noqa: E402
from tal_jax.localizers.bmn import targets  # noqa: E402
from tal_jax.localizers.bmn import model as bmn  # noqa: E402
from tal_jax.localizers.bmn import boundary_matching
import refenv  # noqa: E402

MMACTION2 = r'''
import sys, time, types, os, numpy as np, torch
torch.set_num_threads(os.cpu_count())
sys.path.insert(0, sys.argv[3])
from make_bmn_golden import import_mmaction, FULL, build_model
BMN, _ = import_mmaction()
batch, reps = int(sys.argv[1]), int(sys.argv[2])
model = build_model(BMN, FULL, 0)
x = torch.randn(batch, 400, 100)
gts = [torch.tensor([[0.1, 0.3], [0.5, 0.9]], dtype=torch.float64)] * batch
def fwd():
  with torch.no_grad():
    model._forward(x)
def step():
  model.zero_grad()
  labels = model.generate_labels(gts)
  out = model._forward(x)
  model.loss_cls(*out, *labels, model.bm_mask)[0].backward()
for name, fn in (('forward', fwd), ('train step', step)):
  fn(); ts = []
  for _ in range(reps):
    t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
  print(name, float(np.median(ts)))
'''


def _median_time(fn, reps):
  jax.block_until_ready(fn())  # compile + warm up
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def time_tal_jax(bm_layer, batch, reps):
  model = bmn.BMN(bm_layer=bm_layer)
  x = jax.random.normal(jax.random.key(0), (batch, 100, 400))
  params = model.init(jax.random.key(1), x[:1])['params']
  gt = np.tile(np.array([[[0.1, 0.3], [0.5, 0.9]]]), (batch, 1, 1))
  labels = targets.bmn_targets_batch(gt, np.ones(gt.shape[:2], bool), 100)
  mask = jnp.asarray(boundary_matching.bm_valid_mask(100))

  def loss_fn(p):
    out = model.apply({'params': p}, x)
    return losses.bmn_loss(*out, *labels, mask, jax.random.key(2))[0]

  fwd = jax.jit(lambda p: model.apply({'params': p}, x))
  step = jax.jit(jax.value_and_grad(loss_fn))
  return (_median_time(lambda: fwd(params), reps),
          _median_time(lambda: step(params), reps))


def time_mmaction2(ref_python, batch, reps):
  golden = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                        'tests', 'golden')
  out = subprocess.run([ref_python, '-c', MMACTION2, str(batch), str(reps),
                        golden], check=True, capture_output=True, text=True)
  rows = dict(line.rsplit(' ', 1) for line in out.stdout.strip().splitlines())
  return float(rows['forward']), float(rows['train step'])


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--reps', type=int, default=3)
  parser.add_argument('--skip-mmaction2', action='store_true')
  args = parser.parse_args()
  rows = {}
  if not args.skip_mmaction2:
    rows['MMAction2 1.2.0 (torch CPU)'] = time_mmaction2(
        refenv.python(refenv.MMACTION2_120), args.batch, args.reps)
  for bm_layer in ('reassociated', 'dense'):
    rows[f"tal_jax bm_layer='{bm_layer}'"] = time_tal_jax(
        bm_layer, args.batch, args.reps)
  base = rows.get('MMAction2 1.2.0 (torch CPU)')
  print(f'BMN full size, batch {args.batch}, fp32, median of {args.reps} '
        f'({jax.devices()[0].platform}, {os.cpu_count()} cores)')
  print('| implementation | forward s | train step s | fwd speed-up | step '
        'speed-up |')
  print('|---|---|---|---|---|')
  for name, (f, s) in rows.items():
    ratio = (f'{base[0] / f:.1f}x | {base[1] / s:.1f}x' if base else '- | -')
    print(f'| {name} | {f:.2f} | {s:.2f} | {ratio} |')


if __name__ == '__main__':
  main()
