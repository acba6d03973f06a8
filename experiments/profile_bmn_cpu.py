r"""Per-block CPU profile of full-size BMN's train step (T=100, D=400, fp32).

Usage (repository root):
  python experiments/profile_bmn_cpu.py                 # blocks, batch 8
  python experiments/profile_bmn_cpu.py --reps 5 --batch 8 --no-step

Every timing is jitted and interleaved (one rep of each function in turn,
median over reps) in one process, so load from other jobs hits all rows alike;
compare rows with each other, not with another run. Columns: forward (fwd) and
forward + backward (fwd+bwd: gradients of a random projection of the block's
output with respect to its parameters and, except for the first block, its
input), milliseconds; GFLOP from XLA's cost analysis of the compiled function;
achieved GFLOP/s. Blocks use the parameters of `bmn.BMN` through the same
`layers` functions the model uses, so they measure the model's own code.
"""

import argparse
import functools
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tal_jax  # noqa: E402,F401
import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from tal_jax import config_utils  # noqa: E402
from tal_jax.localizers.bmn import loss as losses  # noqa: E402
from tal_jax.engine import parallel  # noqa: E402
from tal_jax.engine import trainer as train  # noqa: E402
from tal_jax.localizers.bmn import model as bmn  # noqa: E402
from tal_jax.nn import layers  # noqa: E402
from tal_jax.localizers.bmn import boundary_matching
from tal_jax.ops import losses as ops_losses
from tal_jax import localizers

T, D = 100, 400
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def conv(p, x, padding=0, groups=1):
  """nn.Conv's computation: x [B, *spatial, C] with p {'kernel', 'bias'}."""
  nd = x.ndim - 2
  spec = ('NWC', 'WIO', 'NWC') if nd == 1 else ('NHWC', 'HWIO', 'NHWC')
  y = jax.lax.conv_general_dilated(
      x, p['kernel'], (1,) * nd, [(padding, padding)] * nd,
      dimension_numbers=spec, feature_group_count=groups)
  return y + p['bias']


def base_block(params, features):
  """1-D base + TEM + x_1d_p: [B, T, D] -> (xp [B, T, h1], start, end)."""
  x = jax.nn.relu(conv(params['x_1d_b_0'], features, 1, 4))
  base = jax.nn.relu(conv(params['x_1d_b_2'], x, 1, 4))
  tem = []
  for pre in ('x_1d_s', 'x_1d_e'):
    h = jax.nn.relu(conv(params[f'{pre}_0'], base, 1, 4))
    tem.append(jax.nn.sigmoid(conv(params[f'{pre}_2'], h))[..., 0])
  xp = jax.nn.relu(conv(params['x_1d_p_0'], base, 1))
  return xp, tem[0], tem[1]


class LegacyBMN(bmn.BMN):
  """BMN as it was before this profile (for the before/after rows): the BM
  layer spreads its cells over the [T, T] grid at h3 = 512 channels with
  jnp.take (a scatter-add in the backward), then the 1x1 conv runs on the
  whole grid."""

  def _proposal_map(self, base):
    h1, h2, h3 = self.hidden_dim_1d, self.hidden_dim_2d, self.hidden_dim_3d
    x = nn.relu(self._conv('x_1d_p_0', h1, (3,), h1, 1)(base))
    x = nn.relu(_LegacyBM(h3, self.num_samples, self.num_samples_per_bin,
                          self.boundary_ratio, name='x_3d_p_0')(x))
    x = nn.relu(self._conv('x_2d_p_0', h2, (1, 1), h3)(x))
    x = nn.relu(self._conv('x_2d_p_2', h2, (3, 3), h2, 1)(x))
    x = nn.relu(self._conv('x_2d_p_4', h2, (3, 3), h2, 1)(x))
    x = self._conv('x_2d_p_6', 2, (1, 1), h2)(x)
    return nn.sigmoid(x)


