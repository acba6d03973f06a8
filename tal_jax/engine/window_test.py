"""--mode=test on sliding windows (THUMOS14, tal_jax.data.thumos14_windows).

As OpenTAD's test of its THUMOS14 BMN configs: each window's proposals (the
model's `decode`, already soft-NMS'd per window) go to video seconds; for
detections each is labelled with the video's top-k UntrimmedNet classes
(score x class score), rounded as OpenTAD writes them (segments to 0.01 s,
scores to 1e-4); the windows of a video are merged and soft-NMS'd again.
Writes, in the workdir (atomically):
- results.json: detections ({"results": {video: [{segment, score, label}]}});
- proposals.json: proposals (no label, rounded likewise), up to
  test.proposal_max_seg_num per video, for AR@AN;
- metrics.json: AR@50..AR@1000 (tIoU 0.5:0.05:1.0) and mAP@0.30..0.70 with
  OpenTAD's evaluator (tal_jax.evaluation.thumos14_opentad_map).
"""

import os

import jax
import numpy as np

from tal_jax import errors
from tal_jax import evaluation
from tal_jax.data import thumos14
from tal_jax.data import thumos14_windows
from tal_jax.engine import predict
from tal_jax.engine import runlog
from tal_jax.ops import windows


def window_seconds(proposals: np.ndarray, window: dict, temporal_dim: int
                   ) -> np.ndarray:
  """[K, 3] window-normalised (start, end, score) -> [K, 3] float32 video
  seconds of the window described by a record's 'window'."""
  secs = windows.to_video_seconds(
      np.asarray(proposals[:, :2], np.float64) * temporal_dim,
      window['snippet_stride'], window['first_frame'],
      window['offset_frames'], window['fps'], window['duration'])
  return np.concatenate([secs, np.asarray(proposals[:, 2:3], np.float32)],
                        axis=1)


def _rounded(segments, scores):
  return (np.round(np.asarray(segments, np.float64), 2).astype(np.float32),
          np.round(np.asarray(scores, np.float64), 4).astype(np.float32))


def merge_video(parts, test, max_seg_num):
  """Per-window (segments [K, 2], scores [K], labels [K]) of one video ->
  the video's (segments, scores, labels) after OpenTAD's second
  soft-NMS."""
  segs = np.concatenate([p[0] for p in parts]).reshape(-1, 2)
  scores = np.concatenate([p[1] for p in parts])
  labels = np.concatenate([p[2] for p in parts])
  return windows.batched_nms(segs, scores, labels, test.nms_sigma,
                             test.nms_min_score, max_seg_num,
                             test.nms_voting_thresh)


def collect(predictor, params, videos, progress=False):
  """{video: [per-window (segments [K, 2] s, scores [K])]} over the windows."""
  model_def, config = predictor.model_def, predictor.config
  arrays = model_def.eval_arrays(videos, config)
  out = {}
  for idx, outputs, host in predict.forward_batches(
      predictor, params, arrays, config.test.batch_size, progress):
    props, valid = model_def.decode(outputs, host, config)
    for j, i in enumerate(idx):
      window = videos.records[i]['window']
      secs = window_seconds(props[j][valid[j]], window,
                            config.data.window_size)
      out.setdefault(window['video'], []).append((secs[:, :2], secs[:, 2]))
  return out


def video_results(per_window, scores_of, test):
  """(proposals {video: [P, 3] seconds}, detections {video: [{segment,
  score, label}]}) from `collect`'s windows and the classifier."""
  proposals, detections = {}, {}
  for video, parts in per_window.items():
    rounded = [_rounded(s, c) + (np.zeros(len(c), np.int64),)
               for s, c in parts]
    segs, scores, _ = merge_video(rounded, test, test.proposal_max_seg_num)
    segs, scores = _rounded(segs, scores)
    proposals[video] = np.concatenate([segs, scores[:, None]], axis=1)
    fused = []
    for s, c in parts:
      fs, fl, fc = windows.untrimmednet_fusion(scores_of(video), s, c,
                                               test.classifier_topk)
      fused.append(_rounded(fs, fc) + (fl,))
    segs, scores, labels = merge_video(fused, test, test.nms_max_seg_num)
    detections[video] = [
        {'segment': [round(float(a), 2), round(float(b), 2)],
         'score': round(float(c), 4), 'label': thumos14.CLASSES[int(l)]}
        for (a, b), c, l in zip(segs, scores, labels)]
  return proposals, detections


def video_ground_truth(videos) -> dict:
  """{video: [{segment, label}]} seconds, from the windows' records."""
  gt = {}
  for rec in videos.records:
    gt.setdefault(rec['window']['video'], rec['video_annotations'])
  return gt


def thumos14_metrics(gt, proposals, detections) -> dict[str, float]:
  """AR@AN (BSN/BMN points) and OpenTAD's mAP@0.3..0.7."""
  gt_segments = {v: np.asarray([[float(x) for x in a['segment']] for a in anns],
                               np.float64).reshape(-1, 2)
                 for v, anns in gt.items()}
  metrics = evaluation.thumos14_ar_an(gt_segments, proposals)
  metrics.update(evaluation.thumos14_opentad_map(gt, detections))
  return metrics


def window_test(predictor, variables, videos, workdir, quiet=False):
  """--mode=test of a model on THUMOS14 windows: results.json,
  proposals.json, metrics.json in the workdir; returns the metrics."""
  config = predictor.config
  thumos14_windows.check_test_config(config.test)
  scores_of = thumos14_windows.untrimmednet_scores(
      config.test.classifier_file)  # before the forward: a bad file stops it
  per_window = collect(predictor, variables['params'], videos,
                       runlog.show_progress(quiet))
  proposals, detections = video_results(per_window, scores_of, config.test)
  metrics = thumos14_metrics(video_ground_truth(videos), proposals,
                             detections)
  if jax.process_index() == 0:
    errors.write_json(os.path.join(workdir, 'results.json'),
                      {'version': 'THUMOS14', 'results': detections,
                       'external_data': {}})
    errors.write_json(os.path.join(workdir, 'proposals.json'),
                      {'version': 'THUMOS14', 'results': {
                          v: [{'segment': [round(float(a), 2),
                                           round(float(b), 2)],
                               'score': round(float(c), 4)} for a, b, c in p]
                          for v, p in proposals.items()},
                       'external_data': {}})
    errors.write_json(os.path.join(workdir, 'metrics.json'), metrics,
                      indent=2)
  runlog.info('test: ' + runlog.format_metrics(metrics), quiet)
  return metrics


def proposal_test(predictor, variables, videos, workdir, quiet=False):
  """--mode=test of a proposal model (BMN, BSN's PEM): `window_test` for
  the THUMOS14 window configs, else `predict.proposal_test` (ActivityNet)."""
  run = (window_test if thumos14_windows.is_windowed(predictor.config)
         else predict.proposal_test)
  return run(predictor, variables, videos, workdir, quiet)
