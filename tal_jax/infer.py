"""--mode=test: restore a checkpoint, predict a split, write results and metrics.

Writes, in the workdir (atomically):
- results.json: ActivityNet results format, as MMAction2's ANetMetric dumps it
  ({"version", "results": {video: [{"score", "segment": [s, e]}]}, "external_data"});
- metrics.json: AR@1, AR@5, AR@10, AR@100 (fractions) and AUC (percent).
"""

import os

import jax
import ml_collections
import numpy as np

from tal_jax import checkpointing
from tal_jax import errors
from tal_jax import parallel
from tal_jax import postprocess
from tal_jax import runlog
from tal_jax import tasks
from tal_jax import train
from tal_jax.data import pipeline


def restore_params(trainer: train.Trainer, config: ml_collections.ConfigDict,
                   workdir: str):
  """Parameters of config.checkpoint, or of the workdir's best checkpoint,
  and where they came from."""
  variables, where = restore_variables(trainer, config, workdir)
  return variables['params'], where


def restore_variables(trainer: train.Trainer,
                      config: ml_collections.ConfigDict, workdir: str):
  """({'params', **model_state}, where) of config.checkpoint, or of the
  workdir's best checkpoint."""
  ckpt_dir, step = workdir, None
  if config.checkpoint:
    ckpt_dir, step = checkpointing.resolve_checkpoint(config.checkpoint)
  like = jax.eval_shape(lambda: trainer.init_state(jax.random.key(0),
                                                   pretrained=False))
  restored, where = checkpointing.restore_for_inference(
      ckpt_dir, step, like.params, trainer.replicated, config,
      like.model_state)
  return {'params': restored['params'], **restored['model_state']}, where


def results_json(proposals: dict[str, np.ndarray]) -> dict:
  """ActivityNet results file as MMAction2 dumps it, from {name: [K, 3] s}."""
  results = {}
  for name, rows in proposals.items():
    results.update(postprocess.proposals_to_results(
        [name], rows[None], np.ones((1, len(rows)), bool)))
  return {'version': 'VERSION 1.3', 'results': results, 'external_data': {}}


def run_test(config: ml_collections.ConfigDict, workdir: str,
             quiet: bool = False) -> dict[str, float]:
  """Predicts config.data.ann_file_test and writes results.json + metrics.json."""
  custom = tasks.get(config).run_test
  if custom is not None:
    return custom(config, workdir, quiet)
  progress = runlog.show_progress(quiet)
  videos = parallel.process_0_first(
      lambda: pipeline.load_split(config, 'test', progress), 'load_test')
  trainer = train.Trainer(config, steps_per_epoch=1)
  params, where = restore_params(trainer, config, workdir)
  runlog.info(f'restored {where}', quiet)
  proposals = train.predict_split(trainer, params, videos,
                                  config.test.batch_size, progress)
  metrics = train.evaluate_proposals(videos, proposals)
  if jax.process_index() == 0:
    errors.write_json(os.path.join(workdir, 'results.json'),
                      results_json(proposals))
    errors.write_json(os.path.join(workdir, 'metrics.json'), metrics, indent=2)
  runlog.info('test: ' + runlog.format_metrics(metrics), quiet)
  return metrics
