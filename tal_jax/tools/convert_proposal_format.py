r"""Converts a proposals JSON (BMN/BSN output) into an SSN/P-GCN proposal list.

  python -m tal_jax.tools.convert_proposal_format \
      --ann-file data/ActivityNet/anet_anno_val.json \
      --activity-index-file data/ActivityNet/anet_activity_indexes_val.txt \
      --proposal-file results.json \
      --formatted-proposal-file anet_val_formatted_proposal.txt

Text identical to MMAction2's tools/data/activitynet/convert_proposal_format.py.
Per video: `#index`, id (without `v_`), duration_frame, fps, the gts
(`label start end`, seconds), the proposals (`label best_iou best_iop start
end`). fps comes from the anno json (anet_anno_{train,val}.json hold it) or
from --video-info. The activity index file lists one class per line (line i
is class i); a first line `action` (the header of action_name.csv) is skipped.
Unlike MMAction2, a video without proposals is written with 0 proposals (and
counted in a warning) instead of crashing.
"""

import argparse

from tal_jax import errors
from tal_jax import results_io


def read_activity_index(path):
  """{class name: index} from a one-class-per-line file."""
  try:
    with open(path) as f:
      names = [line.strip() for line in f]
  except OSError as e:
    raise errors.TalError(f'{path}: cannot read ({e.strerror})') from None
  if names and names[0] == 'action':
    names = names[1:]
  names = [n for n in names if n]
  if not names:
    raise errors.TalError(f'{path}: no class names')
  return {n: i for i, n in enumerate(names)}


def _video_fps(vid, record, info, path):
  if 'fps' in record:
    return record['fps']
  row = info.get(vid) if info else None
  if row is None:
    raise errors.TalError(f'{path}: video {vid} has no "fps"; pass '
                          '--video-info video_info_new.csv')
  return float(row['fps'])


def convert(anno, activity_index, proposals, info=None, ann_path='anno'):
  """Proposal-list text blocks, one per anno video (anno file order).

  Args:
    anno: MMAction2 anno dict {'v_<id>': {duration_frame, fps?, annotations}}.
    activity_index: {class name: index}.
    proposals: {video id (without v_): [{'segment', 'score'}]}.
    info: optional video_info csv rows (fps fallback).

  Returns:
    (blocks, number of anno videos without proposals).
  """
  blocks, missing = [], 0
  for index, (name, record) in enumerate(anno.items()):
    vid = name[2:]
    try:
      gts = [a['segment'] + [activity_index[a['label']]]
             for a in record['annotations']]
      num_frames = record['duration_frame']
    except KeyError as e:
      raise errors.TalError(f'{ann_path}: video {name}: unknown class or '
                            f'missing key {e}') from None
    props = proposals.get(vid, proposals.get(name))
    missing += props is None
    segs = [p['segment'] + [p['score']] for p in props or []]
    blocks.append(results_io.format_proposal_list_video(
        index, vid, num_frames, _video_fps(name, record, info, ann_path),
        gts, segs))
  return blocks, missing


def main(argv=None):
  parser = argparse.ArgumentParser(
      description='Proposals JSON -> SSN/P-GCN proposal list (MMAction2 '
      'convert_proposal_format.py).')
  parser.add_argument('--ann-file', required=True,
                      help='MMAction2 anno json (e.g. anet_anno_val.json)')
  parser.add_argument('--activity-index-file', required=True,
                      help='class names, one per line')
  parser.add_argument('--proposal-file', required=True,
                      help='proposals (ActivityNet results JSON)')
  parser.add_argument('--formatted-proposal-file', required=True,
                      help='output proposal list')
  parser.add_argument('--video-info', default=None,
                      help='video_info_new.csv (fps, when the anno json has '
                      'none)')
  args = parser.parse_args(argv)
  anno = results_io.read_json(args.ann_file)
  if not isinstance(anno, dict):
    raise errors.TalError(f'{args.ann_file}: expected an object of videos')
  info = (results_io.read_video_info_csv(args.video_info)
          if args.video_info else None)
  blocks, missing = convert(anno, read_activity_index(args.activity_index_file),
                            results_io.read_results(args.proposal_file), info,
                            args.ann_file)
  if missing:
    print(f'warning: {missing} of {len(blocks)} videos have no proposals')
  results_io.write_proposal_list(args.formatted_proposal_file, blocks)
  print(f'wrote {args.formatted_proposal_file} ({len(blocks)} videos)')
  return len(blocks)


if __name__ == '__main__':
  errors.run_cli(main)