class _LegacyBM(boundary_matching.BoundaryMatching):

  @nn.compact
  def __call__(self, x):
    n, c = self.num_samples, x.shape[-1]
    kernel = self.param('kernel', layers.torch_kernel_init,
                        (n, 1, 1, c, self.features))
    bias = self.param('bias', layers.torch_bias_init(c * n), (self.features,))
    w = kernel.reshape(n, c, self.features)
    a, index = boundary_matching._valid_cell_matrix(  # pylint: disable=protected-access
        x.shape[-2], n, self.num_samples_per_bin, float(self.boundary_ratio))
    b, t, _ = x.shape
    y = jnp.einsum('btc,nco->btno', x, w).reshape(b, -1, self.features)
    cells = jnp.einsum('vj,bjo->bvo', jnp.asarray(a), y)
    cells = jnp.concatenate([cells, jnp.zeros_like(cells[:, :1])], axis=1)
    out = jnp.take(cells, jnp.asarray(index), axis=1)
    return out.reshape(b, t, t, self.features) + bias


class _BMFront(nn.Module):
  """The model's BM layer + ReLU + 1x1 conv + ReLU -> [B, T, T, h2]."""
  model: bmn.BMN

  @nn.compact
  def __call__(self, xp):
    m = self.model
    if isinstance(m, LegacyBMN):
      x = nn.relu(_LegacyBM(m.hidden_dim_3d, m.num_samples,
                            m.num_samples_per_bin, m.boundary_ratio,
                            name='x_3d_p_0')(xp))
      return nn.relu(layers.torch_conv(m.hidden_dim_2d, (1, 1),
                                       m.hidden_dim_3d, name='x_2d_p_0')(x))
    bm = boundary_matching.BoundaryMatching(
        m.hidden_dim_3d, m.num_samples, m.num_samples_per_bin,
        m.boundary_ratio, m.bm_layer, name='x_3d_p_0')
    conv0 = layers.torch_conv(m.hidden_dim_2d, (1, 1), m.hidden_dim_3d,
                              name='x_2d_p_0')
    if m.bm_layer == 'reassociated':
      return m._valid_cells_1x1(bm, conv0, xp)  # pylint: disable=protected-access
    return nn.relu(conv0(nn.relu(bm(xp))))


def bm_front(model, params, xp):
  sub = {k: params[k] for k in ('x_3d_p_0', 'x_2d_p_0')}
  return _BMFront(model).apply({'params': sub}, xp)


def bm_contract(params, xp):
  """Only the weights-first contraction of the BM layer: [B, T, N, O]."""
  k = params['x_3d_p_0']['kernel']
  w = k.reshape(k.shape[0], k.shape[3], k.shape[4])
  return jnp.einsum('btc,nco->btno', xp, w)


def bm_product(y):
  """Only the [V, T*N] @ [T*N, B*O] sampling product (no gradient to A)."""
  a, _ = boundary_matching._valid_cell_matrix(T, 32, 3, 0.5)  # pylint: disable=protected-access
  b, t, n, o = y.shape
  y2 = jnp.transpose(y, (1, 2, 0, 3)).reshape(t * n, b * o)
  return jnp.dot(jnp.asarray(a), y2)


def map_rest(params, x):
  """2-D stack after the 1x1 conv: [B, T, T, h2] -> sigmoid map [B, T, T, 2]."""
  x = jax.nn.relu(conv(params['x_2d_p_2'], x, 1))
  x = jax.nn.relu(conv(params['x_2d_p_4'], x, 1))
  return jax.nn.sigmoid(conv(params['x_2d_p_6'], x))


def conv3x3(params, x):
  return jax.nn.relu(conv(params['x_2d_p_2'], x, 1))


def loss_block(outputs, targets):
  cmap, start, end = outputs
  mask = jnp.asarray(boundary_matching.bm_valid_mask(T))

  def one(c, s, e, iou, st, en, key):
    return losses.bmn_loss(c, s, e, iou, st, en, mask, key)

  return ops_losses.grouped_loss(one, (cmap, start, end) + targets,
                             jax.random.key(3), 8)[0]


