r"""Exports a trained model for serving without tal_jax (jax.export).

  python -m tal_jax.tools.export --workdir work_dirs/bmn --out bmn_export
  python -c "import sys; sys.path.insert(0, 'bmn_export'); import load_model; \
      print(load_model.load()(__import__('numpy').zeros((1, 100, 400))).keys())"

Every localizer exports: BMN and BSN TEM (features [B, T, D] -> raw outputs),
BSN PEM (BSP features [B, N, 32] -> IoU scores) and SSN in feature mode (one
video's tick features, proposal ticks and scale factors -> head scores); each
model's `serving` (localizers/*/serving.py, bmn/convert.py) names them. The
model folder (see tal_jax/engine/serving.py) holds model.jax (the jitted
forward, named dimensions symbolic, lowered for cpu and cuda), params.npz,
metadata.json and load_model.py, a loader that needs only jax and numpy. The config is the workdir's config.json (saved by
training) unless --config is given (e.g. for an imported checkpoint). The
checkpoint is the workdir's best (or --checkpoint DIR/checkpoints/STEP).

Exports stay loadable by a jax up to 6 months newer than the exporting one
(JAX's export compatibility guarantee); the Orbax checkpoint plus tal_jax is
the long-term format, re-export from it.
"""

import argparse
import functools
import json
import os

import ml_collections

from tal_jax import config_utils
from tal_jax import errors
from tal_jax import localizers
from tal_jax.engine import predict
from tal_jax.engine import serving
from tal_jax.tools import import_mmaction2


def add_model_args(parser: argparse.ArgumentParser) -> None:
  """--workdir, --config, --set, --checkpoint."""
  parser.add_argument('--workdir', required=True,
                      help='training workdir (checkpoints/, config.json)')
  parser.add_argument('--config', default=None,
                      help='config file[:preset]; default: the workdir\'s '
                      'config.json')
  parser.add_argument('--set', action='append', default=[],
                      metavar='KEY=VALUE',
                      help='override a config field, e.g. model.feat_dim=2048')
  parser.add_argument('--checkpoint', default='',
                      help='a checkpoint step folder; default: the workdir\'s '
                      'best')


def run_config(workdir: str, spec: str | None,
               overrides: list[str]) -> ml_collections.ConfigDict:
  """The config of a run: --config if given, else <workdir>/config.json."""
  if spec:
    config = config_utils.load_config(spec)
  else:
    path = os.path.join(workdir, 'config.json')
    if not os.path.isfile(path):
      raise errors.TalError(f'{workdir} has no config.json; pass --config '
                            '(e.g. configs/bmn.py)')
    try:
      with open(path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    except (ValueError, OSError) as e:
      raise errors.TalError(f'{path}: cannot read ({e})') from None
  import_mmaction2._apply_overrides(config, overrides)  # pylint: disable=protected-access
  return config


def load_model(args):
  """(config, model definition, predictor, variables, checkpoint path) of
  the model args: the variables restored for inference (no optimizer)."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.ERROR)  # Orbax's read-only notices
  workdir = os.path.abspath(os.path.expanduser(args.workdir))
  config = run_config(workdir, args.config, args.set)
  if args.checkpoint:
    config.checkpoint = args.checkpoint
  model_def = localizers.get(config)
  predictor = predict.Predictor(model_def, config)
  variables, where = predict.restore_variables(predictor, config, workdir)
  return config, model_def, predictor, variables, where


def serving_of(config, model_def):
  """The definition's Serving (TalError for a model that cannot be
  served)."""
  if model_def.serving is None:
    servable = sorted(k for k, v in localizers.MODELS.items() if v.serving)
    raise errors.TalError(f"model '{config.model_name}' cannot be exported or "
                          f'served yet (supported: {servable})')
  return model_def.serving


# jax.export's lowering platforms (any other name is exported silently and
# runs nowhere).
PLATFORMS = ('cpu', 'cuda', 'rocm', 'tpu')


def main(argv=None) -> str:
  parser = argparse.ArgumentParser(
      description='Export a trained model (jax.export + params + loader).')
  add_model_args(parser)
  parser.add_argument('--out', required=True, help='model folder to write')
  parser.add_argument('--platforms', default='cpu,cuda',
                      help='comma-separated lowering platforms')
  args = parser.parse_args(argv)
  platforms = [p for p in args.platforms.split(',') if p]
  unknown = [p for p in platforms if p not in PLATFORMS]
  if unknown or not platforms:
    raise errors.TalError(f'--platforms {args.platforms!r}: expected a '
                          f'comma-separated list of {", ".join(PLATFORMS)}')
  serving.check_out_dir(os.path.abspath(args.out))
  config, model_def, predictor, variables, where = load_model(args)
  spec = serving_of(config, model_def)
  inputs = spec.input_specs(config)
  names, arrays, treedef = serving.flatten_params(variables['params'])
  forward = functools.partial(spec.forward or model_def.forward,
                              predictor.module, config=config)
  exported = serving.export_function(forward, treedef, arrays, inputs,
                                     platforms)
  meta = serving.metadata(config, exported, names, where, spec.output_names,
                          inputs)
  serving.write_model_dir(args.out, exported, names, arrays, meta)
  shapes = ', '.join(f'{x["name"]} {x["shape"]}' for x in meta['inputs'])
  print(f'exported {where} ({config.model_name}: {shapes}; platforms '
        f'{",".join(exported.platforms)}) to {os.path.abspath(args.out)}')
  return args.out


if __name__ == '__main__':
  errors.run_cli(main)
