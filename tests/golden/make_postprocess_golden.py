"""Golden fixture for tal_jax.localizers.bmn.postprocess from MMAction2 1.2.0's own code.

Runs `BMN.predict` (decode + `post_processing` + `soft_nms`) on a handful of
synthetic T=100 score maps (smooth curves, quantised maps with score ties, all
scores equal, one candidate, a few candidates), `post_processing` again with
BSN's PEM soft-NMS parameters, `soft_nms` on a float32 [N, 3] array, and
`ANetMetric.proposals2json` for the results dict, and writes
tests/golden/postprocess_bmn.npz.

Rerun (from the checkout, reference environment only):
  "$TAL_JAX_REFENV"/mmaction2-1.2.0/bin/python tests/golden/make_postprocess_golden.py
"""

import json
import os
import sys
import types

import numpy as np
import torch

import mmaction_shim

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                   'postprocess_bmn.npz')
T = 100
BMN_NMS = dict(soft_nms_alpha=0.4, soft_nms_low_threshold=0.5,
               soft_nms_high_threshold=0.9, post_process_top_k=100)
BSN_NMS = (0.75, 0.65, 0.9, 100)


def _import_localizers():
  """Imports localizers/bmn.py without the broken `mmaction.models` init."""
  mmaction_shim.bypass_models_init()
  import mmaction.models.localizers.bmn as bmn  # pylint: disable=g-import-not-at-top
  return bmn


def _proposals2json():
  from mmaction.evaluation.metrics import anet_metric  # pylint: disable=g-import-not-at-top
  return anet_metric.ANetMetric.proposals2json


def _curve(rng, bumps, width, floor=0.02):
  x = np.arange(T)
  y = np.full(T, floor)
  for _ in range(bumps):
    y += rng.uniform(0.2, 1.0) * np.exp(
        -0.5 * ((x - rng.uniform(0, T)) / rng.uniform(*width))**2)
  y += 0.02 * np.convolve(rng.normal(size=T + 8), np.ones(9) / 9, 'valid')
  return np.clip(y / y.max() * 0.95, 0.01, 0.99)


def _smooth_map(rng):
  d, s = np.meshgrid(np.arange(T), np.arange(T), indexing='ij')
  z = np.zeros((T, T))
  for _ in range(6):
    fd, fs = rng.uniform(0.01, 0.08, size=2)
    z += rng.normal() * np.cos(2 * np.pi * (fd * d + fs * s) +
                               rng.uniform(0, 2 * np.pi))
  return 1 / (1 + np.exp(-z))


def _video(rng, kind):
  """Returns (confidence_map [T, T, 2], start [T], end [T]) float32."""
  maps = np.stack([_smooth_map(rng), _smooth_map(rng)], axis=-1)
  start, end = _curve(rng, 5, (1, 4)), _curve(rng, 5, (1, 4))
  if kind == 'sharp':
    start, end = _curve(rng, 3, (0.5, 1.5)), _curve(rng, 3, (0.5, 1.5))
  elif kind == 'quantized':  # many exactly equal scores
    maps = np.round(maps * 8) / 8
    start, end = rng.integers(1, 17, size=(2, T)) / 16
  elif kind == 'constant':
    maps, start, end = np.full_like(maps, 0.5), np.full(T, 0.5), np.full(T, 0.5)
  elif kind == 'single':  # only bin 0 starts and bin T-1 ends
    start = np.exp(-np.arange(T) / 1.0)
    end = start[::-1].copy()
  elif kind == 'few':
    start = np.exp(-np.arange(T) / 2.0)
    start[[20, 40, 60]] = [0.6, 0.3, 0.55]
    end = np.exp(-np.arange(T)[::-1] / 2.0)
    end[[30, 50, 70, 90]] = [0.7, 0.2, 0.65, 0.4]
  return tuple(a.astype(np.float32) for a in (maps, start, end))


