"""ResNet-50 backbone speed: tal_jax (Flax, jit) vs torchvision on this machine.

  python experiments/bench_resnet.py [--batch 8]

Reference side: torchvision 0.29.1 resnet50 (torch 2.14.1) in the MMAction2
0.24.1 reference environment ($TAL_JAX_REFENV, experiments/README.md), run in a
subprocess on the same shapes.
Work per call, 224x224 inputs, float32:
  forward   eval mode (SSN test: running BN stats), pooled features
  train     SSN's partial-BN train mode: forward + backward of
            sum(pooled * w) w.r.t. all parameters (bn1 uses batch stats)
Prints median of 3 warm runs (seconds) and the speed-up.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import refenv

REPS = 3


def _median_time(fn):
  fn()  # warm-up / compile
  times = []
  for _ in range(REPS):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def bench_torch(batch):
  import torch
  import torchvision
  torch.manual_seed(0)
  model = torchvision.models.resnet50()
  model.fc = torch.nn.Identity()
  x = torch.randn(batch, 3, 224, 224)
  w = torch.randn(batch, 2048)
  model.eval()

  def forward():
    with torch.no_grad():
      model(x)

  def train():
    model.train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns[1:]:  # MMAction2 partial BN
      m.eval()
      m.weight.requires_grad_(False)
      m.bias.requires_grad_(False)
    model.zero_grad()
    (model(x) * w).sum().backward()

  return {'forward': _median_time(forward), 'train': _median_time(train),
          'threads': torch.get_num_threads()}


def bench_jax(batch):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
  import tal_jax  # noqa: F401
  import jax
  import jax.numpy as jnp
  from tal_jax.nn import resnet
  model = resnet.ResNet(partial_bn=True)
  variables = resnet.init_variables(model, jax.random.key(0), 224)
  x = jnp.asarray(np.random.default_rng(0).normal(
      size=(batch, 224, 224, 3)).astype(np.float32))
  w = jnp.asarray(np.random.default_rng(1).normal(size=(batch, 2048)),
                  jnp.float32)
  forward = jax.jit(lambda v, x: model.apply(v, x)['pooled'])

  @jax.jit
  def train(v, x):
    def loss(params):
      out, upd = model.apply(dict(v, params=params), x, train=True,
                             mutable=['batch_stats'])
      return jnp.sum(out['pooled'] * w), upd
    return jax.grad(loss, has_aux=True)(v['params'])

  return {
      'forward': _median_time(
          lambda: forward(variables, x).block_until_ready()),
      'train': _median_time(
          lambda: jax.block_until_ready(train(variables, x))),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--torch_side', action='store_true',
                      help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.torch_side:
    print(json.dumps(bench_torch(args.batch)))
    return
  out = subprocess.run([refenv.python(refenv.MMACTION2_0241),
                        os.path.abspath(__file__),
                        '--torch_side', '--batch', str(args.batch)],
                       check=True, capture_output=True, text=True).stdout
  ref = json.loads(out.strip().splitlines()[-1])
  ours = bench_jax(args.batch)
  print(f'ResNet-50, batch {args.batch}, 224x224, fp32, median of {REPS} '
        f'(torch threads {ref["threads"]})')
  print('| work | torchvision s | tal_jax s | speed-up |')
  print('|---|---|---|---|')
  for key in ('forward', 'train'):
    print(f'| {key} | {ref[key]:.3f} | {ours[key]:.3f} | '
          f'{ref[key] / ours[key]:.2f}x |')


if __name__ == '__main__':
  main()
