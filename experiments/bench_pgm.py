"""Benchmark: BSN proposal generation (PGM), tal_jax vs MMAction2 1.2.0.

Takes the 4,728 ActivityNet-1.3 validation videos' real annotations
(tests/data/) and synthesises a TEM output per video (T=100:
action plateaus over the gts, start/end bumps at the gt boundaries, plus
noise), writes them as MMAction2 TEM result CSVs, then runs the whole PGM
stage of tools/misc/bsn_proposal_generation.py (test mode) both ways:
  read TEM CSVs -> candidate proposals -> write proposal CSVs ->
  read them back -> BSP features (top_k 1000) -> write .npy
tal_jax: tal_jax.localizers.bsn.pgm + tal_jax.localizers.bsn.files on all videos, one process.
MMAction2: generate_candidate_proposals / generate_bsp_feature (its own
functions) and np.savetxt / np.save as the tool does, one process, in
the reference environment ($TAL_JAX_REFENV, experiments/README.md) on the
same TEM CSVs, for --ref-videos evenly spaced
videos (default 200); its time is extrapolated to all videos (the table says
so). Both sides' proposal CSVs and feature files are compared byte for byte /
value for value on the videos MMAction2 ran.

  python experiments/bench_pgm.py                 # ~2-3 min on 2 cores
  python experiments/bench_pgm.py --ref-videos 4728   # no extrapolation (slow)
"""

import argparse
import csv
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tal_jax  # pylint: disable=g-import-not-at-top,unused-import
from tal_jax.localizers.bsn import files as bsn_io  # pylint: disable=g-import-not-at-top
from tal_jax.localizers.bsn import pgm  # pylint: disable=g-import-not-at-top
from tal_jax.ops import segments
import refenv  # pylint: disable=g-import-not-at-top

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    'tests', 'data')
T = 100
TOP_K = 1000

REFERENCE = r'''
import json, os, sys, time, types
import numpy as np
import mmaction
root = os.path.dirname(mmaction.__file__)
for name, sub in [('mmaction.models', 'models'),
                  ('mmaction.models.localizers', 'models/localizers')]:
  m = types.ModuleType(name); m.__path__ = [os.path.join(root, sub)]
  sys.modules[name] = m
from mmaction.models.localizers.utils import bsn_utils
work, names_file = sys.argv[1], sys.argv[2]
infos = json.load(open(names_file))
tem_dir, prop_dir, feat_dir = (os.path.join(work, d) for d in
                               ('tem', 'ref_prop', 'ref_feat'))
os.makedirs(prop_dir, exist_ok=True); os.makedirs(feat_dir, exist_ok=True)
idx = range(len(infos))
t0 = time.perf_counter()
props = bsn_utils.generate_candidate_proposals(idx, infos, tem_dir, 100, 0.5)
t1 = time.perf_counter()
header = 'tmin,tmax,tmin_score,tmax_score,score,match_iou,match_ioa'
for name, p in props.items():
  np.savetxt(os.path.join(prop_dir, name + '.csv'), p, header=header,
             delimiter=',', comments='')
t2 = time.perf_counter()
feats = bsn_utils.generate_bsp_feature(idx, infos, tem_dir, prop_dir,
                                       top_k=1000)
t3 = time.perf_counter()
for name, f in feats.items():
  np.save(os.path.join(feat_dir, name + '.npy'), f)
t4 = time.perf_counter()
print(json.dumps(dict(candidates=t1 - t0, write_proposals=t2 - t1,
                      bsp_features=t3 - t2, write_features=t4 - t3,
                      total=t4 - t0)))
'''


def val_records():
  """{name: record} of the 4,728 validation videos, in file order."""
  with gzip.open(os.path.join(DATA, 'video_info_new.csv.gz'), 'rt') as f:
    val = {r['video'] for r in csv.DictReader(f) if r['subset'] == 'validation'}
  with gzip.open(os.path.join(DATA, 'anet_anno_action.json.gz'), 'rt') as f:
    anno = json.load(f)
  return {k: v for k, v in anno.items() if k in val}


def synthetic_tem(records, seed=0):
  """[N, T, 3] float32 TEM-like outputs built around each video's gts."""
  rng = np.random.default_rng(seed)
  x = (np.arange(T) + 0.5) / T
  out = np.empty((len(records), T, 3), np.float32)
  for i, rec in enumerate(records):
    gt = segments.normalize_gt(rec)
    inside = ((x[None] >= gt[:, :1]) & (x[None] <= gt[:, 1:])).any(0)
    action = 0.1 + 0.8 * inside
    bump = lambda c: np.exp(-0.5 * ((x[None] - c[:, None]) / 0.02)**2).sum(0)
    start = 0.05 + 0.85 * bump(gt[:, 0])
    end = 0.05 + 0.85 * bump(gt[:, 1])
    y = np.stack([action, start, end], 1) + 0.04 * rng.standard_normal((T, 3))
    out[i] = np.clip(y, 0.01, 0.99)
  return out


