"""SSN frame mode speed: tal_jax train step vs MMAction2 0.24.1, same shapes.

  python experiments/bench_ssn_frames.py [--image-size 224] \
      [--videos-per-step 8] [--dtypes float32,bfloat16] [--reps 3] [--no-ref]

Frame mode = MMAction2 0.24.1 `ssn_r50_450e_thumos14_rgb_train.py`: ResNet-50
(partial BN) + SSN head trained jointly, 8 proposals x 9 frames per video,
SGD (lr 1e-3, momentum 0.9, wd 1e-6) with the gradient norm clipped at 35.

tal_jax side (each row in a fresh subprocess of this script, so the GPU's
peak memory is the row's own): configs/ssn.py with data.mode='frames',
feat_dim 2048, crop_size = image size, train.batch_size = videos per step,
config.dtype per row; `train.Trainer(localizers.get(config), config, 1).train_step` on random
host arrays shaped as `ssn.epoch_arrays` returns them ('inputs' uint8
[N, 8, 9, c, c, 3], per video proposal types [0, 1x6, 2]), put on the device
with `trainer.put_arrays` and indexed by [B] sharded indices, as
`train._train_epoch` does. The first two calls (compiles: see tal_jax_row)
are reported apart and excluded; median of --reps later calls.
Eval: `ssn_frames.pooled_features` (the backbone in eval mode, pooled 2048-d) on
[--eval-frames, c, c, 3] uint8 frames.

MMAction2 side (CPU, the MMAction2 0.24.1 reference environment
$TAL_JAX_REFENV (experiments/README.md) in a subprocess, torch threads = all
cores; skipped with --no-ref): its own
`SSN` localizer from the registry (ResNet depth 50, random init, partial BN,
num_classes 20, localizer dropout 0.8; the 7x7 AvgPool replaced by
AdaptiveAvgPool2d(1) when the image is not 224), model.train(), and per rep
mmcv's train step: forward_train + _parse_losses + backward + clip_grad_norm_
(35) + SGD step. A step of B videos is ONE step with the B videos in the batch
dimension (the frames, FLOPs and single optimizer update of upstream's B-GPU
data parallel step, on one device), on the same arrays (normalised to float
BGR outside the timed region, as upstream's data loader does). Eval:
extract_feat + pool under torch.no_grad() in model.eval().

Prints two markdown tables (train step in videos/s, eval backbone in
frames/s); the ratio is tal_jax / MMAction2 throughput (> 1: tal_jax faster).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import refenv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PROPOSALS, SEGMENTS = 8, 9  # per video: 1 + 6 + 1 proposals, 2 + 5 + 2
PROPOSAL_TYPES = (0, 1, 1, 1, 1, 1, 1, 2)  # positive, incomplete, background
NUM_CLASSES = 20


def make_arrays(videos: int, size: int, seed: int = 0) -> dict:
  """Random training arrays of `videos` videos, as ssn.epoch_arrays returns
  them: 'inputs' uint8 [N, 8, 9, c, c, 3] RGB, 'proposal_scale_factor'
  [N, 8, 2] float32, 'proposal_type' / 'proposal_labels' [N, 8] int32,
  'reg_targets' [N, 8, 2] float32 (non-zero for positives only)."""
  rs = np.random.RandomState(seed)
  shape = (videos, PROPOSALS, SEGMENTS, size, size, 3)
  types = np.tile(np.asarray(PROPOSAL_TYPES, np.int32), (videos, 1))
  labels = rs.randint(1, NUM_CLASSES + 1, (videos, 1)).astype(np.int32)
  reg = rs.randn(videos, PROPOSALS, 2).astype(np.float32)
  return {
      'inputs': rs.randint(0, 256, shape, dtype=np.uint8),
      'proposal_scale_factor': rs.uniform(
          0.2, 1.0, (videos, PROPOSALS, 2)).astype(np.float32),
      'proposal_type': types,
      'proposal_labels': np.where(types == 2, 0, labels).astype(np.int32),
      'reg_targets': np.where(types[..., None] == 0, reg, 0).astype(
          np.float32)}


def eval_frames(count: int, size: int, seed: int = 1) -> np.ndarray:
  """[count, c, c, 3] uint8 RGB test frames."""
  rs = np.random.RandomState(seed)
  return rs.randint(0, 256, (count, size, size, 3), dtype=np.uint8)


def _median_time(fn, reps: int, warmup: int = 1
                 ) -> tuple[list[float], float]:
  """([s of each of the `warmup` first calls], median s of `reps` more)."""
  times = []
  for _ in range(warmup + reps):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return times[:warmup], statistics.median(times[warmup:])


# ------------------------------------------------------------- tal_jax


def frames_config(size: int, videos: int, dtype: str):
  """configs/ssn.py in frame mode at image `size`, `videos` per step."""
  from tal_jax import config_utils  # pylint: disable=g-import-not-at-top
  config = config_utils.load_config(os.path.join(ROOT, 'configs', 'ssn.py'))
  config.data.mode = 'frames'
  config.model.feat_dim = 2048
  config.data.crop_size = size
  config.train.batch_size = videos
  config.dtype = dtype
  return config


def tal_jax_row(size: int, videos: int, dtype: str, reps: int,
                num_eval: int) -> dict:
  """Times one (image size, videos per step, dtype) row in this process."""
  # pylint: disable=g-import-not-at-top,unused-import,protected-access
  import tal_jax  # noqa: F401
  import jax
  from tal_jax.engine import parallel
  from tal_jax.localizers.ssn import frames as ssn_frames
  from tal_jax.engine import trainer as train
  from tal_jax import localizers
  # pylint: enable=g-import-not-at-top,unused-import
  config = frames_config(size, videos, dtype)
  trainer = train.Trainer(localizers.get(config), config, steps_per_epoch=1)
  state = trainer.init_state(jax.random.key(0), pretrained=False)
  device_arrays = trainer.put_arrays(make_arrays(videos, size))
  rows = np.arange(videos, dtype=np.int32)[parallel.host_slice(videos)]
  idx = parallel.shard_batch({'idx': rows}, trainer.mesh, videos)['idx']
  rng = jax.random.key(1)
  holder = {'state': state}

  def step():
    holder['state'], m = trainer.train_step(holder['state'], device_arrays,
                                            idx, rng)
    jax.block_until_ready((holder['state'], m))
    holder['loss'] = sum(float(v) for k, v in m.items()
                         if k.startswith('loss'))

  # Two warm-up calls: Trainer.init_state's step counter is an uncommitted
  # array and the steps' output a committed one, so the second call compiles
  # train_step again (jax_log_compiles shows it; 2026-11-26).
  warm_s, step_s = _median_time(step, reps, warmup=2)
  variables = holder['state'].variables
  frames = jax.device_put(eval_frames(num_eval, size))
  pooled = lambda: jax.block_until_ready(
      ssn_frames.pooled_features(trainer.module, variables, frames))
  _, eval_s = _median_time(pooled, reps)
  stats = jax.devices()[0].memory_stats() or {}
  peak = stats.get('peak_bytes_in_use')
  return {'warm_s': warm_s, 'step_s': step_s, 'eval_s': eval_s,
          'loss': holder['loss'], 'device': str(jax.devices()[0]),
          'peak_gib': None if peak is None else peak / 2**30}


def run_tal_jax_row(size, videos, dtype, reps, num_eval) -> dict:
  """tal_jax_row in a fresh subprocess (own compile cache and peak memory)."""
  cmd = [sys.executable, os.path.abspath(__file__), '--worker',
         f'{size},{videos},{dtype}', '--reps', str(reps),
         '--eval-frames', str(num_eval)]
  proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('ROW ')]
  if proc.returncode or not lines:
    return {'error': f'worker exit {proc.returncode}'}
  return json.loads(lines[-1][4:])


# ----------------------------------------------------------- MMAction2

REF = r'''
import json, os, statistics, sys, time, warnings
warnings.filterwarnings('ignore')
import logging
logging.disable(logging.INFO)
import numpy as np, torch
from mmcv import ConfigDict
from mmaction.models import build_localizer
torch.set_num_threads(os.cpu_count())
torch.manual_seed(0)
spec = json.load(open(sys.argv[1]))
sys.path.insert(0, spec['golden_dir'])
from ssn024_config import TRAIN_CFG
MEAN_BGR = np.array([104., 117., 128.], np.float32)

def build(size):
  cfg = dict(type='SSN', backbone=dict(type='ResNet', pretrained=None,
      depth=50, norm_eval=False, partial_bn=True), spatial_type='avg',
      dropout_ratio=0.8, loss_cls=dict(type='SSNLoss'),
      cls_head=dict(type='SSNHead', dropout_ratio=0., in_channels=2048,
          num_classes=20, consensus=dict(type='STPPTrain',
          stpp_stage=(1, 1, 1), num_segments_list=(2, 5, 2)),
          use_regression=True), train_cfg=TRAIN_CFG)
  model = build_localizer(ConfigDict(cfg))
  if size != 224:
    model.pool = torch.nn.AdaptiveAvgPool2d(1)
  return model

def to_torch(rgb):
  """[..., c, c, 3] uint8 RGB -> [..., 3, c, c] float32 BGR - mean."""
  x = rgb[..., ::-1].astype(np.float32) - MEAN_BGR
  return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, -3)))

def timed(fn, reps):
  t0 = time.perf_counter(); fn(); first = time.perf_counter() - t0
  ts = []
  for _ in range(reps):
    t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
  return first, statistics.median(ts)

def row(path, size, reps):
  d = np.load(path)
  model = build(size)
  model.train()
  optim = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9,
                          weight_decay=1e-6)
  imgs = to_torch(d['inputs'])
  targets = {k: torch.from_numpy(d[k]) for k in ('proposal_scale_factor',
             'reg_targets')}
  targets.update({k: torch.from_numpy(d[k]).long() for k in
                  ('proposal_type', 'proposal_labels')})
  out = {}
  def step():
    optim.zero_grad()
    losses = model(imgs, return_loss=True, **targets)
    loss, _ = model._parse_losses(losses)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(
        [p for p in model.parameters() if p.requires_grad and
         p.grad is not None], max_norm=35, norm_type=2)
    optim.step()
    out['loss'] = float(loss)
  out['first_s'], out['step_s'] = timed(step, reps)
  model.eval()
  frames = to_torch(d['frames'])
  def pooled():
    with torch.no_grad():
      model.pool(model.extract_feat(frames))
  _, out['eval_s'] = timed(pooled, reps)
  return out

results = [row(p, s, spec['reps']) for p, s in spec['rows']]
print('REF ' + json.dumps(results))
'''


def run_ref(python: str, shapes, reps: int, num_eval: int) -> dict:
  """{(size, videos): MMAction2 timings} from one subprocess."""
  with tempfile.TemporaryDirectory() as tmp:
    rows = []
    for size, videos in shapes:
      path = os.path.join(tmp, f'arrays_{size}_{videos}.npz')
      np.savez(path, frames=eval_frames(num_eval, size),
               **make_arrays(videos, size))
      rows.append([path, size])
    spec = os.path.join(tmp, 'spec.json')
    with open(spec, 'w') as f:
      json.dump({'rows': rows, 'reps': reps,
                 'golden_dir': os.path.join(ROOT, 'tests', 'golden')}, f)
    script = os.path.join(tmp, 'ref.py')
    with open(script, 'w') as f:
      f.write(REF)
    proc = subprocess.run([python, script, spec], stdout=subprocess.PIPE,
                          text=True, check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('REF ')]
  if proc.returncode or not lines:
    print(f'MMAction2 run failed (exit {proc.returncode})', file=sys.stderr)
    return {}
  return dict(zip(map(tuple, shapes), json.loads(lines[-1][4:])))


# --------------------------------------------------------------- table


def _fmt(x, digits=2):
  return '-' if x is None else f'{x:.{digits}f}'


def _ratio(a, b):
  return 'not compared' if not b else f'{a / b:.2f}x'


def train_table(rows) -> str:
  """Markdown: per row tal_jax vs MMAction2 train step."""
  out = ['| image | videos/step | dtype | tal_jax step s | tal_jax videos/s '
         '| calls 1, 2 s | peak GiB | MMAction2 step s | MMAction2 videos/s '
         '| ratio |', '|' + '---|' * 10]
  for (size, videos, dtype), r, ref in rows:
    if 'error' in r:
      out.append(f'| {size} | {videos} | {dtype} | {r["error"]} |' +
                 ' - |' * 6)
      continue
    ref_vps = videos / ref['step_s'] if ref else None
    vps = videos / r['step_s']
    out.append(
        f'| {size} | {videos} | {dtype} | {r["step_s"]:.3f} | {vps:.3f} '
        f'| {r["warm_s"][0]:.1f}, {r["warm_s"][1]:.1f} | {_fmt(r["peak_gib"])} '
        f'| {_fmt(ref and ref["step_s"], 3)} | {_fmt(ref_vps, 3)} '
        f'| {_ratio(vps, ref_vps)} |')
  return '\n'.join(out)


def eval_table(rows, num_eval: int) -> str:
  """Markdown: per row the eval backbone's frames/s."""
  out = ['| image | dtype | frames/call | tal_jax frames/s '
         '| MMAction2 frames/s | ratio |', '|' + '---|' * 6]
  seen = set()
  for (size, _, dtype), r, ref in rows:
    if 'error' in r or (size, dtype) in seen:
      continue
    seen.add((size, dtype))
    fps = num_eval / r['eval_s']
    ref_fps = num_eval / ref['eval_s'] if ref else None
    out.append(f'| {size} | {dtype} | {num_eval} | {fps:.1f} '
               f'| {_fmt(ref_fps, 1)} | {_ratio(fps, ref_fps)} |')
  return '\n'.join(out)


