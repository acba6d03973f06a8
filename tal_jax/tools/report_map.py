r"""Labels class-agnostic proposals from video-level classification, then mAP.

  python -m tal_jax.tools.report_map \
      --proposals results.json \
      --classification data/ActivityNet/cuhk_anet17_pred.json \
      --gt data/ActivityNet/anet_anno_val.json --det-output det_result.json

As MMAction2's tools/analysis_tools/report_map.py (`cuhk17_top1`): every
proposal of a video gets the video's top-1 class (highest score, the last one
on a tie) and keeps its own score. Never downloads: pass the classification
results file (`{"results": {video: [{"label", "score"}]}}`). Extensions:
--top-k K copies each proposal for the K best classes; --fusion multiply sets
the score to proposal score x class score (default none = MMAction2).
A proposal video without classification is dropped with a warning.
"""

import argparse
import warnings

from tal_jax import errors
from tal_jax import evaluation
from tal_jax import results_io
from tal_jax.tools import evaluate as evaluate_tool


def top_k_classes(predictions, k):
  """Best k of [{'label', 'score'}], best first; ties: the later one first.

  MMAction2 sorts ascending by score (stable) and takes the last k.
  """
  ranked = sorted(predictions, key=lambda x: x['score'])[-k:]
  return ranked[::-1]


def assign_labels(proposals, classification, top_k=1, fusion='none'):
  """{vid: [{segment, score}]} -> {vid: [{segment, score, label}]}.

  Args:
    proposals: `results_io.read_results` output.
    classification: {vid: [{'label', 'score'}]} video-level predictions; ids
      match with or without `v_`.
    top_k: classes per video; fusion: 'none' or 'multiply'.
  """
  mapping = evaluation.match_video_ids(classification, proposals)
  missing = [v for v, c in mapping.items() if c is None]
  if missing:
    warnings.warn(f'{len(missing)} proposal videos have no classification '
                  f'(e.g. {missing[0]}); their proposals are dropped')
  out = {}
  for vid, items in proposals.items():
    if mapping[vid] is None:
      continue
    classes = top_k_classes(classification[mapping[vid]], top_k)
    out[vid] = [dict(item, label=c['label'],
                     score=item['score'] * (c['score'] if fusion == 'multiply'
                                            else 1.0))
                for c in classes for item in items]
  return out


def _read_classification(path):
  data = results_io.read_json(path)
  results = data.get('results') if isinstance(data, dict) else None
  if not isinstance(results, dict):
    raise errors.TalError(f'{path}: no "results" object')
  for vid, preds in results.items():
    if not isinstance(preds, list) or not preds or not all(
        isinstance(p, dict) and 'label' in p and 'score' in p for p in preds):
      raise errors.TalError(f'{path}: video {vid}: expected a non-empty list '
                            'of {"label", "score"}')
  return results


def main(argv=None):
  parser = argparse.ArgumentParser(
      description='Assign video-level class labels to proposals and report '
      'ActivityNet detection mAP (MMAction2 report_map.py).')
  parser.add_argument('--proposals', required=True, help='proposals JSON')
  parser.add_argument('--classification', required=True,
                      help='video-level classification results JSON')
  evaluate_tool.add_gt_args(parser)
  parser.add_argument('--top-k', type=int, default=1,
                      help='classes per video (MMAction2: 1)')
  parser.add_argument('--fusion', choices=('none', 'multiply'),
                      default='none', help='detection score: proposal score '
                      '(none, MMAction2) or times the class score')
  parser.add_argument('--det-output', default='det_result.json',
                      help='where to write the labelled detections')
  parser.add_argument('--out', help='write the metrics JSON here')
  parser.add_argument('--tie-order', choices=evaluation.TIE_ORDERS,
                      default='mmaction2')
  args = parser.parse_args(argv)
  if args.top_k < 1:
    raise errors.TalError('--top-k must be >= 1')
  gt = evaluate_tool.load_gt(args)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    detections = assign_labels(results_io.read_results(args.proposals),
                               _read_classification(args.classification),
                               args.top_k, args.fusion)
    metrics = evaluation.activitynet_map(gt, detections,
                                         tie_order=args.tie_order)
  for w in caught:
    print(f'warning: {w.message}')
  results_io.write_results(args.det_output, detections)
  print(f'wrote {args.det_output}')
  print(evaluate_tool.format_table(metrics))
  if args.out:
    errors.write_json(args.out, metrics, indent=2)
  return metrics


if __name__ == '__main__':
  errors.run_cli(main)
