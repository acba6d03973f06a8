r"""Per-frame ResNet features of rawframes, for SSN's feature mode.

Runs a backbone in eval mode over every frame of each video folder
(`<frame-dir>/<video>/img_00001.jpg, ...`), with frame mode's preprocessing
(resize to fit (340, 256) keeping the ratio, centre crop 224, BGR mean
subtraction), and writes `<out>/<video>.npy`: [num_frames, D] float32, row i
= frame i + 1, the spatially pooled output (D = 2048 for ResNet-50). That is
the input of `configs/ssn.py` in feature mode (`--config.data.feature_dir`).

The backbone is either ImageNet ResNet weights (`--pth`, torchvision or
MMAction2 layout, read without torch; the depth and width are read from the
file) or the backbone of an SSN frame-mode
workdir (`--workdir`: trained by tal_jax, or an MMAction2 SSN checkpoint
imported with tal_jax.tools.import_mmaction2).

  python -m tal_jax.tools.extract_frame_features --pth resnet50-0676ba61.pth \
      --frame-dir data/thumos14/rawframes --out data/thumos14/frame_features
  python -m tal_jax.tools.extract_frame_features --workdir work_dirs/ssn_rgb \
      --frame-dir data/thumos14/rawframes --out data/thumos14/ssn_features

Videos: every sub-folder of --frame-dir, or those of --videos (a proposal
list: its video ids). Existing outputs are kept unless --overwrite.
"""

import argparse
import functools
import os

import numpy as np

from tal_jax import errors
from tal_jax import localizers
from tal_jax import results_io
from tal_jax.convert import pth
from tal_jax.data import rawframes
from tal_jax.engine import predict
from tal_jax.localizers.ssn import frames as ssn_frames
from tal_jax.nn import resnet
from tal_jax.nn import resnet_import as tv
from tal_jax.tools import export


def resnet_shape(state_dict) -> tuple[tuple[int, ...], int]:
  """(stage_blocks, width) of a bottleneck ResNet state dict (torchvision or
  MMAction2 layout): ResNet-50 is ((3, 4, 6, 3), 64)."""
  sd = {tv.torchvision_key(k): v for k, v in tv._backbone_only(  # pylint: disable=protected-access
      state_dict).items()}
  blocks = {}
  for key in sd:
    parts = key.split('.')
    if parts[0].startswith('layer') and len(parts) > 1 and parts[1].isdigit():
      stage = int(parts[0][len('layer'):])
      blocks[stage] = max(blocks.get(stage, 0), int(parts[1]) + 1)
  if 'conv1.weight' not in sd or not blocks:
    raise errors.TalError('not a ResNet state dict (no conv1.weight / '
                          'layer1.0.*)')
  return (tuple(blocks[i] for i in sorted(blocks)),
          int(np.shape(sd['conv1.weight'])[0]))


def _pth_backbone(path: str):
  """apply(images uint8 [K, c, c, 3]) -> [K, D] of ResNet weights (.pth)."""
  import jax  # pylint: disable=g-import-not-at-top
  path = os.path.expanduser(path)
  if not os.path.isfile(path):
    raise errors.TalError(f'--pth {path}: no such file')
  state_dict = pth.load_pth(path)
  stage_blocks, width = resnet_shape(state_dict)
  model = resnet.ResNet(stage_blocks=stage_blocks, width=width)
  variables = tv.resnet_variables_from_state_dict(
      state_dict, stage_blocks=stage_blocks, width=width, source=path)

  @jax.jit
  def apply(images):
    return model.apply(variables, rawframes.normalize(images))['pooled']
  return apply


