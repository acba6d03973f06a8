"""Builds tal_jax/data/embedded/anet_subset.json.gz from the real ActivityNet files.

The embedded default dataset takes its ground truth (durations, frame counts,
segment positions, class labels) from real ActivityNet-1.3 annotations: a random
2,000 training and 1,000 validation videos of `anet_anno_action.json` (BSN/BMN
repositories), split by `video_info_new.csv`'s subset column.

  gzip -dk tests/data/anet_anno_action.json.gz tests/data/video_info_new.csv.gz
  python experiments/make_embedded_annotations.py \
      --anno tests/data/anet_anno_action.json \
      --video-info tests/data/video_info_new.csv
"""

import argparse
import csv
import gzip
import json

import numpy as np


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--anno', required=True)
  parser.add_argument('--video-info', required=True)
  parser.add_argument('--out', default='tal_jax/data/embedded/anet_subset.json.gz')
  parser.add_argument('--num-train', type=int, default=2000)
  parser.add_argument('--num-val', type=int, default=1000)
  args = parser.parse_args()
  with open(args.anno) as f:
    anno = json.load(f)
  with open(args.video_info) as f:
    subset = {row['video']: row['subset'] for row in csv.DictReader(f)}
  rng = np.random.default_rng(0)
  out = {}
  for split, num in (('training', args.num_train), ('validation', args.num_val)):
    names = sorted(n for n, s in subset.items() if s == split and n in anno)
    picked = rng.choice(len(names), num, replace=False)
    out[split] = {names[i]: anno[names[i]] for i in sorted(picked)}
  with gzip.open(args.out, 'wt') as f:
    json.dump(out, f)
  print({k: len(v) for k, v in out.items()}, '->', args.out)


if __name__ == '__main__':
  main()
