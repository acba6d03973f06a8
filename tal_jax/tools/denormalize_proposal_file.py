r"""De-normalises a TAG proposal list: fractions of the video -> frame numbers.

  python -m tal_jax.tools.denormalize_proposal_file \
      --norm-proposal-file data/thumos14/thumos14_tag_val_normalized_proposal_list.txt \
      --frame-dir data/thumos14/rawframes/val
  # -> data/thumos14/thumos14_tag_val_proposal_list.txt

Text identical to MMAction2 0.24.1's `tools/data/denormalize_proposal_file.py
thumos14 --norm-proposal-file F --data-prefix DIR`. Per video of the input (in
its order) the output block is: `# idx` (0, 1, ... whatever the input numbers),
the video id, num_frames, fps `1`, the gts `label int(start * num_frames)
int(end * num_frames)`, the proposals `label best_iou overlap_self int(start *
num_frames) int(end * num_frames)` with the two scores as '{:.04f}'. A video
with 0 gts or 0 proposals keeps its `0` count line and no rows. num_frames is
the number of files whose names start with `img_` in `<frame-dir>/<video>`
(as `parse_directory(level=1)` counts them: gaps, other extensions and sub
folders named img_* all count). The default output is the input's file name
without 'normalized_' (upstream removes it from the whole path).

Unlike MMAction2: a video without a frame folder is a one-line error naming
both (upstream: KeyError), as is a folder whose flow_x_* and flow_y_* counts
differ (upstream checks every folder under the prefix, this only the listed
ones), an input without any video block (upstream writes an empty file) and an
output path equal to the input.
"""

import argparse
import os

import numpy as np

from tal_jax import errors
from tal_jax import results_io

RGB_PREFIX = 'img_'
FLOW_X_PREFIX = 'flow_x_'
FLOW_Y_PREFIX = 'flow_y_'


def count_rgb_frames(frame_dir, video_id):
  """Number of `img_*` entries in `<frame_dir>/<video_id>` (parse_directory).

  Raises TalError when the folder is missing or its flow_x_* / flow_y_*
  counts differ (parse_directory's ValueError).
  """
  folder = os.path.join(frame_dir, video_id)
  if not os.path.isdir(folder):
    raise errors.TalError(f'video {video_id}: no frame folder {folder}')
  try:
    names = os.listdir(folder)
  except OSError as e:
    raise errors.TalError(f'{folder}: cannot list ({e.strerror})') from None

  def count(prefix):
    return sum(name.startswith(prefix) for name in names)

  num_x, num_y = count(FLOW_X_PREFIX), count(FLOW_Y_PREFIX)
  if num_x != num_y:
    raise errors.TalError(f'{folder}: {num_x} flow_x_* but {num_y} flow_y_* '
                          'files')
  return count(RGB_PREFIX)


def _check_numbers(video):
  """TalError unless labels are integers (read_proposal_list rejects
  non-finite numbers)."""
  for rows, what in ((video.gts, 'gt'), (video.proposals, 'proposal')):
    if (rows[:, 0] != np.round(rows[:, 0])).any():
      raise errors.TalError(f'video {video.video_id}: a {what} label is not '
                            'an integer')


def denormalize_video(idx, video, num_frames):
  """One video's block of the de-normalised list.

  Args:
    idx: running number of the video in the list (the `# idx` line).
    video: results_io.ProposalListVideo of the normalised list; gts [G, 3]
      (label, start, end) and proposals [P, 5] (label, best_iou,
      overlap_self, start, end), times as fractions of the video (float64,
      exactly the floats Python parses from the text).
    num_frames: int, frames of the video's rawframes folder.

  Returns:
    The block's text, each line ending in a newline.
  """
  _check_numbers(video)
  lines = [f'# {idx}', video.video_id, f'{num_frames}', '1',
           f'{len(video.gts)}']
  lines += [f'{int(g[0])} {int(float(g[1]) * num_frames)} '
            f'{int(float(g[2]) * num_frames)}' for g in video.gts]
  lines.append(f'{len(video.proposals)}')
  lines += [f'{int(p[0])} {float(p[1]):.04f} {float(p[2]):.04f} '
            f'{int(float(p[3]) * num_frames)} {int(float(p[4]) * num_frames)}'
            for p in video.proposals]
  return '\n'.join(lines) + '\n'


def denormalize(videos, frame_dir):
  """De-normalised list text of `videos` (read_proposal_list's list).

  Returns:
    (text, number of videos whose folder holds no img_* file).
  """
  counts, blocks = {}, []
  for idx, video in enumerate(videos):
    if video.video_id not in counts:
      counts[video.video_id] = count_rgb_frames(frame_dir, video.video_id)
    blocks.append(denormalize_video(idx, video, counts[video.video_id]))
  empty = sum(1 for n in counts.values() if n == 0)
  return ''.join(blocks), empty


def default_output(norm_proposal_file):
  """The input path with 'normalized_' removed from its file name."""
  head, name = os.path.split(norm_proposal_file)
  return os.path.join(head, name.replace('normalized_', ''))


def _check_paths(norm_proposal_file, frame_dir, output):
  if not os.path.isdir(frame_dir):
    raise errors.TalError(f'{frame_dir}: frame folder not found')
  if os.path.realpath(output) == os.path.realpath(norm_proposal_file):
    raise errors.TalError(f'{output}: output would overwrite the input; pass '
                          '--output')


def parse_args(argv=None):
  parser = argparse.ArgumentParser(
      description='De-normalise a TAG proposal list (times as fractions of '
      'the video) into frame numbers, counting each video\'s img_* '
      'rawframes (MMAction2 tools/data/denormalize_proposal_file.py).')
  parser.add_argument('--norm-proposal-file', required=True,
                      help='normalised proposal list, e.g. '
                      'thumos14_tag_val_normalized_proposal_list.txt')
  parser.add_argument('--frame-dir', required=True,
                      help='folder of rawframes folders <video>/img_*.jpg '
                      '(upstream --data-prefix)')
  parser.add_argument('--output', default=None,
                      help='output list (default: the input file name '
                      'without "normalized_")')
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  output = args.output or default_output(args.norm_proposal_file)
  _check_paths(args.norm_proposal_file, args.frame_dir, output)
  print(f'Converting from {args.norm_proposal_file}.')
  videos = results_io.read_proposal_list(args.norm_proposal_file)
  if not videos:
    raise errors.TalError(f'{args.norm_proposal_file}: no "# idx" video '
                          'blocks')
  text, empty = denormalize(videos, args.frame_dir)
  errors.write_text(output, text)
  if empty:
    print(f'warning: {empty} video folder(s) hold no img_* frame; their '
          'times are all 0')
  print(f'Wrote {len(videos)} videos to {output}.')
  return output


if __name__ == '__main__':
  errors.run_cli(main)
