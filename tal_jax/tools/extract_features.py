r"""Videos -> ActivityNet features, MMAction2's route (tal_jax.features).

  python -m tal_jax.tools.extract_features --video my_videos/ \
      --out-dir data/ActivityNet/csv_mean_100 \
      --rgb-checkpoint tsn_rgb.pth --flow-checkpoint tsn_flow.pth --dump-score

--video: a video file, a folder of videos, or a .txt list (one path a line);
with --rawframes, an MMAction2 rawframes folder (img_00001.jpg,
flow_x_00001.jpg, flow_y_00001.jpg, ...) or a folder of them (the stored flow
frames are used as they are).
Per video: decode (PyAV), sample one RGB frame every 16 (+ 5 TV-L1 flow
frames around it), Resize(-1, 256) + CenterCrop(256), the TSN recognisers
(MMAction2 .pth files, read without torch) per clip, then pooling to 100
bins and RGB + flow concatenation: <out-dir>/v_<id>.csv ([100, 400] with
--dump-score and both ActivityNet checkpoints, as MMAction2's
activitynet_feature_postprocessing.py writes) or .npy (--format npy).
Without --dump-score the pooled backbone features (2048-d per stream).
Videos whose file exists are skipped (rerun to resume); files are written
atomically. A bad video prints one 'error: ...' line and the others go on;
the exit status is then 2.
"""

import argparse
import sys

from tal_jax import errors
from tal_jax.engine import runlog
from tal_jax.features import extract
from tal_jax.features import frame_folders
from tal_jax.features import video as video_lib


def add_extraction_args(p: argparse.ArgumentParser, required: bool) -> None:
  """--rgb-checkpoint, --flow-checkpoint, --dump-score ... (shared with
  tools.infer --video)."""
  p.add_argument('--rgb-checkpoint', required=required,
                 help='MMAction2 TSN RGB recogniser .pth')
  p.add_argument('--flow-checkpoint', default=None,
                 help='MMAction2 TSN flow recogniser .pth (10 input '
                 'channels); without it only RGB features')
  p.add_argument('--clip-batch', type=int, default=16,
                 help='clips per recogniser forward')
  p.add_argument('--no-flow-jpeg', action='store_true',
                 help='skip the JPEG round trip of the flow images '
                 '(MMAction2 stores them as JPEG before reading)')


def extractor_from_args(args, dump_score: bool) -> extract.Extractor:
  return extract.Extractor.from_checkpoints(
      args.rgb_checkpoint, args.flow_checkpoint, args.clip_batch,
      dump_score=dump_score, jpeg=not args.no_flow_jpeg)


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      description='Videos -> 100-bin TSN features (MMAction2 ActivityNet).')
  p.add_argument('--video', required=True,
                 help='video file, folder of videos, or .txt list')
  p.add_argument('--out-dir', required=True,
                 help='folder for v_<id>.csv / .npy')
  add_extraction_args(p, required=True)
  p.add_argument('--dump-score', action='store_true',
                 help='class scores (the ActivityNet 400-d features) instead '
                 'of pooled backbone features')
  p.add_argument('--rawframes', action='store_true',
                 help='--video is an MMAction2 rawframes folder (img_00001.jpg'
                 ', flow_x_00001.jpg, flow_y_00001.jpg ...) or a folder of '
                 'them, instead of video files')
  p.add_argument('--format', choices=('csv', 'npy'), default='csv')
  p.add_argument('--overwrite', action='store_true',
                 help='redo videos whose feature file exists')
  p.add_argument('--quiet', action='store_true', help='no progress bars')
  return p


def _log(line: str, args) -> None:
  """Error lines on stderr always, the others on stdout unless --quiet."""
  if line.startswith('error'):
    print(line, file=sys.stderr, flush=True)
  else:
    runlog.info(line, args.quiet)


def main(argv=None) -> extract.Report:
  args = _parser().parse_args(argv)
  videos = (frame_folders.list_frame_folders(args.video) if args.rawframes
            else video_lib.list_videos(args.video))
  extractor = extractor_from_args(args, args.dump_score)
  report = extract.extract_videos(
      videos, args.out_dir, extractor, args.format, args.overwrite,
      runlog.show_progress(args.quiet), log=lambda line: _log(line, args))
  runlog.info(f'{len(report.written)} written, {len(report.skipped)} '
              f'already there, {len(report.failed)} failed of {len(videos)} '
              'videos', args.quiet)
  if report.failed:
    raise errors.TalError(f'{len(report.failed)} of {len(videos)} videos '
                          'failed (see the error lines above)')
  return report


if __name__ == '__main__':
  errors.run_cli(main)
