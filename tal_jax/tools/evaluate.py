r"""Scores proposals (AR@AN, AUC) and/or detections (mAP) against ground truth.

  python -m tal_jax.tools.evaluate \
      --gt data/ActivityNet/anet_anno_val.json \
      --proposals work_dirs/bmn/results.json \
      --detections det_result.json --out metrics.json

Numbers as MMAction2 1.2.0 (ANetMetric 'AR@AN', ActivityNetLocalization):
`AR@1 AR@5 AR@10 AR@100` fractions, `AUC` percent, `mAP@0.50` ... `mAP@0.95`
and `average_mAP` fractions (--dataset thumos14: `mAP@0.30` ... `mAP@0.70`
as MMAction2 0.24.1's SSN; --dataset thumos14_opentad: `AR@50` ...
`AR@1000` over tIoU 0.5:0.05:1.0 as BSN/BMN report THUMOS14, and mAP as
OpenTAD's evaluator, for the files `--config=configs/bmn_thumos14.py
--mode=test` writes: --proposals proposals.json --detections results.json).
--gt takes MMAction2's anno json (or the full
anet_anno_action.json with --subset validation --video-info video_info_new.csv)
or an ActivityNet ground-truth json (`database`, with optional --subset).
"""

import argparse
import warnings

from tal_jax import errors
from tal_jax import evaluation
from tal_jax import results_io


def add_gt_args(parser):
  """--gt, --subset, --video-info."""
  parser.add_argument('--gt', required=True,
                      help='ground truth: MMAction2 anno json or ActivityNet '
                      'json with "database"')
  parser.add_argument('--subset', default=None,
                      help='keep only this subset (e.g. validation)')
  parser.add_argument('--video-info', default=None,
                      help='video_info_new.csv, to find the subset of '
                      'anno-json videos')


def load_gt(args):
  return results_io.read_ground_truth(args.gt, args.subset, args.video_info)


def format_table(metrics):
  """Two-column text table of a metrics dict."""
  width = max(len(k) for k in metrics)
  lines = [f'{"metric":<{width}}  value', '-' * (width + 12)]
  lines += [f'{k:<{width}}  {v:.4f}' for k, v in metrics.items()]
  return '\n'.join(lines)


def evaluate(gt, proposals=None, detections=None, tie_order='mmaction2',
             max_avg_proposals=100, dataset='activitynet'):
  """Metrics dict for results dicts as `results_io.read_results` returns.

  dataset 'thumos14' scores detections as MMAction2 0.24.1's SSN (tIoU
  0.3..0.7, `evaluation.thumos14_map`) instead of ActivityNet's.
  """
  metrics = {}
  if dataset == 'thumos14_opentad':
    if proposals is not None:
      metrics.update(evaluation.thumos14_ar_an(
          results_io.gt_segments(gt), results_io.proposal_arrays(proposals)))
    if detections is not None:
      metrics.update(evaluation.thumos14_opentad_map(gt, detections))
    return metrics
  if proposals is not None:
    metrics.update(evaluation.ar_an_metrics(
        results_io.gt_segments(gt), results_io.proposal_arrays(proposals),
        max_avg_proposals))
  if detections is not None and dataset == 'thumos14':
    metrics.update(evaluation.thumos14_map(gt, detections))
  elif detections is not None:
    metrics.update(evaluation.activitynet_map(gt, detections,
                                              tie_order=tie_order))
  return metrics


def main(argv=None):
  parser = argparse.ArgumentParser(
      description='AR@AN/AUC of proposals and ActivityNet mAP of detections, '
      'as MMAction2 computes them.')
  add_gt_args(parser)
  parser.add_argument('--proposals', help='proposals (results JSON)')
  parser.add_argument('--detections',
                      help='detections with "label" (results JSON)')
  parser.add_argument('--out', help='write the metrics JSON here')
  parser.add_argument('--tie-order', choices=evaluation.TIE_ORDERS,
                      default='mmaction2',
                      help='score-tie order for mAP: mmaction2 (stable sort, '
                      'default) or official (ActivityNet toolkit)')
  parser.add_argument('--max-avg-proposals', type=int, default=100,
                      help='AN at the end of the AR-AN curve')
  parser.add_argument('--dataset',
                      choices=('activitynet', 'thumos14', 'thumos14_opentad'),
                      default='activitynet',
                      help='protocol: ActivityNet (tIoU 0.5:0.05:0.95), '
                      'THUMOS14 (SSN eval_ap, 0.3..0.7) or thumos14_opentad '
                      '(AR@50..1000 and OpenTAD mAP@0.3..0.7)')
  args = parser.parse_args(argv)
  if not args.proposals and not args.detections:
    raise errors.TalError('give --proposals and/or --detections')
  if args.max_avg_proposals < 1:
    raise errors.TalError(f'--max-avg-proposals must be >= 1, got '
                          f'{args.max_avg_proposals}')
  if args.out:
    errors.check_writable(args.out, '--out')
  gt = load_gt(args)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    metrics = evaluate(
        gt,
        results_io.read_results(args.proposals) if args.proposals else None,
        results_io.read_results(args.detections) if args.detections else None,
        args.tie_order, args.max_avg_proposals, args.dataset)
  for w in caught:
    print(f'warning: {w.message}')
  print(format_table(metrics))
  if args.out:
    errors.write_json(args.out, metrics, indent=2)
    print(f'wrote {args.out}')
  return metrics


if __name__ == '__main__':
  errors.run_cli(main)
