"""Times generating, packing and loading the ActivityNet-sized embedded dataset.

  python experiments/bench_data.py [--cache-dir /tmp/tal_full] [--train 9649 --val 4728]

Generation writes 9,649 + 4,728 MMAction2 CSVs (100 x 400 each); packing parses
every CSV of a split once into features.npy [N, 100, 400]; loading opens the
packed split (memory map) and reads it all into memory.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from tal_jax.data import activitynet  # noqa: E402
from tal_jax.data import synthetic  # noqa: E402


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--cache-dir', default='/tmp/tal_full')
  parser.add_argument('--train', type=int, default=9649)
  parser.add_argument('--val', type=int, default=4728)
  args = parser.parse_args()
  rows = []
  t = time.time()
  paths = synthetic.ensure_dataset(args.cache_dir, args.train, args.val, 0, 100)
  rows.append(('generate CSVs (train + val)', args.train + args.val,
               time.time() - t))
  for split, n in (('train', args.train), ('val', args.val)):
    packed = activitynet.packed_cache_dir(
        args.cache_dir, paths['feature_dir'], paths[f'ann_file_{split}'],
        100, 400)
    t = time.time()
    activitynet.pack_split(paths['feature_dir'], paths[f'ann_file_{split}'],
                           packed, 100, 400)
    rows.append((f'pack {split} (parse CSVs, write .npy)', n, time.time() - t))
    t = time.time()
    videos = activitynet.load_packed(packed)
    total = float(np.asarray(videos.features).sum())
    rows.append((f'load packed {split} into memory', n, time.time() - t))
    del total
  print('| step | videos | seconds | videos/s |\n|---|---|---|---|')
  for name, n, sec in rows:
    print(f'| {name} | {n} | {sec:.1f} | {n / sec:.0f} |')


if __name__ == '__main__':
  main()