def with_backward(fn, argnums):
  """fwd+bwd of `fn`: grads of <fn(...), cotangent> w.r.t. `argnums`."""

  def f(ct, *args):
    def scalar(*a):
      out = fn(*a)
      return sum(jnp.vdot(o, c) for o, c in zip(jax.tree.leaves(out),
                                                 jax.tree.leaves(ct)))
    return jax.grad(scalar, argnums)(*args)

  return f


def compiled(fn, *args):
  c = jax.jit(fn).lower(*args).compile()
  cost = c.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return c, float((cost or {}).get('flops', float('nan')))


def interleaved(cases, reps):
  """cases: {name: (compiled_fn, args)} -> {name: median seconds}."""
  for fn, args in cases.values():  # warm up
    jax.block_until_ready(fn(*args))
  times = {k: [] for k in cases}
  for _ in range(reps):
    for name, (fn, args) in cases.items():
      t = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times[name].append(time.perf_counter() - t)
  return {k: float(np.median(v)) for k, v in times.items()}


def block_rows(model, params, features, targets):
  """{row: (fn, args, argnums to differentiate)} for one model."""
  xp, start, end = jax.jit(base_block)(params, features)
  front = jax.jit(functools.partial(bm_front, model))(params, xp)
  y = jax.jit(bm_contract)(params, xp)
  cmap = jax.jit(map_rest)(params, front)
  full = lambda p, f: model.apply({'params': p}, f)
  loss_full = lambda p, f, tg: loss_block(full(p, f), tg)
  return {
      'base 1-D convs + TEM': (base_block, (params, features), (0,)),
      'BM contraction x@W': (bm_contract, (params, xp), (0, 1)),
      'BM product A@Y [5050x3200]@[3200x4096]': (bm_product, (y,), (0,)),
      'BM + ReLU + 1x1 conv + ReLU -> grid': (
          functools.partial(bm_front, model), (params, xp), (0, 1)),
      '3x3 conv 128->128 (one)': (conv3x3, (params, front), (0, 1)),
      '3x3, 3x3, 1x1 convs + sigmoid': (map_rest, (params, front), (0, 1)),
      'loss': (loss_block, ((cmap, start, end), targets), (0,)),
      'full model': (full, (params, features), (0,)),
      'full model + loss': (loss_full, (params, features, targets), 'loss'),
  }


def build_cases(models, params, batch):
  """{(model, row): {'fwd'|'fwd+bwd': (compiled, gflop, args)}}."""
  rng = np.random.default_rng(0)
  features = jnp.asarray(rng.standard_normal((batch, T, D)), jnp.float32)
  targets = (jnp.asarray(rng.uniform(size=(batch, T, T)), jnp.float32),
             jnp.asarray(rng.uniform(size=(batch, T)), jnp.float32),
             jnp.asarray(rng.uniform(size=(batch, T)), jnp.float32))
  cases = {}
  for label, model in models.items():
    for name, (fn, args, argnums) in block_rows(model, params, features,
                                                targets).items():
      if argnums == 'loss':
        bwd, bwd_args = (lambda p, f, tg, fn=fn: jax.grad(fn)(p, f, tg)), args
      else:
        out = jax.eval_shape(fn, *args)
        ct = jax.tree.map(lambda s: jnp.asarray(
            rng.standard_normal(s.shape), s.dtype), out)
        bwd, bwd_args = with_backward(fn, argnums), (ct,) + args
      cases[(label, name)] = {'fwd': compiled(fn, *args) + (args,),
                              'fwd+bwd': compiled(bwd, *bwd_args) + (bwd_args,)}
  return cases