KINDS = ('smooth', 'sharp', 'smooth', 'quantized', 'constant', 'single', 'few')
DURATION_FRAME = (3000, 2413, 5105, 1000, 4567, 777, 1600)
DURATION_SECOND = (100.1, 80.5, 170.3, 33.37, 152.4, 25.9, 53.4)


class _Sample:

  def __init__(self, metainfo):
    self.metainfo = metainfo


def _predict(bmn, maps, start, end, meta):
  """Runs MMAction2's BMN.predict on given outputs; returns (list, cands)."""
  captured = {}
  real = bmn.post_processing

  def spy(result, *args):
    captured['result'] = result.copy()
    return real(result, *args)

  fake = types.SimpleNamespace(
      tscale=T, feature_extraction_interval=16, **BMN_NMS,
      _forward=lambda x: (torch.from_numpy(np.moveaxis(maps, -1, 0)[None]),
                          torch.from_numpy(start[None]),
                          torch.from_numpy(end[None])))
  bmn.post_processing = spy
  try:
    out = bmn.BMN.predict(fake, None, [_Sample(meta)])
  finally:
    bmn.post_processing = real
  return out[0], captured['result']


def _pack(rows, width):
  """Concatenates per-video [n_i, width] arrays -> (flat, counts)."""
  counts = np.array([len(r) for r in rows], np.int32)
  flat = np.concatenate([np.asarray(r).reshape(-1, width) for r in rows])
  return flat, counts


def main():
  bmn = _import_localizers()
  utils = sys.modules['mmaction.models.localizers.utils']
  rng = np.random.default_rng(20261126)
  videos = [_video(rng, kind) for kind in KINDS]
  names = [f'v_{kind}{i}' for i, kind in enumerate(KINDS)]
  outputs, cands, bsn_rows = [], [], []
  for i, (maps, start, end) in enumerate(videos):
    meta = dict(video_name=names[i], duration_frame=DURATION_FRAME[i],
                duration_second=DURATION_SECOND[i])
    out, cand = _predict(bmn, maps, start, end, meta)
    outputs.append(out)
    cands.append(cand)
    bsn = utils.post_processing(cand, meta, *BSN_NMS, 16)
    bsn_rows.append([[p['segment'][0], p['segment'][1], p['score']]
                     for p in bsn])
  results = _proposals2json()(outputs)
  final, final_counts = _pack(
      [[[p['segment'][0], p['segment'][1], p['score']]
        for p in out['proposal_list']] for out in outputs], 3)
  bsn_final, bsn_counts = _pack(bsn_rows, 3)
  cand_flat, cand_counts = _pack([c[:, [0, 1, 6]] for c in cands], 3)
  argsort_ref = np.concatenate([c[:, -1].argsort() for c in cands])
  # Generic soft-NMS on float32 [N, 3] (BSN PEM parameters).
  tmin = rng.uniform(0, 0.9, 300)
  f32 = np.stack([tmin, tmin + rng.uniform(0.01, 0.3, 300),
                  np.round(rng.uniform(0, 1, 300) * 64) / 64], 1)
  f32 = f32.astype(np.float32)
  f32_picks = utils.soft_nms(f32, *BSN_NMS)
  np.savez_compressed(
      OUT, names=np.array(names),
      confidence_map=np.stack([v[0] for v in videos]),
      start=np.stack([v[1] for v in videos]),
      end=np.stack([v[2] for v in videos]),
      duration_frame=np.array(DURATION_FRAME),
      duration_second=np.array(DURATION_SECOND),
      cand=cand_flat, cand_counts=cand_counts,
      cand_argsort=argsort_ref.astype(np.int16),
      final=final, final_counts=final_counts,
      bsn_final=bsn_final, bsn_counts=bsn_counts,
      f32_proposals=f32, f32_picks=f32_picks,
      results_json=np.array(json.dumps(results)))
  print(OUT, os.path.getsize(OUT), 'bytes; candidates', cand_counts,
        'proposals', final_counts)


if __name__ == '__main__':
  main()
