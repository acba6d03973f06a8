"""Builds tal_jax/data/embedded/thumos14_subset.json.gz from the real THUMOS14 files.

Sources (public repositories): frostinassiky/gtad
`data/thumos_annotations/{val,test}_Annotation.csv` and yjxiong/action-detection
`data/thumos_14/th14_{val,test}_durations.txt`, `test_avoid_videos.txt`.
Output: {'validation': {video: {'duration_second', 'annotations': [{'segment':
[s, e], 'label'}]}}, 'test': {...}}; 'Ambiguous' segments and the test videos
excluded from evaluation are dropped.

  python experiments/make_embedded_thumos14.py --src path/to/thumos14
"""

import argparse
import csv
import gzip
import json
import os

OUT = os.path.join(os.path.dirname(__file__), '..', 'tal_jax', 'data',
                   'embedded', 'thumos14_subset.json.gz')


def _durations(path):
  words = open(path).read().split()
  return {os.path.basename(a)[:-4]: float(b)
          for a, b in zip(words[::2], words[1::2])}


def _split(src, name, short):
  durations = _durations(os.path.join(src, f'th14_{short}_durations.txt'))
  avoid = set()
  avoid_file = os.path.join(src, f'{name}_avoid_videos.txt')
  if os.path.isfile(avoid_file):
    avoid = {line.split()[0] for line in open(avoid_file) if line.strip()}
  out = {}
  with open(os.path.join(src, f'{short}_Annotation.csv')) as f:
    for row in csv.DictReader(f):
      vid = row['video']
      if row['type'] == 'Ambiguous' or vid in avoid:
        continue
      rec = out.setdefault(vid, {'duration_second': durations[vid],
                                 'annotations': []})
      rec['annotations'].append({'segment': [float(row['start']),
                                             float(row['end'])],
                                 'label': row['type']})
  return dict(sorted(out.items()))


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--src', required=True)
  args = parser.parse_args()
  data = {'validation': _split(args.src, 'validation', 'val'),
          'test': _split(args.src, 'test', 'test')}
  with gzip.open(OUT, 'wt') as f:
    json.dump(data, f, separators=(',', ':'))
  print({k: len(v) for k, v in data.items()}, os.path.getsize(OUT), 'bytes')


if __name__ == '__main__':
  main()