def run_tal_jax(work, names, records, tem_output):
  """The PGM stage with tal_jax; returns {stage: seconds}."""
  prop_dir, feat_dir = os.path.join(work, 'prop'), os.path.join(work, 'feat')
  times = {}
  t0 = time.perf_counter()
  tem = np.stack([bsn_io.read_tem_result(
      bsn_io.video_path(os.path.join(work, 'tem'), n, '.csv')) for n in names])
  t1 = time.perf_counter()
  gts = [pgm.pgm_gt_segments(r, n) for n, r in zip(names, records)]
  props = pgm.generate_candidate_proposals(tem, gts, 0.5)
  t2 = time.perf_counter()
  for n, p in zip(names, props):
    bsn_io.write_pgm_proposals(bsn_io.video_path(prop_dir, n, '.csv'), p)
  t3 = time.perf_counter()
  loaded = [bsn_io.read_pgm_proposals(bsn_io.video_path(prop_dir, n, '.csv'),
                                      TOP_K) for n in names]
  t4 = time.perf_counter()
  feats = pgm.generate_bsp_feature(tem, loaded, top_k=TOP_K)
  t5 = time.perf_counter()
  for n, f in zip(names, feats):
    bsn_io.write_bsp_feature(bsn_io.video_path(feat_dir, n, '.npy'), f)
  t6 = time.perf_counter()
  times.update(read_tem=t1 - t0, candidates=t2 - t1, write_proposals=t3 - t2,
               read_proposals=t4 - t3, bsp_features=t5 - t4,
               write_features=t6 - t5, total=t6 - t0)
  times['num_proposals'] = float(np.mean([len(p) for p in props]))
  # The same computation without files (float32 round trips in memory).
  t0 = time.perf_counter()
  table = pgm.tem_result_table(tem_output)
  props = pgm.generate_candidate_proposals(table, gts, 0.5)
  pgm.generate_bsp_feature(table, props, top_k=TOP_K)
  times['in_memory'] = time.perf_counter() - t0
  return times


def run_reference(ref_python, work, names, records, subset):
  infos = [dict(records[i], video_name=names[i]) for i in subset]
  path = os.path.join(work, 'ref_infos.json')
  with open(path, 'w') as f:
    json.dump(infos, f)
  out = subprocess.run([ref_python, '-c', REFERENCE, work, path], check=True,
                       capture_output=True, text=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def compare(work, names, subset):
  """Counts videos whose proposal CSVs are byte-identical / features equal."""
  same_csv = same_feat = 0
  for i in subset:
    n = names[i]
    a = open(os.path.join(work, 'prop', n + '.csv'), 'rb').read()
    b = open(os.path.join(work, 'ref_prop', n + '.csv'), 'rb').read()
    same_csv += a == b
    fa = np.load(os.path.join(work, 'feat', n + '.npy'))
    fb = np.load(os.path.join(work, 'ref_feat', n + '.npy'))
    same_feat += fa.shape == fb.shape and np.array_equal(fa, fb)
  return same_csv, same_feat


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--ref-videos', type=int, default=200,
                      help='videos MMAction2 runs on (time extrapolated)')
  args = parser.parse_args(argv)
  ref_python = refenv.python(refenv.MMACTION2_120)
  by_name = val_records()
  names = list(by_name)
  records = [by_name[n] for n in names]
  n = len(names)
  tem_output = synthetic_tem(records)
  with tempfile.TemporaryDirectory() as work:
    for name, out in zip(names, tem_output):
      bsn_io.write_tem_result(bsn_io.video_path(os.path.join(work, 'tem'),
                                                name, '.csv'), out)
    ours = run_tal_jax(work, names, records, tem_output)
    k = min(args.ref_videos, n)
    subset = np.linspace(0, n - 1, k).round().astype(int).tolist()
    ref = run_reference(ref_python, work, names, records, subset)
    same_csv, same_feat = compare(work, names, subset)
  scale = n / k
  print(f'PGM, {n} videos (ActivityNet val annotations, synthetic TEM, T={T}),'
        f' {ours["num_proposals"]:.0f} proposals/video on average, '
        f'BSP top_k {TOP_K}')
  print(f'MMAction2 ran {k} evenly spaced videos; its times are x{scale:.2f}'
        ' (extrapolated)' if k < n else 'MMAction2 ran all videos')
  print('| stage | MMAction2 (s) | tal_jax (s) | speed-up |')
  print('|---|---|---|---|')
  rows = [('candidates (incl. reading TEM CSVs)', ref['candidates'],
           ours['read_tem'] + ours['candidates']),
          ('write proposal CSVs', ref['write_proposals'],
           ours['write_proposals']),
          ('BSP features (incl. reading CSVs)', ref['bsp_features'],
           ours['read_proposals'] + ours['bsp_features']),
          ('write .npy', ref['write_features'], ours['write_features']),
          ('total', ref['total'], ours['total'])]
  for label, r, o in rows:
    print(f'| {label} | {r * scale:.1f} | {o:.1f} | {r * scale / o:.0f}x |')
  compute = ref['candidates'] + ref['bsp_features']
  print(f'| candidates + BSP features, tal_jax in memory (no files) | '
        f'{compute * scale:.1f} | {ours["in_memory"]:.1f} | '
        f'{compute * scale / ours["in_memory"]:.0f}x |')
  print(f'identical on the {k} compared videos: proposal CSV bytes '
        f'{same_csv}/{k}, BSP features {same_feat}/{k}')


if __name__ == '__main__':
  main()
