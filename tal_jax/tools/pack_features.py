r"""Packs one ActivityNet split into features.npy + videos.json.

  python -m tal_jax.tools.pack_features \
      --feature-dir data/ActivityNet/activitynet_feature_cuhk/csv_mean_100 \
      --ann-file data/ActivityNet/anet_anno_train.json \
      --out data/ActivityNet/packed/train \
      [--temporal-dim 100 --feat-dim 400 --skip-bad-videos]

Reads every video of --ann-file once (CSV or .npy, [T, D]) and writes a folder
that `tal_jax.data.activitynet.load_packed` memory-maps; the folder appears only
when complete. Without --skip-bad-videos the first missing or malformed feature
file stops the tool with one line naming it (exit 2).
"""

import argparse
import sys
import warnings

from tal_jax import errors
from tal_jax.data import activitynet


def main(argv=None) -> activitynet.VideoSet:
  parser = argparse.ArgumentParser(
      description='Pack an ActivityNet split (feature files + annotation '
      'JSON) into features.npy + videos.json.')
  parser.add_argument('--feature-dir', required=True,
                      help='folder of v_<id>.csv or .npy files, [T, D] each')
  parser.add_argument('--ann-file', required=True,
                      help='MMAction2 annotation JSON (anet_anno_*.json)')
  parser.add_argument('--out', required=True, help='output folder')
  parser.add_argument('--temporal-dim', type=int, default=100, help='T')
  parser.add_argument('--feat-dim', type=int, default=400, help='D')
  parser.add_argument('--skip-bad-videos', action='store_true',
                      help='leave out (and count) videos whose features are '
                      'missing or malformed')
  args = parser.parse_args(argv)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    videos = activitynet.pack_split(
        args.feature_dir, args.ann_file, args.out, args.temporal_dim,
        args.feat_dim, skip_bad_videos=args.skip_bad_videos,
        progress=sys.stderr.isatty())
  for w in caught:
    print(f'warning: {w.message}', file=sys.stderr)
  print(f'{len(videos)} videos, features {tuple(videos.features.shape)} '
        f'-> {args.out}')
  return videos


if __name__ == '__main__':
  errors.run_cli(main)
