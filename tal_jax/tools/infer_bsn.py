"""BSN in tools.infer: a tools.bsn_pipeline workdir's TEM -> PGM -> PEM in
memory on feature arrays.

A pipeline workdir W holds tem/ and pem/ (training workdirs: config.json +
checkpoints/) and pgm/ (config.json of the PGM stage as the pipeline ran it;
a workdir from before that file gets configs/bsn_pgm.py's PGM values, which
every preset and the THUMOS14 configs share). Each stage runs the code of its
--mode=test: TEM's batched forward, `bsn.pgm_in_memory` (what run_pgm
writes to pgm_test.npz, on the PGM config's test_top_k), `bsn.pem_test_arrays`
(what PEM's test reads back) and PEM's decode (score x start x end, soft-NMS,
post_process_top_k).
"""

import argparse
import dataclasses
import os

import ml_collections
import numpy as np

from tal_jax import config_utils
from tal_jax import errors
from tal_jax.engine import predict
from tal_jax.localizers.bsn import definition as bsn
from tal_jax.tools import export as export_tool

STAGES = ('tem', 'pem')
# TEM output channels, in order (tem_results.npz).
TEM_CURVES = ('action', 'start', 'end')


@dataclasses.dataclass
class Stage:
  """One restored network of the chain."""
  config: ml_collections.ConfigDict
  predictor: predict.Predictor
  params: dict
  where: str


@dataclasses.dataclass
class Chain:
  """TEM and PEM restored, and the PGM config section (config.pgm)."""
  tem: Stage
  pgm: ml_collections.ConfigDict
  pem: Stage


def is_pipeline_workdir(workdir: str) -> bool:
  """Whether `workdir` is a tools.bsn_pipeline workdir: tem/ or pem/ in it,
  no config.json of its own."""
  workdir = os.path.expanduser(workdir)
  return (not os.path.isfile(os.path.join(workdir, 'config.json')) and
          any(os.path.isdir(os.path.join(workdir, s)) for s in STAGES))


def _stage(workdir: str, name: str) -> Stage:
  sub = os.path.join(workdir, name)
  if not os.path.isfile(os.path.join(sub, 'config.json')):
    raise errors.TalError(f'{workdir}: BSN pipeline workdir without '
                          f'{name}/config.json (run tools.bsn_pipeline to the '
                          'end)')
  config, _, predictor, variables, where = export_tool.load_model(
      argparse.Namespace(workdir=sub, config=None, set=[], checkpoint=''))
  expected = 'bsn_' + name
  if config.model_name != expected:
    raise errors.TalError(f"{sub}/config.json: model '{config.model_name}', "
                          f"expected '{expected}'")
  return Stage(config, predictor, variables['params'], where)


def pgm_config(workdir: str) -> ml_collections.ConfigDict:
  """The PGM section (config.pgm) of <workdir>/pgm/config.json, else
  configs/bsn_pgm.py's."""
  path = os.path.join(workdir, 'pgm', 'config.json')
  if os.path.isfile(path):
    config = export_tool.run_config(os.path.dirname(path), None, [])
  else:
    config = config_utils.load_config('bsn_pgm')
  if 'pgm' not in config:
    raise errors.TalError(f'{path}: no pgm section')
  return config.pgm


def load_chain(args) -> Chain:
  """The chain of --workdir; TalError for --config / --set / --checkpoint
  (one per stage would be needed) and for a missing stage or checkpoint."""
  for flag, value in (('--config', args.config), ('--set', args.set),
                      ('--checkpoint', args.checkpoint)):
    if value:
      raise errors.TalError(f'{flag} does not apply to a BSN pipeline '
                            f'workdir ({args.workdir}): its stages keep their '
                            'own config.json and best checkpoint')
  workdir = os.path.abspath(os.path.expanduser(args.workdir))
  tem = _stage(workdir, 'tem')
  pem = _stage(workdir, 'pem')
  return Chain(tem, pgm_config(workdir), pem)


def tem_outputs(stage: Stage, feats: np.ndarray,
                batch_size: int) -> np.ndarray:
  """TEM outputs [N, T, 3] (action, start, end) of features [N, T, D]."""
  out = np.zeros(feats.shape[:2] + (len(TEM_CURVES),), np.float32)
  for idx, o, _ in predict.forward_batches(stage.predictor, stage.params,
                                           {'inputs': feats}, batch_size):
    out[idx] = o
  return out


def pem_picks(stage: Stage, arrays: dict[str, np.ndarray]):
  """PEM's decode over `bsn.pem_test_arrays`: (picks [N, k, 3] normalised
  (tmin, tmax, score), valid [N, k])."""
  picks, valid = [], []
  model_def = stage.predictor.model_def
  for _, out, host in predict.forward_batches(
      stage.predictor, stage.params, arrays, stage.config.test.batch_size):
    p, v = model_def.decode(out, host, stage.config)
    picks.append(p)
    valid.append(v)
  return np.concatenate(picks), np.concatenate(valid)


def decode(chain: Chain, feats: np.ndarray, batch_size: int | None = None):
  """TEM -> PGM -> PEM on features [N, T, D].

  Returns (picks [N, k, 3] normalised, valid [N, k], curves {'action',
  'start', 'end': [N, T]} of TEM). `batch_size`: TEM's videos per forward
  (default its config.test.batch_size).
  """
  tem = tem_outputs(chain.tem, feats,
                    batch_size or chain.tem.config.test.batch_size)
  proposals, bsp = bsn.pgm_in_memory(
      list(tem), [np.zeros((0, 2))] * len(tem), chain.pgm.test_top_k,
      chain.pgm)
  arrays = bsn.pem_test_arrays(proposals, bsp,
                               chain.pem.config.model.test_top_k)
  picks, valid = pem_picks(chain.pem, arrays)
  return picks, valid, {c: tem[..., i] for i, c in enumerate(TEM_CURVES)}