# ----------------------------------------------------------------- main


def _on_gpu() -> bool:
  """JAX's default backend is a GPU (asked in a subprocess: this process must
  not hold device memory while the rows run)."""
  probe = 'import jax; print(jax.default_backend())'
  env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE='false')
  proc = subprocess.run([sys.executable, '-c', probe], stdout=subprocess.PIPE,
                        text=True, env=env, check=False)
  return proc.stdout.strip() == 'gpu'


def _ints(text):
  return [int(x) for x in text.split(',')]


def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--image-size', type=_ints, default=None,
                 help='crop size(s), comma list (GPU 224, CPU 112)')
  p.add_argument('--videos-per-step', type=_ints, default=None,
                 help='videos per train step, comma list (GPU 8, CPU 1)')
  p.add_argument('--dtypes', default=None,
                 help='comma list (GPU float32,bfloat16, CPU float32)')
  p.add_argument('--reps', type=int, default=None,
                 help='timed calls after the first (GPU 3, CPU 2)')
  p.add_argument('--eval-frames', type=int, default=64,
                 help='frames per eval backbone call')
  p.add_argument('--no-ref', action='store_true',
                 help='do not run MMAction2 0.24.1')
  p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
  return p.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  if args.worker:
    size, videos, dtype = args.worker.split(',')
    r = tal_jax_row(int(size), int(videos), dtype, args.reps,
                    args.eval_frames)
    print('ROW ' + json.dumps(r))
    return 0
  ref_python = None if args.no_ref else refenv.python(refenv.MMACTION2_0241)
  gpu = _on_gpu()
  sizes = args.image_size or [224 if gpu else 112]
  batches = args.videos_per_step or [8 if gpu else 1]
  dtypes = (args.dtypes or ('float32,bfloat16' if gpu else 'float32')
            ).split(',')
  reps = args.reps or (3 if gpu else 2)
  keys = [(s, b, d) for s in sizes for b in batches for d in dtypes]
  print(f'load average before: {os.getloadavg()}', flush=True)
  results = {}
  for key in keys:
    results[key] = run_tal_jax_row(*key, reps, args.eval_frames)
    print(f'tal_jax {key}: {results[key]}', flush=True)
  ref = {}
  if ref_python:
    shapes = sorted({(s, b) for s, b, _ in keys})
    ref = run_ref(ref_python, shapes, reps, args.eval_frames)
    print(f'MMAction2 0.24.1: {ref}', flush=True)
  print(f'load average after: {os.getloadavg()}')
  rows = [(k, results[k], ref.get(k[:2])) for k in keys]
  device = next((r['device'] for r in results.values() if 'device' in r), '?')
  where = f'torch CPU, {os.cpu_count()} threads' if ref else 'not run'
  print(f'\ntal_jax device: {device}; MMAction2 0.24.1: {where}')
  print(f'reps {reps} (median, warm-up calls excluded)\n')
  print(train_table(rows))
  print()
  print(eval_table(rows, args.eval_frames))
  return 0


if __name__ == '__main__':
  sys.exit(main())
