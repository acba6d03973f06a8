"""The training loop every model shares: `train_and_evaluate(model_def, ...)`.

Epochs of the jitted train step (`trainer.Trainer`), an evaluation (proposals
-> AR@AN / AUC on the validation split) every config.train.eval_every_epochs,
Orbax checkpoints (latest + best by AUC), a NaN/inf guard, metrics as JSON
lines and TensorBoard events. Re-running with the same workdir resumes from
the latest checkpoint; the data order is a function of (seed, epoch), so a
resumed run repeats exactly the same batches.
"""

import math

import jax
import ml_collections
import numpy as np

from tal_jax import config_utils
from tal_jax import errors
from tal_jax.data import pipeline
from tal_jax.engine import checkpointing
from tal_jax.engine import parallel
from tal_jax.engine import predict
from tal_jax.engine import runlog
from tal_jax.engine.metric_writer import MetricWriter
from tal_jax.engine.model_def import ModelDef
from tal_jax.engine.trainer import Trainer
from tal_jax.engine.trainer import TrainState


def _check_finite(metrics: dict[str, float], step: int) -> None:
  """TalError on a NaN/inf loss or gradient norm (a finite loss with an inf
  gradient would still make the parameters NaN). Called at every log step and
  at each epoch's last step, so NaN parameters are never checkpointed."""
  for key in ('loss', 'grad_norm'):
    if key in metrics and not math.isfinite(metrics[key]):
      raise errors.TalError(
          f'{key} is {metrics[key]} at step {step}: training stopped; the '
          'last checkpoint in the workdir is intact')


def train_and_evaluate(model_def: ModelDef,
                       config: ml_collections.ConfigDict, workdir: str,
                       quiet: bool = False) -> dict[str, float]:
  """Trains config.train.num_epochs epochs, evaluating and checkpointing each.

  Re-running with the same workdir resumes from the latest checkpoint.
  Returns the last evaluation metrics.
  """
  progress = runlog.show_progress(quiet)
  # Process 0 first: it fills a shared data cache, the others read it.
  train_set, val_set = parallel.process_0_first(
      lambda: (pipeline.load_split(config, 'train', progress,
                                   model_def.uses_features),
               pipeline.load_split(config, 'val', progress,
                                   model_def.uses_features)), 'load_splits')
  arrays = model_def.train_arrays(train_set, config)
  val_arrays = model_def.eval_arrays(val_set, config)
  bs = config.train.batch_size
  num_train = len(arrays['inputs'])
  steps_per_epoch = num_train // bs
  if steps_per_epoch == 0:
    raise errors.TalError(f'the training split has {num_train} videos, '
                          f'fewer than config.train.batch_size={bs}')
  trainer = Trainer(model_def, config, steps_per_epoch)
  runlog.info(runlog.startup_line(
      'train', trainer.mesh, bs, parallel.check_global_batch(bs, trainer.mesh),
      runlog.compute_dtype(trainer.module)), quiet)
  root = jax.random.key(config.seed)
  init_rng, step_rng = jax.random.split(root)
  state = trainer.init_state(init_rng)
  mngr = checkpointing.manager(workdir)
  start_epoch = 0
  restored = checkpointing.restore_for_training(
      mngr, state.params, state.opt_state, trainer.replicated, config,
      state.model_state, say=lambda m: runlog.info(m, quiet))
  if restored is not None:
    if restored['opt_state'] is None:
      raise errors.TalError(f'{workdir}: the latest checkpoint has no optimizer '
                            'state (imported?); use another workdir to train')
    start_epoch = restored['meta']['epoch']
    state = TrainState(trainer.step_array(start_epoch * steps_per_epoch),
                       restored['params'], restored['opt_state'],
                       restored['model_state'])
    runlog.info(f'resumed from step {restored["step"]} ({mngr.directory}/'
                f'{restored["step"]}) at epoch {start_epoch}', quiet)
  config_utils.save_config(config, workdir)  # only once the run is accepted
  writer = MetricWriter(workdir, start_step=int(state.step))
  metrics = {}
  device_cache = {}
  for epoch in range(start_epoch, config.train.num_epochs):
    state = _train_epoch(trainer, state, arrays, step_rng, epoch, writer,
                         progress, device_cache)
    metrics = {}
    if ((epoch + 1) % config.train.eval_every_epochs == 0 or
        epoch + 1 == config.train.num_epochs):
      if model_def.predict is not None:
        props = model_def.predict(trainer.predictor, state.variables,
                                  val_set, val_arrays)
      else:
        props = predict.predict_split(trainer.predictor, state.params,
                                      val_set, config.test.batch_size,
                                      arrays=val_arrays)
      metrics = predict.evaluate_proposals(val_set, props)
      writer.write(int(state.step), metrics, epoch=epoch + 1, split='val')
      runlog.info(f'epoch {epoch + 1}: ' + runlog.format_metrics(metrics),
                  quiet)
    if not (metrics or (epoch + 1) % config.train.checkpoint_every_epochs == 0
            or epoch + 1 == config.train.num_epochs):
      continue
    meta = {**checkpointing.model_meta(config), 'epoch': epoch + 1,
            'metrics': metrics}
    checkpointing.save(mngr, int(state.step), state.params, state.opt_state,
                       meta, metrics or None, state.model_state)
  mngr.close()
  writer.close()
  return metrics


def _train_epoch(trainer, state, arrays, rng, epoch, writer, progress,
                 device_cache):
  """One epoch; `device_cache` keeps the device copy of the arrays between
  epochs while epoch_arrays returns the same arrays (all but SSN)."""
  config = trainer.config
  arrays = trainer.model_def.epoch_arrays(arrays, epoch, config)
  if device_cache.get('host') is not arrays:
    device_cache.clear()
    device_cache.update(host=arrays, device=trainer.put_arrays(arrays))
  device_arrays = device_cache['device']
  bs = config.train.batch_size
  n = len(arrays['inputs'])
  batches = pipeline.epoch_batches(config.seed, epoch, n, bs)
  it = range(len(batches))
  bar = None
  if progress:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    it = bar = tqdm(it, desc=f'epoch {epoch + 1}/{config.train.num_epochs}')
  host_rows = parallel.host_slice(bs)
  for i in it:
    idx = parallel.shard_batch(
        {'idx': batches[i][host_rows].astype(np.int32)}, trainer.mesh, bs)
    state, m = trainer.train_step(state, device_arrays, idx['idx'], rng)
    last = i + 1 == len(batches)
    if (i + 1) % config.train.log_every_steps == 0 or last:
      m = {k: float(v) for k, v in jax.device_get(m).items()}
      _check_finite(m, int(state.step))
      writer.write(int(state.step), m, epoch=epoch + 1, split='train')
      if bar is not None:
        bar.set_postfix(loss=f'{m["loss"]:.4f}')
  return state