def _workdir_backbone(args):
  """(apply, config) of an SSN frame-mode workdir's backbone."""
  workdir = os.path.abspath(os.path.expanduser(args.workdir))
  config = export.run_config(workdir, args.config, args.set)
  if config.model_name != 'ssn' or not ssn_frames.is_frames(config):
    raise errors.TalError(f'{workdir}: not an SSN frame-mode run '
                          f'(model {config.model_name}, data.mode '
                          f"{config.data.get('mode')})")
  predictor = predict.Predictor(localizers.get(config), config)
  variables, where = predict.restore_variables(predictor, config, workdir)
  print(f'restored {where}')
  return functools.partial(ssn_frames.pooled_features, predictor.module,
                           variables), config


def _video_names(frame_dir: str, videos: str | None) -> list[str]:
  if videos:
    return [v.video_id for v in results_io.read_proposal_list(videos)]
  if not os.path.isdir(frame_dir):
    raise errors.TalError(f'--frame-dir {frame_dir}: no such folder')
  return sorted(d for d in os.listdir(frame_dir)
                if os.path.isdir(os.path.join(frame_dir, d))
                and not d.startswith('.'))


def main(argv=None) -> list[str]:
  parser = argparse.ArgumentParser(
      description='Per-frame ResNet features of rawframes (SSN feature mode).')
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument('--pth', help='ResNet-50 weights (.pth, torchvision or '
                      'MMAction2 layout)')
  source.add_argument('--workdir', help='an SSN frame-mode workdir')
  parser.add_argument('--config', default=None,
                      help="with --workdir: config file[:preset] (default: "
                      "the workdir's config.json)")
  parser.add_argument('--set', action='append', default=[],
                      metavar='KEY=VALUE', help='with --workdir: override a '
                      'config field')
  parser.add_argument('--frame-dir', required=True,
                      help='rawframes root: <frame-dir>/<video>/img_*.jpg')
  parser.add_argument('--out', required=True, help='folder for <video>.npy')
  parser.add_argument('--videos', default=None,
                      help='a proposal list naming the videos (default: '
                      'every sub-folder of --frame-dir)')
  parser.add_argument('--resize-scale', default='340,256',
                      help='w,h to fit keeping the ratio (--pth only)')
  parser.add_argument('--crop-size', type=int, default=224,
                      help='centre crop (--pth only)')
  parser.add_argument('--filename-tmpl', default='img_{:05d}.jpg')
  parser.add_argument('--start-index', type=int, default=1)
  parser.add_argument('--batch-size', type=int, default=64,
                      help='frames per backbone call')
  parser.add_argument('--overwrite', action='store_true')
  args = parser.parse_args(argv)
  if args.workdir:
    apply, config = _workdir_backbone(args)
    resize = tuple(config.data.resize_scale)
    crop, tmpl = config.data.crop_size, config.data.filename_tmpl
    start = config.data.start_index
  else:
    apply = _pth_backbone(args.pth)
    try:
      resize = tuple(int(v) for v in args.resize_scale.split(','))
    except ValueError:
      raise errors.TalError(f'--resize-scale {args.resize_scale!r}: expected '
                            'w,h') from None
    crop, tmpl, start = args.crop_size, args.filename_tmpl, args.start_index
  written = []
  for name in _video_names(args.frame_dir, args.videos):
    path = os.path.join(args.out, name + '.npy')
    if os.path.exists(path) and not args.overwrite:
      continue
    video_dir = os.path.join(args.frame_dir, name)
    if not os.path.isdir(video_dir):
      raise errors.TalError(f'video {name}: no frame folder {video_dir}')
    n = rawframes.count_frames(video_dir, tmpl, start)
    if n == 0:
      raise errors.TalError(f'video {name}: no frames in {video_dir} '
                            f'({tmpl.format(start)} ...)')
    feats = ssn_frames.features_in_chunks(apply, video_dir, np.arange(n),
                                          args.batch_size, resize, crop,
                                          tmpl, start)
    with errors.atomic_path(path, '.npy') as tmp:
      with open(tmp, 'wb') as f:
        np.save(f, feats)
    written.append(path)
    print(f'{name}: {n} frames -> {path} {feats.shape}')
  return written


if __name__ == '__main__':
  errors.run_cli(main)
