r"""Plots AR-AN curves and per-video timelines (PNG, matplotlib Agg).

  python -m tal_jax.tools.plot ar-an --gt anet_anno_val.json \
      --proposals bmn.json bsn.json --labels BMN BSN --out ar_an.png
  python -m tal_jax.tools.plot timeline --gt anet_anno_val.json \
      --proposals bmn.json --video v_0ABC --top 10 --out timeline.png

ar-an: average recall (mean over tIoU 0.5:0.05:0.95) against the average
number of proposals per video, one curve per file, AUC in the legend.
timeline: the video's ground-truth segments and its top proposals by score.
"""

import argparse
import warnings

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from tal_jax import errors  # pylint: disable=g-import-not-at-top
from tal_jax import evaluation
from tal_jax import results_io
from tal_jax.tools import evaluate as evaluate_tool


def ar_an_curve(gt, proposals, max_avg_proposals=100):
  """(proposals_per_video [100], avg_recall [100], auc %) of one file."""
  gt_arrays = results_io.gt_segments(gt)
  arrays = results_io.proposal_arrays(proposals)
  mapping = evaluation.match_video_ids(gt_arrays, arrays)
  matched = {g: arrays[v] for v, g in mapping.items() if g}
  total = sum(len(p) for p in arrays.values())
  _, avg_recall, ppv, auc = evaluation.average_recall_at_avg_proposals(
      gt_arrays, matched, total, max_avg_proposals)
  return ppv, avg_recall, auc


def plot_ar_an(curves, out):
  """curves: [(label, ppv, avg_recall, auc)] -> PNG at `out`."""
  fig, ax = plt.subplots(figsize=(6, 4.5))
  for label, ppv, recall, auc in curves:
    ax.plot(ppv, recall, label=f'{label} (AUC {auc:.2f})')
  ax.set_xlabel('average number of proposals per video')
  ax.set_ylabel('average recall (tIoU 0.5:0.05:0.95)')
  ax.set_ylim(0, 1)
  ax.grid(alpha=0.3)
  ax.legend(loc='lower right')
  _save(fig, out)


def plot_timeline(video, gt_segments, proposals, duration, top, out):
  """gt_segments [G, 2]; proposals [P, 3] (start, end, score) -> PNG."""
  order = np.argsort(-proposals[:, 2], kind='stable')[:top]
  fig, ax = plt.subplots(figsize=(8, 1.2 + 0.3 * (len(order) + 1)))
  ax.broken_barh([(s, e - s) for s, e in gt_segments], (len(order), 0.8),
                 facecolors='tab:green')
  for row, i in enumerate(order[::-1]):
    s, e, score = proposals[i]
    ax.broken_barh([(s, e - s)], (row, 0.8), facecolors='tab:blue',
                   alpha=float(np.clip(0.25 + 0.75 * score, 0, 1)))
    ax.text(e, row + 0.4, f' {score:.2f}', va='center', fontsize=7)
  ax.set_yticks(np.arange(len(order) + 1) + 0.4)
  ax.set_yticklabels([f'#{k + 1}' for k in range(len(order))][::-1] + ['gt'])
  ax.set_xlim(0, duration or max(np.max(proposals[:, 1], initial=0),
                                 np.max(gt_segments[:, 1], initial=0)))
  ax.set_xlabel('seconds')
  ax.set_title(f'{video}: ground truth and top {len(order)} proposals')
  _save(fig, out)


def _save(fig, out):
  fig.tight_layout()
  with errors.atomic_path(out, '.png') as tmp:
    fig.savefig(tmp, format='png', dpi=120)
  plt.close(fig)


def _ar_an(args):
  labels = args.labels or args.proposals
  if len(labels) != len(args.proposals):
    raise errors.TalError('--labels needs one label per --proposals file')
  gt = evaluate_tool.load_gt(args)
  curves = [(label, *ar_an_curve(gt, results_io.read_results(path)))
            for label, path in zip(labels, args.proposals)]
  plot_ar_an(curves, args.out)


def _timeline(args):
  gt = evaluate_tool.load_gt(args)
  proposals = results_io.proposal_arrays(
      results_io.read_results(args.proposals[0]))
  gt_id = evaluation.match_video_ids(gt, [args.video])[args.video]
  prop_id = evaluation.match_video_ids(proposals, [args.video])[args.video]
  if gt_id is None:
    raise errors.TalError(f'{args.gt}: no video {args.video}')
  props = proposals[prop_id] if prop_id else np.zeros((0, 3))
  duration = results_io.read_durations(args.gt).get(gt_id)
  plot_timeline(args.video, results_io.gt_segments(gt)[gt_id], props,
                duration, args.top, args.out)


def main(argv=None):
  parser = argparse.ArgumentParser(description='AR-AN curves and per-video '
                                   'timelines as PNG.')
  sub = parser.add_subparsers(dest='kind', required=True)
  for name, help_text in (('ar-an', 'AR-AN curve of one or more files'),
                          ('timeline', 'gt vs top proposals of one video')):
    p = sub.add_parser(name, help=help_text)
    evaluate_tool.add_gt_args(p)
    p.add_argument('--proposals', nargs='+', required=True,
                   help='proposals JSON file(s)')
    p.add_argument('--out', required=True, help='output PNG')
    if name == 'ar-an':
      p.add_argument('--labels', nargs='+', help='legend label per file')
    else:
      p.add_argument('--video', required=True, help='video id (v_ optional)')
      p.add_argument('--top', type=int, default=10,
                     help='proposals to draw')
  args = parser.parse_args(argv)
  if getattr(args, 'top', 1) < 1:
    raise errors.TalError(f'--top must be >= 1, got {args.top}')
  errors.check_writable(args.out, '--out')
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    (_ar_an if args.kind == 'ar-an' else _timeline)(args)
  for w in caught:
    print(f'warning: {w.message}')
  print(f'wrote {args.out}')
  return args.out


if __name__ == '__main__':
  errors.run_cli(main)
