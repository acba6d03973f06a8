"""`tools.infer --video`: videos -> feature files + an annotation JSON.

`features_from_videos(args)` extracts the features of --video (a file, a
folder or a .txt list) into --feature-dir (default <workdir>/video_features,
reused on the next run: files already there are skipped) with the TSN
recognisers of --rgb-checkpoint / --flow-checkpoint in --dump-score mode
(the 400-d features the BMN/BSN models read), writes an ActivityNet-style
annotation JSON of the videos (duration_second, duration_frame from the
container; feature_frame = duration_frame // 16 * 16; no ground truth), and
points args.features / args.ann_file at them, so the rest of tools.infer
runs as on feature files.
"""

import argparse
import os
import sys

from tal_jax import errors
from tal_jax.engine import runlog
from tal_jax.features import extract
from tal_jax.features import video as video_lib
from tal_jax.tools import extract_features


def add_args(p: argparse.ArgumentParser) -> None:
  """The extraction flags of tools.infer (with --video, without
  --features)."""
  extract_features.add_extraction_args(p, required=False)
  p.add_argument('--feature-dir', default=None,
                 help='with --video: where the video features go (default '
                 '<workdir>/video_features)')
  p.add_argument('--skip-unreadable', action='store_true',
                 help='with --video: infer on the readable videos of a '
                 'folder or list and leave out the unreadable ones (by '
                 'default one unreadable video stops the run, exit 2)')


def unreadable_message(failed: dict, total: int, feature_dir: str) -> str:
  """The one line of a run stopped by unreadable videos."""
  names = [os.path.basename(v) for v in failed]
  shown = ', '.join(names[:3]) + (', ...' if len(names) > 3 else '')
  return (f'{len(failed)} of {total} videos could not be read ({shown}); '
          f'the features of the others are kept in {feature_dir}: fix or '
          'remove those videos, or pass --skip-unreadable')


def video_record(path: str, num_frames: int | None = None) -> dict:
  """Annotation record of a video from its container metadata."""
  info = video_lib.video_info(path)
  fps, seconds = info['fps'], info['duration_second']
  frames = num_frames or info.get('num_frames') or (
      round(seconds * fps) if fps and seconds else 0)
  if not frames:
    raise errors.TalError(f'{path}: cannot tell the number of frames')
  if not seconds:
    seconds = frames / fps if fps else frames / 30.0
  return {'duration_second': float(seconds), 'duration_frame': int(frames),
          'feature_frame': int(frames) // 16 * 16, 'annotations': []}


def features_from_videos(args) -> None:
  """Extracts args.video's features; sets args.features and args.ann_file."""
  if not args.rgb_checkpoint:
    raise errors.TalError('--video needs --rgb-checkpoint (and '
                          '--flow-checkpoint for the 400-d ActivityNet '
                          'features)')
  videos = video_lib.list_videos(args.video)
  feature_dir = args.feature_dir or os.path.join(args.workdir,
                                                 'video_features')
  extractor = extract_features.extractor_from_args(args, dump_score=True)
  log = lambda line: (print(line, file=sys.stderr) if line.startswith('error')
                      else runlog.info(line, args.quiet))
  report = extract.extract_videos(videos, feature_dir, extractor, 'csv',
                                  show_progress=runlog.show_progress(
                                      args.quiet), log=log)
  done = {**report.written, **report.skipped}
  if not done:
    raise errors.TalError(f'--video {args.video}: no video could be read')
  if report.failed and not args.skip_unreadable:
    raise errors.TalError(unreadable_message(report.failed, len(videos),
                                             feature_dir))
  records = {extract.feature_name(v): video_record(v) for v in done}
  ann_file = os.path.join(feature_dir, 'videos.json')
  errors.write_json(ann_file, records, indent=1)
  args.features = (next(iter(done.values())) if len(done) == 1
                   else feature_dir)
  args.ann_file = args.ann_file or ann_file
  args.video = None
