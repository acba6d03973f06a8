r"""BMN speed table for the speed issue: train step, post-processing, epoch.

Usage (repository root; the GPU run is one call of this script):
  python experiments/bench_bmn.py                        # GPU defaults
  python experiments/bench_bmn.py --batches 8 --dtypes float32 \
      --videos 64 --reps 2                               # a quick CPU run

Rows:
- train step: tal_jax's jitted `Trainer.train_step` (batch gathered on the
  device from the split's arrays, forward + loss + backward + Adam) on
  full-size BMN (T=100, D=400), per global batch, compute dtype and BM layer;
  videos/s and, on a GPU, peak device memory.
- post-processing: decode + soft-NMS (`postprocess.bmn_post_processing`) of
  `--videos` random smooth score maps, videos/s.
- epoch: `--videos` training videos at the largest batch plus inference and
  post-processing of the same videos, seconds (data already in memory).
MMAction2 1.2.0's train step is measured in the same run in the reference
environment ($TAL_JAX_REFENV, experiments/README.md; via
experiments/bench_bmn_layer.py) unless --skip-mmaction2, when its rows say "not
compared".
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tal_jax  # noqa: E402,F401
import jax  # noqa: E402

from tal_jax import config_utils  # noqa: E402
from tal_jax.engine import parallel  # noqa: E402
from tal_jax.localizers.bmn import postprocess  # noqa: E402
from tal_jax.engine import trainer as train  # noqa: E402
from tal_jax import localizers
import refenv  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bmn_config(batch: int, dtype: str, bm_layer: str):
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bmn.py'))
  config.train.batch_size = batch
  config.train.videos_per_loss = min(8, batch)
  config.dtype = dtype
  config.model.bm_layer = bm_layer
  return config


def random_split(n: int, seed: int = 0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  return {'inputs': rng.standard_normal((n, 100, 400)).astype(np.float32),
          'iou_map': rng.uniform(size=(n, 100, 100)).astype(np.float32),
          'start': rng.uniform(size=(n, 100)).astype(np.float32),
          'end': rng.uniform(size=(n, 100)).astype(np.float32)}


def peak_memory_gib() -> str:
  stats = jax.devices()[0].memory_stats() or {}
  peak = stats.get('peak_bytes_in_use')
  return f'{peak / 2**30:.2f}' if peak else 'n/a'


def time_train_step(batch, dtype, bm_layer, reps, arrays):
  trainer = train.Trainer(localizers.get(bmn_config(batch, dtype, bm_layer)), bmn_config(batch, dtype, bm_layer), 10)
  state = trainer.init_state(jax.random.key(0))
  device_arrays = trainer.put_arrays(arrays)
  idx = parallel.shard_batch(
      {'i': np.arange(batch, dtype=np.int32) % len(arrays['inputs'])},
      trainer.mesh, batch)['i']
  state, m = trainer.train_step(state, device_arrays, idx, jax.random.key(1))
  jax.block_until_ready(m)
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    state, m = trainer.train_step(state, device_arrays, idx,
                                  jax.random.key(1))
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t)
  return float(np.median(times)), trainer, state


def time_post_processing(num_videos: int) -> float:
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  from bench_postprocess import smooth_outputs  # pylint: disable=g-import-not-at-top
  maps, start, end = smooth_outputs(num_videos)
  args = (0.4, 0.5, 0.9, 100)
  postprocess.bmn_post_processing(maps[:8], start[:8], end[:8], *args)
  t = time.perf_counter()
  postprocess.bmn_post_processing(maps, start, end, *args)
  return time.perf_counter() - t


def time_epoch(trainer, state, arrays, batch) -> float:
  """Seconds for one epoch over `arrays` plus inference + decode of them."""
  n = len(arrays['inputs'])
  device_arrays = trainer.put_arrays(arrays)
  t = time.perf_counter()
  for step in range(n // batch):
    idx = parallel.shard_batch(
        {'i': np.arange(step * batch, (step + 1) * batch, dtype=np.int32)},
        trainer.mesh, batch)['i']
    state, m = trainer.train_step(state, device_arrays, idx,
                                  jax.random.key(step))
  jax.block_until_ready(m)
  for _, outputs, host in train.forward_batches(
      trainer, state.params, {'inputs': arrays['inputs']}, 32):
    trainer.model_def.decode(outputs, host, trainer.config)
  return time.perf_counter() - t


def mmaction2_step(ref_python: str | None, batch: int, reps: int) -> str:
  if ref_python is None:
    return 'not compared'
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import bench_bmn_layer  # pylint: disable=g-import-not-at-top
  try:
    _, step = bench_bmn_layer.time_mmaction2(ref_python, batch, reps)
    return f'{batch / step:.2f}'
  except Exception as e:  # pylint: disable=broad-except
    return f'failed ({type(e).__name__})'


def main():
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--batches', default='8,32')
  parser.add_argument('--dtypes', default='float32,bfloat16')
  parser.add_argument('--bm-layers', default='reassociated,dense')
  parser.add_argument('--videos', type=int, default=4728)
  parser.add_argument('--reps', type=int, default=5)
  parser.add_argument('--skip-mmaction2', action='store_true')
  args = parser.parse_args()
  ref_python = (None if args.skip_mmaction2 else
                refenv.python(refenv.MMACTION2_120))
  batches = [int(b) for b in args.batches.split(',')]
  arrays = random_split(max(max(batches), min(args.videos, 256)))
  print(f'device: {jax.devices()[0].device_kind} x {jax.device_count()}')
  print('| measure | batch | dtype | BM layer | tal_jax videos/s | peak GiB | '
        'MMAction2 videos/s |\n|---|---|---|---|---|---|---|')
  last = None
  for batch in batches:
    mm = mmaction2_step(ref_python, batch, min(args.reps, 3))
    for dtype in args.dtypes.split(','):
      for layer in args.bm_layers.split(','):
        sec, trainer, state = time_train_step(batch, dtype, layer, args.reps,
                                              arrays)
        print(f'| train step | {batch} | {dtype} | {layer} | '
              f'{batch / sec:.1f} | {peak_memory_gib()} | '
              f'{mm if dtype == "float32" else "not compared"} |', flush=True)
        last = (trainer, state, batch)
  post = time_post_processing(args.videos)
  print(f'| decode + soft-NMS | {args.videos} videos | float64 | - | '
        f'{args.videos / post:.0f} | - | 35-60 (MMACTION2.md: 17-28 ms/video) |')
  trainer, state, batch = last
  epoch_arrays = random_split(args.videos, seed=1)
  sec = time_epoch(trainer, state, epoch_arrays, batch)
  print(f'| epoch (train + inference + decode) | {batch} | '
        f'{trainer.config.dtype} | {trainer.config.model.bm_layer} | '
        f'{args.videos / sec:.1f} ({sec:.1f} s for {args.videos} videos) | '
        f'{peak_memory_gib()} | not compared |')


if __name__ == '__main__':
  main()
