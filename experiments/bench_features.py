"""Feature extraction speed: tal_jax.features vs MMAction2 1.2.0, same video.

  TAL_JAX_REFENV=/path/to/refenv python experiments/bench_features.py \
      [--frames 320] [--clip-batch 10] [--reps 3] [--dtype float32]

Video: the embedded example (features.video.example_frames, --frames frames
of 96x64, written with PyAV). Recognisers: full TSN-R50 (ResNet-50, 200
classes) with random weights (features.random_init, RGB 3 and flow 10
channels), saved as .pth and read by both sides.

tal_jax: `extract.sample_video` (decode + RGB clips + TV-L1 flow of the
needed flow frames, resize/crop) timed once; then the recognisers
(`tsn.Recognizer`, jitted, batches of --clip-batch clips) on those clips:
first call (compile) apart, median of --reps later calls.
MMAction2 (the TAL_JAX_REFENV python in a subprocess, torch threads = all
cores): the tsn_extract_{rgb,flow}_feat_config.py models through
clip_feature_extraction.py's long-video mode (as
tests/golden/make_features_golden.py builds them), the same .pth loaded,
on the same preprocessed clips: data_preprocessor + predict under
torch.no_grad(), all clips of a stream in one call as upstream's batch of
one video; median of --reps after one warm-up.

Prints a markdown table: clips/s and video frames/s (16 video frames per
clip) per stream and side, and the ratio (tal_jax / MMAction2).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def mmaction_worker(npz_path: str, rgb_pth: str, flow_pth: str, reps: int):
  """Runs in the reference python: prints JSON {stream: [seconds...]}."""
  sys.path.insert(0, os.path.join(ROOT, 'tests', 'golden'))
  import torch  # pylint: disable=g-import-not-at-top
  import make_features_golden as mfg  # pylint: disable=g-import-not-at-top
  root = mfg._bypass_models_init()  # pylint: disable=protected-access
  data = np.load(npz_path)
  out = {}
  for key, name, pth in (
      ('rgb', 'tsn_extract_rgb_feat_config.py', rgb_pth),
      ('flow', 'tsn_extract_flow_feat_config.py', flow_pth)):
    cfg = mfg._config(root, name, True)  # pylint: disable=protected-access
    from mmaction.registry import MODELS  # pylint: disable=g-import-not-at-top
    model = MODELS.build(cfg.model).eval()
    sd = torch.load(pth, weights_only=True)['state_dict']
    model.load_state_dict(sd, strict=True)
    clips = data[key]  # [N, 256, 256, C] uint8, preprocessed.
    # PackActionInputs' NCHW layout of one video: [N, C, 256, 256].
    inputs = torch.from_numpy(clips.transpose(0, 3, 1, 2).copy())
    from mmaction.structures import ActionDataSample  # pylint: disable=g-import-not-at-top
    times = []
    for _ in range(reps + 1):
      t = time.perf_counter()
      batch = model.data_preprocessor(
          dict(inputs=[inputs], data_samples=[ActionDataSample()]), False)
      with torch.no_grad():
        pred = model(**batch, mode='predict')
      times.append(time.perf_counter() - t)
    scores = pred[0].pred_score.numpy().reshape(len(clips), -1)
    out[key] = {'seconds': times[1:], 'scores': scores.tolist()}
  print(json.dumps(out))


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--frames', type=int, default=320)
  p.add_argument('--clip-batch', type=int, default=10)
  p.add_argument('--reps', type=int, default=3)
  p.add_argument('--dtype', default='float32')
  p.add_argument('--mmaction-worker', nargs=3, default=None)
  args = p.parse_args()
  if args.mmaction_worker:
    mmaction_worker(*args.mmaction_worker, args.reps)
    return
  import jax  # pylint: disable=g-import-not-at-top
  import tal_jax  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  from tal_jax.features import extract, random_init, tsn, video  # pylint: disable=g-import-not-at-top
  tmp = tempfile.mkdtemp()
  path = os.path.join(tmp, 'bench.mp4')
  video.write_video(path, video.example_frames(args.frames))
  pths = {s.name: random_init.write_checkpoint(
      os.path.join(tmp, f'{s.name}.pth'), s, stage_blocks=(3, 4, 6, 3),
      seed=i) for i, s in enumerate((tsn.RGB, tsn.FLOW))}
  t = time.perf_counter()
  sampled = extract.sample_video(path, with_flow=True)
  decode_s = time.perf_counter() - t
  clips = {'rgb': sampled.rgb, 'flow': sampled.flow}
  np.savez(os.path.join(tmp, 'clips.npz'), **clips)
  rows, ours = {}, {}
  for stream in (tsn.RGB, tsn.FLOW):
    module, variables = tsn.load(pths[stream.name], stream,
                                 jax.numpy.dtype(args.dtype))
    rec = tsn.Recognizer(module, variables, args.clip_batch)
    t = time.perf_counter()
    rec(clips[stream.name])
    first = time.perf_counter() - t
    times = []
    for _ in range(args.reps):
      t = time.perf_counter()
      ours[stream.name] = rec(clips[stream.name])['scores']
      times.append(time.perf_counter() - t)
    rows[stream.name] = {'first': first, 'ours': float(np.median(times))}
  ref = os.environ.get('TAL_JAX_REFENV')
  if ref:
    out = subprocess.run(
        [os.path.join(ref, 'bin', 'python'), __file__, '--reps',
         str(args.reps), '--mmaction-worker', os.path.join(tmp, 'clips.npz'),
         pths['rgb'], pths['flow']], capture_output=True, text=True,
        check=True).stdout
    theirs = json.loads(out.strip().splitlines()[-1])
    for k in rows:
      rows[k]['theirs'] = float(np.median(theirs[k]['seconds']))
      s = np.asarray(theirs[k]['scores'])
      rows[k]['rel'] = float(np.linalg.norm(ours[k] - s) / np.linalg.norm(s))
  print(f'jax {jax.__version__} on {jax.devices()[0].platform}, '
        f'{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; '
        f'video {args.frames} frames 96x64, decode + clips + TV-L1 '
        f'{decode_s:.2f} s')
  print('| stream | clips | tal_jax s (first call) | tal_jax clips/s | '
        'video frames/s | MMAction2 s | MMAction2 clips/s | ratio | '
        'scores rel. diff |')
  print('|---|---|---|---|---|---|---|---|---|')
  for k, r in rows.items():
    n = len(clips[k])
    line = (f'| {k} | {n} | {r["ours"]:.2f} ({r["first"]:.1f}) | '
            f'{n / r["ours"]:.2f} | {16 * n / r["ours"]:.1f} | ')
    if 'theirs' in r:
      line += (f'{r["theirs"]:.2f} | {n / r["theirs"]:.2f} | '
               f'{r["theirs"] / r["ours"]:.2f}x | {r["rel"]:.1e} |')
    else:
      line += '- | - | - | - |'
    print(line)


if __name__ == '__main__':
  main()
