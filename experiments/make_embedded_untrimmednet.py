"""Builds tal_jax/data/embedded/thumos14_untrimmednet_test.npz from uNet_test.npy.

Source (public repository): frostinassiky/gtad `data/uNet_test.npy`, the
UntrimmedNet video-level class scores of the 1,574 THUMOS14 test videos
([1574, 101] float32 over the UCF101 classes; row = the video's number - 1),
which OpenTAD's `UntrimmedNetTHUMOSClassifier` reads (its
`data/thumos-14/classifiers/uNet_test.npy`). Kept: the rows of the test
videos in the embedded THUMOS14 set (the ones with detection ground truth),
as {'video_numbers': [n] int32, 'scores': [n, 101] float32}.

  python experiments/make_embedded_untrimmednet.py --src path/to/uNet_test.npy
"""

import argparse
import gzip
import json
import os

import numpy as np

ROOT = os.path.join(os.path.dirname(__file__), '..', 'tal_jax', 'data',
                    'embedded')


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--src', required=True, help='uNet_test.npy')
  args = parser.parse_args()
  scores = np.load(args.src)
  with gzip.open(os.path.join(ROOT, 'thumos14_subset.json.gz'), 'rt') as f:
    videos = sorted(json.load(f)['test'])
  numbers = np.array([int(v[-4:]) for v in videos], np.int32)
  out = os.path.join(ROOT, 'thumos14_untrimmednet_test.npz')
  np.savez_compressed(out, video_numbers=numbers,
                      scores=scores[numbers - 1].astype(np.float32))
  print(f'wrote {out}: {len(numbers)} videos')


if __name__ == '__main__':
  main()
