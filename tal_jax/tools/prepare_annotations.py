r"""Builds anet_anno_{train,val,test,full}.json as MMAction2 does.

  python -m tal_jax.tools.prepare_annotations \
      --anno data/ActivityNet/anet_anno_action.json \
      --video-info data/ActivityNet/video_info_new.csv \
      --out-dir data/ActivityNet

Byte-identical to MMAction2's tools/data/activitynet/process_annotations.py on
the same inputs (see tal_jax/data/splits.py).
"""

import argparse

from tal_jax import errors
from tal_jax.data import splits


def main(argv=None) -> dict[str, int]:
  parser = argparse.ArgumentParser(
      description='Split anet_anno_action.json by video_info_new.csv into '
      'anet_anno_{train,val,test,full}.json (MMAction2 format).')
  parser.add_argument('--anno', required=True,
                      help='anet_anno_action.json (all videos)')
  parser.add_argument('--video-info', required=True,
                      help='video_info_new.csv (video,...,fps,rfps,subset,...)')
  parser.add_argument('--out-dir', required=True, help='output folder')
  args = parser.parse_args(argv)
  counts = splits.prepare_annotations(args.anno, args.video_info, args.out_dir)
  for split in splits.SPLITS:
    print(f'{splits.split_path(args.out_dir, split)}: {counts[split]} videos')
  return counts


if __name__ == '__main__':
  errors.run_cli(main)
