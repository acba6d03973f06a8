"""Speed of tal_jax's vectorised BSN resampling vs. BSN's per-bin interp1d loop.

  python experiments/bench_resample.py

Both compute the same numbers (tests/test_resample.py checks them to 1e-12);
the loop is BSN's poolData (num_bin=1) written out with scipy interp1d. 50
videos with 50..800 snippets of D=400, T=100, median of 3 runs.
"""

import os
import sys
import time

import numpy as np
import scipy.interpolate

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tal_jax  # pylint: disable=unused-import
from tal_jax.data import resample


def bsn_loop(data, num_prop, duration_second, duration_frame, num_sample=3):
  corrected = float(len(data) * 16) / duration_frame * duration_second
  st = 16 / (float(duration_frame) / duration_second)
  x = [st / 2 + i * st for i in range(len(data))]
  f = scipy.interpolate.interp1d(x, data, axis=0)
  out = []
  for idx in range(num_prop):
    xmin = max(x[0] + 1e-4, 1.0 / num_prop * idx * corrected)
    xmax = min(x[-1] - 1e-4, 1.0 / num_prop * (idx + 1) * corrected)
    if xmax < x[0] or xmin > x[-1]:
      out.append(np.zeros(data.shape[1]))
      continue
    plen = (xmax - xmin) / (num_sample - 1)
    out.append(f([xmin + plen * i for i in range(num_sample)]).mean(0))
  return np.stack(out)


def main():
  rng = np.random.default_rng(0)
  videos = []
  for length in rng.integers(50, 800, 50):
    frames = int(length * 16 + rng.integers(0, 16))
    videos.append((rng.normal(size=(length, 400)), frames / 29.97, frames))
  rows = []
  for name, fn in (('BSN loop (scipy interp1d)', bsn_loop),
                   ('tal_jax bsn_pool_features',
                    resample.bsn_pool_features)):
    times = []
    for _ in range(3):
      t0 = time.perf_counter()
      for data, sec, frames in videos:
        fn(data, 100, sec, frames)
      times.append((time.perf_counter() - t0) / len(videos) * 1e3)
    rows.append((name, float(np.median(times))))
  print('| method | ms / video |')
  print('|---|---|')
  for name, ms in rows:
    print(f'| {name} | {ms:.2f} |')
  print(f'speed-up: {rows[0][1] / rows[1][1]:.1f}x')


if __name__ == '__main__':
  main()
