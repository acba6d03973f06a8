"""Benchmark: BMN decode + soft-NMS, tal_jax batched vs MMAction2 per video.

Makes 4,728 random smooth BMN outputs (T=100, the ActivityNet val split's
size), runs tal_jax's decode_bmn + post_processing in jitted batches, then runs
MMAction2 1.2.0's own BMN.predict (decode loops + post_processing + soft_nms)
in the reference environment ($TAL_JAX_REFENV, experiments/README.md) on the
same saved inputs, for all videos or a
subset (--ref-videos; the time is then extrapolated, and the table says so).
Both sides' proposals are compared on the videos MMAction2 ran.

  python experiments/bench_postprocess.py                  # 4,728 videos
  python experiments/bench_postprocess.py --ref-videos 500 # faster
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tal_jax  # pylint: disable=g-import-not-at-top,unused-import
import jax  # pylint: disable=g-import-not-at-top
from tal_jax.localizers.bmn import postprocess  # pylint: disable=g-import-not-at-top
import refenv  # pylint: disable=g-import-not-at-top

T = 100
NMS = (0.4, 0.5, 0.9, 100)  # configs/bmn.py config.test.*


def _smooth_maps(rng, num_videos):
  """[V, T, T] float32 sigmoid of six random low-frequency cosine waves."""
  grid = np.stack(np.meshgrid(np.arange(T), np.arange(T), indexing='ij'))
  freq = rng.uniform(0.01, 0.08, size=(num_videos, 6, 2, 1, 1))
  amp = rng.normal(size=(num_videos, 6, 1, 1))
  phase = rng.uniform(0, 2 * np.pi, size=(num_videos, 6, 1, 1))
  z = amp * np.cos(2 * np.pi * (freq * grid).sum(2) + phase)
  return (1 / (1 + np.exp(-z.sum(1)))).astype(np.float32)


def _smooth_curves(rng, num_videos):
  """[V, T] float32: five Gaussian bumps plus noise, scaled into (0, 1)."""
  x = np.arange(T)
  centre = rng.uniform(0, T, size=(num_videos, 5, 1))
  width = rng.uniform(1, 4, size=(num_videos, 5, 1))
  amp = rng.uniform(0.2, 1.0, size=(num_videos, 5, 1))
  y = 0.02 + (amp * np.exp(-0.5 * ((x - centre) / width)**2)).sum(1)
  y += 0.02 * rng.normal(size=y.shape)
  return np.clip(y / y.max(1, keepdims=True) * 0.95, 0.01, 0.99).astype(
      np.float32)


def smooth_outputs(num_videos, seed=0, chunk=256):
  """Random smooth BMN outputs: maps [V, T, T, 2], start/end [V, T] float32."""
  rng = np.random.default_rng(seed)
  maps = np.empty((num_videos, T, T, 2), np.float32)
  for i in range(0, num_videos, chunk):
    n = min(chunk, num_videos - i)
    maps[i:i + n, ..., 0] = _smooth_maps(rng, n)
    maps[i:i + n, ..., 1] = _smooth_maps(rng, n)
  return maps, _smooth_curves(rng, num_videos), _smooth_curves(rng, num_videos)


def run_tal_jax(maps, start, end, chunk):
  """bmn_post_processing over all videos; returns (seconds, proposals list)."""
  t0 = time.perf_counter()
  props, valid = postprocess.bmn_post_processing(maps, start, end, *NMS,
                                                 chunk_size=chunk)
  elapsed = time.perf_counter() - t0
  return elapsed, [p[v] for p, v in zip(props, valid)]


REF_SCRIPT = r'''
import sys, time, types, os, numpy as np, torch
sys.path.insert(0, os.path.join(sys.argv[3], 'tests', 'golden'))
import make_postprocess_golden as g
bmn = g._import_localizers()
data = np.load(sys.argv[1]); n = int(sys.argv[2])
maps, start, end = data['maps'][:n], data['start'][:n], data['end'][:n]
rows = []
t0 = time.perf_counter()
for m, s, e in zip(maps, start, end):
  fake = types.SimpleNamespace(
      tscale=100, feature_extraction_interval=16, soft_nms_alpha=0.4,
      soft_nms_low_threshold=0.5, soft_nms_high_threshold=0.9,
      post_process_top_k=100,
      _forward=lambda x, m=m, s=s, e=e: (
          torch.from_numpy(np.moveaxis(m, -1, 0)[None]),
          torch.from_numpy(s[None]), torch.from_numpy(e[None])))
  meta = dict(video_name='v_x', duration_frame=1600, duration_second=100.0)
  out = bmn.BMN.predict(fake, None, [g._Sample(meta)])[0]
  rows.append(np.array([[p['segment'][0], p['segment'][1], p['score']]
                        for p in out['proposal_list']]))
elapsed = time.perf_counter() - t0
np.savez(sys.argv[1] + '.out.npz', elapsed=elapsed,
         counts=[len(r) for r in rows], rows=np.concatenate(rows))
'''


def run_mmaction2(ref_python, path, num):
  """Runs MMAction2's BMN.predict on the first `num` saved videos."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  subprocess.run([ref_python, '-c', REF_SCRIPT, path, str(num), root],
                 check=True)
  with np.load(path + '.out.npz') as res:
    elapsed, counts, flat = float(res['elapsed']), res['counts'], res['rows']
  offsets = np.concatenate([[0], np.cumsum(counts)])
  return elapsed, [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def compare(mine, ref):
  """Counts videos whose proposals equal MMAction2's (bounds, order, score)."""
  same = 0
  for m, r in zip(mine, ref):
    # MMAction2 ran with duration 100 s on 1600 frames: factor 100.
    m = m * np.array([100.0, 100.0, 1.0])
    same += (m.shape == r.shape and np.allclose(m[:, :2], r[:, :2], rtol=0,
                                                atol=1e-9) and
             np.allclose(m[:, 2], r[:, 2], rtol=1e-6, atol=0))
  return same


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--videos', type=int, default=4728)
  parser.add_argument('--ref-videos', type=int, default=None,
                      help='videos MMAction2 runs (default: all)')
  parser.add_argument('--chunk', type=int, default=128)
  args = parser.parse_args(argv)
  ref_python = refenv.python(refenv.MMACTION2_120)
  maps, start, end = smooth_outputs(args.videos)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'inputs.npz')
    np.savez(path, maps=maps, start=start, end=end)
    counts = np.asarray(
        postprocess._candidate_counts(start, end))  # pylint: disable=protected-access
    print('timing tal_jax ...', file=sys.stderr, flush=True)
    cold, _ = run_tal_jax(maps, start, end, args.chunk)  # incl. compiles
    runs = [run_tal_jax(maps, start, end, args.chunk) for _ in range(3)]
    ours = sorted(r[0] for r in runs)[1]
    num_ref = min(args.ref_videos or args.videos, args.videos)
    print(f'timing MMAction2 on {num_ref} videos ...', file=sys.stderr,
          flush=True)
    ref_time, ref_rows = run_mmaction2(ref_python, path, num_ref)
  same = compare(runs[0][1][:num_ref], ref_rows)
  ref_full = ref_time / num_ref * args.videos
  note = '' if num_ref == args.videos else (
      f' (timed on {num_ref} videos, extrapolated)')
  print(f'{args.videos} videos, T={T}, candidates per video: mean '
        f'{counts.mean():.0f}, max {counts.max()}; jax {jax.__version__} on '
        f'{jax.devices()[0].platform}, {os.cpu_count()} CPUs')
  print('| implementation | total s | videos/s | ratio |')
  print('|---|---|---|---|')
  print(f'| MMAction2 1.2.0 BMN.predict, per video{note} | {ref_full:.1f} | '
        f'{args.videos / ref_full:.1f} | 1.0x |')
  print(f'| tal_jax bmn_post_processing, jit, chunks of '
        f'{args.chunk} (median of 3) | {ours:.2f} | {args.videos / ours:.0f} '
        f'| {ref_full / ours:.0f}x |')
  print(f'| tal_jax, first run incl. jit compiles | {cold:.2f} | '
        f'{args.videos / cold:.0f} | {ref_full / cold:.0f}x |')
  print(f'identical proposals (order, bounds, scores to 1e-6) on {same}/'
        f'{num_ref} videos MMAction2 ran')


if __name__ == '__main__':
  main()
