r"""Resamples variable-length snippet features to a fixed temporal size.

  python -m tal_jax.tools.resample_features --in-dir snippet_feats \
      --out-dir csv_mean_100 --temporal-dim 100 \
      [--ann-file anet_anno_action.json] [--method bsn|mmaction2] \
      [--format csv|npy] [--workers 4]

Every `<name>.csv` (header + L rows) or `<name>.npy` ([L, D]) in --in-dir
becomes `<name>.csv|.npy` with T rows in --out-dir (see tal_jax/data/resample.py).
The BSN method places snippets in seconds, so it reads duration_second and
duration_frame from --ann-file; without one it assumes duration_frame = 16 L at
--fps (only the 1e-4 s margin depends on it). CSVs are written with 9
significant digits, which round-trip float32 exactly.
"""

import argparse
import functools
import os
import sys
from concurrent import futures

import numpy as np

from tal_jax import errors
from tal_jax.data import activitynet
from tal_jax.data import resample


def _list_inputs(in_dir: str) -> list[str]:
  if not os.path.isdir(in_dir):
    raise errors.TalError(f'input folder has no .csv or .npy files: {in_dir}')
  names = sorted(f for f in os.listdir(in_dir)
                 if f.endswith(('.csv', '.npy')))
  if not names:
    raise errors.TalError(f'input folder has no .csv or .npy files: {in_dir}')
  return names


def _durations(stems: list[str], ann_file: str | None):
  """{stem: (duration_second, duration_frame)}, or {} without --ann-file."""
  if not ann_file:
    return {}
  records = activitynet.load_annotations(ann_file)
  out = {}
  for stem in stems:
    rec = records.get(stem) or records.get('v_' + stem)
    if rec is None:
      raise errors.TalError(f'{ann_file}: video {stem} is not in the '
                            'annotation file')
    out[stem] = (rec['duration_second'], rec['duration_frame'])
  return out


def _resample_one(job, args) -> str:
  """Resamples one file; returns its output path."""
  file_name, durations = job
  stem = os.path.splitext(file_name)[0]
  data = activitynet.read_feature_array(
      os.path.join(args.in_dir, file_name), np.float64)
  if args.method == 'mmaction2':
    out = resample.mmaction2_pool_features(
        data, args.temporal_dim, args.num_sample_per_bin, args.pool_type)
  else:
    seconds, frames = durations or (len(data) * 16 / args.fps, len(data) * 16)
    out = resample.bsn_pool_features(
        data, args.temporal_dim, seconds, frames, args.num_sample_per_bin,
        args.pool_type)
  out = out.astype(np.float32)
  path = os.path.join(args.out_dir, f'{stem}.{args.format}')
  if args.format == 'npy':
    with errors.atomic_path(path, '.npy') as tmp:
      np.save(tmp, out)
  else:
    activitynet.write_features_csv(path, out, significant_digits=9)
  return path


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      description='Resample [L, D] snippet features to [T, D] (BSN poolData '
      'or MMAction2 pool_feature).')
  p.add_argument('--in-dir', required=True, help='folder of .csv/.npy files')
  p.add_argument('--out-dir', required=True, help='output folder')
  p.add_argument('--temporal-dim', type=int, default=100, help='T')
  p.add_argument('--ann-file', help='annotation JSON with duration_second '
                 'and duration_frame per video (BSN method)')
  p.add_argument('--fps', type=float, default=30.0,
                 help='assumed fps when there is no --ann-file')
  p.add_argument('--method', choices=('bsn', 'mmaction2'), default='bsn')
  p.add_argument('--num-sample-per-bin', type=int, default=3)
  p.add_argument('--pool-type', choices=('mean', 'max'), default='mean')
  p.add_argument('--format', choices=('csv', 'npy'), default='csv')
  p.add_argument('--workers', type=int, default=1, help='processes')
  return p


def main(argv=None) -> list[str]:
  args = _parser().parse_args(argv)
  files = _list_inputs(args.in_dir)
  durations = _durations([os.path.splitext(f)[0] for f in files],
                         args.ann_file)
  jobs = [(f, durations.get(os.path.splitext(f)[0])) for f in files]
  os.makedirs(args.out_dir, exist_ok=True)
  work = functools.partial(_resample_one, args=args)
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  bar = functools.partial(tqdm, total=len(jobs), desc='resampling',
                          disable=not sys.stderr.isatty())
  if args.workers > 1:
    with futures.ProcessPoolExecutor(args.workers) as ex:
      paths = list(bar(ex.map(work, jobs, chunksize=8)))
  else:
    paths = list(bar(map(work, jobs)))
  print(f'{len(paths)} videos -> {args.out_dir}')
  return paths


if __name__ == '__main__':
  errors.run_cli(main)
