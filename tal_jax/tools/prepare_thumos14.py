r"""Builds OpenTAD's thumos_14_anno.json from the official THUMOS14 files.

  python -m tal_jax.tools.prepare_thumos14 --src data/thumos14 \
      --out data/thumos14/thumos_14_anno.json [--video-dir data/thumos14/videos]

--src holds the release's temporal_annotations_{validation,test}/ folders (or
G-TAD's {val,test}_Annotation.csv) and the durations files
(th14_{val,test}_durations.txt or {validation,test}_durations.txt). Each
video's frame count is read from its container in --video-dir (<video>.mp4),
or else taken as round(seconds x --fps). The json is what
configs/bmn_thumos14.py and configs/bsn_*_thumos14.py read as
config.data.ann_file_{train,val,test}: validation videos are subset
'training', test videos 'validation', as in OpenTAD's file.
"""

import argparse
import os

from tal_jax import errors
from tal_jax.data import thumos14_official


def frame_counter(video_dir: str | None, fps: float):
  """frames_of(video, seconds): from the container in `video_dir` (its
  frame count, else its duration x fps), or round(seconds x fps)."""
  if not video_dir:
    return lambda video, seconds: round(seconds * fps)
  from tal_jax.features import video as video_lib  # pylint: disable=g-import-not-at-top

  def frames_of(video, seconds):
    path = os.path.join(video_dir, video + '.mp4')
    if not os.path.isfile(path):
      raise errors.TalError(f'video {video}: {path} not found')
    info = video_lib.video_info(path)
    if info['num_frames']:
      return info['num_frames']
    rate = info['fps'] or fps
    return round((info['duration_second'] or seconds) * rate)
  return frames_of


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--src', required=True,
                      help='folder of the official THUMOS14 annotation files')
  parser.add_argument('--out', required=True, help='the json to write')
  parser.add_argument('--video-dir', default=None,
                      help='folder of <video>.mp4 to read frame counts from')
  parser.add_argument('--fps', type=float, default=30.0,
                      help='frames per second without --video-dir (30)')
  args = parser.parse_args(argv)
  if not args.fps > 0:
    raise errors.TalError(f'--fps must be > 0, got {args.fps}')
  if not os.path.isdir(args.src):
    raise errors.TalError(f'--src {args.src}: not a folder')
  errors.check_writable(args.out, '--out')
  anno = thumos14_official.anno_database(
      args.src, frame_counter(args.video_dir, args.fps))
  errors.write_json(args.out, anno)
  subsets = [r['subset'] for r in anno['database'].values()]
  print(f'wrote {args.out}: {subsets.count("training")} validation videos '
        f'(subset training), {subsets.count("validation")} test videos '
        '(subset validation)')
  return anno


if __name__ == '__main__':
  errors.run_cli(main)