def step_fn(module, batch):
  """train.train_step for `module` (Adam, full config), jitted, with its state."""
  config = bench_config(batch)
  model_def = localizers.get(config)
  lr_fn = train.create_learning_rate_fn(config, 10)
  tx = train.create_optimizer(config, lr_fn)
  params = module.init(jax.random.key(0), jnp.zeros((1, T, D)))['params']
  state = train.TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))
  step = jax.jit(functools.partial(train.train_step, module=module,
                                   model_def=model_def, tx=tx, lr_fn=lr_fn,
                                   config=config))
  return step, state


def bench_config(batch):
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bmn.py'))
  config.train.batch_size = batch
  config.train.videos_per_loss = min(8, batch)
  return config


def train_step_cases(models, batch):
  """Whole train steps (fwd + loss + bwd + Adam), one per model, plus the
  real `Trainer.train_step` (batch gathered on the device) of today's BMN."""
  rng = np.random.default_rng(1)
  batch_arrays = {
      'inputs': rng.standard_normal((batch, T, D)).astype(np.float32),
      'iou_map': rng.uniform(size=(batch, T, T)).astype(np.float32),
      'start': rng.uniform(size=(batch, T)).astype(np.float32),
      'end': rng.uniform(size=(batch, T)).astype(np.float32)}
  cases = {}
  for label, module in models.items():
    step, state = step_fn(module, batch)
    args = (state, jax.tree.map(jnp.asarray, batch_arrays), jax.random.key(1))
    cases[(label, 'train_step (fwd+loss+bwd+Adam)')] = (step, args)
  trainer = train.Trainer(localizers.get(bench_config(batch)), bench_config(batch), 10)
  state = trainer.init_state(jax.random.key(0))
  arrays = trainer.put_arrays(batch_arrays)
  idx = parallel.shard_batch({'i': np.arange(batch, dtype=np.int32)},
                             trainer.mesh, batch)['i']
  # No donation here: the same state is fed at every rep.
  step = jax.jit(trainer.train_step.__wrapped__)
  cases[('now', 'Trainer.train_step (device gather)')] = (
      step, (state, arrays, idx, jax.random.key(1)))
  return cases


def main():
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--reps', type=int, default=3)
  parser.add_argument('--no-blocks', action='store_true')
  parser.add_argument('--no-step', action='store_true')
  parser.add_argument('--no-before', action='store_true',
                      help='skip the rows of the BMN before this profile')
  args = parser.parse_args()
  models = {'now': bmn.BMN(bm_layer='reassociated')}
  if not args.no_before:
    models = {'before': LegacyBMN(bm_layer='reassociated'), **models}
  params = models['now'].init(jax.random.key(0),
                              jnp.zeros((1, T, D)))['params']
  print(f'batch {args.batch}, fp32, median of {args.reps} interleaved reps, '
        f'{jax.devices()[0]}')
  if not args.no_blocks:
    cases = build_cases(models, params, args.batch)
    flat = {(r, k): (c, a) for r, v in cases.items()
            for k, (c, _, a) in v.items()}
    secs = interleaved(flat, args.reps)
    print('| code | block | fwd ms | fwd GFLOP | fwd GFLOP/s | fwd+bwd ms | '
          'fwd+bwd GFLOP | fwd+bwd GFLOP/s |\n|---|---|---|---|---|---|---|---|')
    for (label, row), v in sorted(cases.items(), key=lambda kv: kv[0][1]):
      cells = []
      for k in ('fwd', 'fwd+bwd'):
        sec, g = secs[((label, row), k)], v[k][1] / 1e9
        cells += [f'{1e3 * sec:.0f}', f'{g:.1f}', f'{g / sec:.0f}']
      print(f'| {label} | {row} | ' + ' | '.join(cells) + ' |', flush=True)
  if not args.no_step:
    secs = interleaved(train_step_cases(models, args.batch), args.reps)
    print('| code | step | ms |\n|---|---|---|')
    for (label, row), sec in secs.items():
      print(f'| {label} | {row} | {1e3 * sec:.0f} |')


if __name__ == '__main__':
  main()
