"""Training and evaluation loop shared by every model (see tasks.MODELS).

`train_step` is pure, `(state, batch, rng) -> (state, metrics)`. It is jitted
once, wrapped so the batch is gathered on the devices: labels are computed once
per split on the host, the split's arrays are put on the devices (replicated)
once, and each step sends only its [B] indices, sharded over the device mesh;
the state is replicated.
Randomness: one root key from config.seed, folded by step, so a resumed run
draws exactly what an uninterrupted one would.
"""

import functools
import math
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from tal_jax import checkpointing
from tal_jax import config_utils
from tal_jax import errors
from tal_jax import evaluation
from tal_jax import parallel
from tal_jax import tasks
from tal_jax.data import activitynet
from tal_jax.data import pipeline
from tal_jax.metric_writer import MetricWriter


@flax.struct.dataclass
class TrainState:
  """step, params, optimizer state, and the model's other variable
  collections ({'batch_stats': ...} for SSN's backbone; {} for the rest)."""
  step: jax.Array
  params: Any
  opt_state: Any
  model_state: Any = flax.struct.field(default_factory=dict)

  @property
  def variables(self) -> dict[str, Any]:
    """{'params': ..., **model_state}, as `module.apply` takes them."""
    return {'params': self.params, **self.model_state}


def create_learning_rate_fn(config: ml_collections.ConfigDict,
                            steps_per_epoch: int) -> optax.Schedule:
  """Step-wise MultiStepLR: lr * gamma at each milestone epoch."""
  train = config.train
  lr = train.learning_rate
  if train.scale_lr:
    lr *= train.batch_size / train.base_batch_size
  boundaries = {int(m) * steps_per_epoch: train.lr_gamma
                for m in train.lr_milestones}
  return optax.piecewise_constant_schedule(lr, boundaries)


def create_optimizer(config: ml_collections.ConfigDict,
                     lr_fn: optax.Schedule,
                     labels: Any = None) -> optax.GradientTransformation:
  """As MMAction2's OptimWrapper: clip the gradient norm, then torch.optim.Adam
  with weight decay added to the gradient (L2, not AdamW); with
  config.train.optimizer == 'sgd', torch.optim.SGD with
  config.train.momentum (dampening 0, not Nesterov) instead of Adam.

  `labels`: an optional 'trainable' / 'frozen' tree like the params; frozen
  leaves (torch requires_grad=False) get no update, no weight decay and no
  share of the clipping norm."""
  if config.train.optimizer == 'sgd':
    scale = optax.trace(decay=config.train.momentum, nesterov=False)
  else:
    scale = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8)
  tx = optax.chain(
      optax.clip_by_global_norm(config.train.grad_clip_norm),
      optax.add_decayed_weights(config.train.weight_decay),
      scale, optax.scale_by_learning_rate(lr_fn))
  if labels is None:
    return tx
  return optax.multi_transform({'trainable': tx,
                                'frozen': optax.set_to_zero()}, labels)


def init_variables(module, model_def: tasks.ModelDef,
                   config: ml_collections.ConfigDict, rng: jax.Array):
  """The module's initial variables ({'params', ...})."""
  inputs = jnp.asarray(model_def.init_inputs(config))
  return dict(module.init(rng, inputs))


def _trainable_norm(grads: Any, labels: Any) -> jax.Array:
  """Global norm of the gradients of the trainable leaves (all if no labels),
  the norm MMAction2's clipping computes and logs."""
  if labels is not None:
    grads = jax.tree.map(lambda g, l: g if l == 'trainable' else None, grads,
                         labels)
  return optax.global_norm(grads)


def train_step(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array,
               *, module, model_def: tasks.ModelDef, tx, lr_fn,
               config, labels=None) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimisation step on a global batch (`labels`: the optimizer's
  'trainable' / 'frozen' tree, or None)."""
  step_rng = jax.random.fold_in(rng, state.step)

  def loss_fn(params):
    if not state.model_state:
      loss, metrics = model_def.loss(module, params, batch, step_rng, config)
      return loss, (metrics, state.model_state)
    return model_def.loss(module, params, batch, step_rng, config,
                          model_state=state.model_state)

  (_, (metrics, model_state)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {**metrics, 'grad_norm': _trainable_norm(grads, labels),
             'learning_rate': lr_fn(state.step)}
  return TrainState(state.step + 1, params, opt_state, model_state), metrics


def _gather_and_step(state, arrays, idx, rng, *, step, sharding):
  """train_step on rows `idx` [B] of the device-resident `arrays` [N, ...]."""
  batch = jax.tree.map(
      lambda a: jax.lax.with_sharding_constraint(a[idx], sharding), arrays)
  return step(state, batch, rng)


class Trainer:
  """Holds the jitted functions of one run (model, optimizer, mesh)."""

  def __init__(self, config: ml_collections.ConfigDict, steps_per_epoch: int):
    self.config = config
    self.model_def = tasks.get(config)
    self.module = self.model_def.build(config)
    self.mesh = parallel.make_mesh()
    parallel.check_global_batch(config.train.batch_size, self.mesh)
    group = config.train.videos_per_loss
    if config.train.batch_size % group:
      raise errors.TalError(
          f'config.train.batch_size={config.train.batch_size} is not a '
          f'multiple of config.train.videos_per_loss={group}')
    self.lr_fn = create_learning_rate_fn(config, max(1, steps_per_epoch))
    repl = parallel.replicated(self.mesh)
    self.replicated = repl
    labels = None
    if self.model_def.param_labels is not None:
      labels = self.model_def.param_labels(
          self._abstract_variables()['params'], config)
    self.tx = create_optimizer(config, self.lr_fn, labels)
    shard = parallel.batch_sharded(self.mesh)
    step = functools.partial(train_step, module=self.module,
                             model_def=self.model_def, tx=self.tx,
                             lr_fn=self.lr_fn, config=config, labels=labels)
    # train_step on a batch gathered on the devices from the split's arrays
    # (put there once per split): only the [B] indices travel per step.
    indexed = functools.partial(_gather_and_step, step=step, sharding=shard)
    self.train_step = jax.jit(
        indexed, in_shardings=(repl, repl, shard, repl),
        out_shardings=(repl, repl), donate_argnums=0)
    self.forward = None
    if self.model_def.forward is not None:
      forward = functools.partial(self.model_def.forward, self.module,
                                  config=config)
      self.forward = jax.jit(forward, in_shardings=(repl, shard),
                             out_shardings=repl)

  def _abstract_variables(self):
    return jax.eval_shape(functools.partial(
        init_variables, self.module, self.model_def, self.config),
                          jax.random.key(0))

  def put_arrays(self, arrays: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """A split's host arrays as replicated device arrays (every process holds
    the whole split, as the loop loads it)."""
    return {k: jax.make_array_from_process_local_data(
        self.replicated, np.asarray(v)) for k, v in arrays.items()}

  def init_state(self, rng: jax.Array,
                 pretrained: bool = True) -> TrainState:
    """Initial state; with `pretrained`, the model's configured pretrained
    weights (e.g. SSN's ImageNet backbone) replace the random init."""
    variables = jax.jit(functools.partial(init_variables, self.module,
                                          self.model_def, self.config),
                        out_shardings=self.replicated)(rng)
    if pretrained and self.model_def.load_pretrained is not None:
      variables = jax.device_put(
          self.model_def.load_pretrained(variables, self.config),
          self.replicated)
    params = variables.pop('params')
    opt_state = jax.jit(self.tx.init, out_shardings=self.replicated)(params)
    return TrainState(self.step_array(0), params, opt_state, variables)

  def step_array(self, step: int) -> jax.Array:
    """The step counter, committed with train_step's output sharding (an
    uncommitted scalar would make the second step compile again)."""
    return jax.device_put(jnp.asarray(step, jnp.int32), self.replicated)


def forward_batches(trainer: Trainer, params, arrays: dict[str, np.ndarray],
                    batch_size: int, progress: bool = False):
  """Runs the model over arrays['inputs'] in order, data-parallel.

  Yields (idx [b], outputs (host numpy, b rows), host arrays of those rows);
  the last batch is padded to a fixed shape (no recompilation) and cut back.
  """
  n_dev = trainer.mesh.devices.size
  batch_size = max(n_dev, batch_size // n_dev * n_dev)
  batches = pipeline.eval_batches(len(arrays['inputs']), batch_size)
  if progress:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    batches = tqdm(batches, desc='inference', leave=False)
  for idx in batches:
    padded = np.concatenate([idx, np.full(batch_size - len(idx), idx[-1])])
    host = _gather(arrays, padded)
    inputs = parallel.shard_batch(
        {'x': np.asarray(host['inputs'])[parallel.host_slice(batch_size)]},
        trainer.mesh, batch_size)['x']
    outputs = jax.device_get(trainer.forward(params, inputs))
    outputs = jax.tree.map(lambda x: np.asarray(x)[:len(idx)], outputs)
    yield idx, outputs, {k: np.asarray(v)[:len(idx)] for k, v in host.items()}


def predict_split(trainer: Trainer, params, videos: activitynet.VideoSet,
                  batch_size: int, progress: bool = False,
                  arrays: dict[str, np.ndarray] | None = None
                  ) -> dict[str, np.ndarray]:
  """Proposals in seconds for every video: {name: [K, 3] (start, end, score)}.

  `arrays` are the split's eval arrays (computed from `videos` when None).
  """
  model_def, config = trainer.model_def, trainer.config
  if arrays is None:
    arrays = model_def.eval_arrays(videos, config)
  frames = videos.field('duration_frame')
  seconds = videos.field('duration_second')
  out = {}
  for idx, outputs, host in forward_batches(trainer, params, arrays,
                                            batch_size, progress):
    props, valid = model_def.decode(outputs, host, config)
    secs = model_def.to_seconds(props, frames[idx], seconds[idx])
    for j, i in enumerate(idx):
      out[videos.names[i]] = secs[j][valid[j]]
  return out


def evaluate_proposals(videos: activitynet.VideoSet,
                       proposals: dict[str, np.ndarray]) -> dict[str, float]:
  """AR@1/5/10/100 and AUC of proposals in seconds against the split's gt."""
  gt = {n: np.asarray([a['segment'] for a in r['annotations']],
                      np.float64).reshape(-1, 2)
        for n, r in zip(videos.names, videos.records)}
  return evaluation.ar_an_metrics(gt, proposals)


def _gather(arrays: dict[str, np.ndarray], idx: np.ndarray) -> dict:
  return {k: v[idx] for k, v in arrays.items()}


def _check_finite(metrics: dict[str, float], step: int) -> None:
  """TalError on a NaN/inf loss or gradient norm (a finite loss with an inf
  gradient would still make the parameters NaN). Called at every log step and
  at each epoch's last step, so NaN parameters are never checkpointed."""
  for key in ('loss', 'grad_norm'):
    if key in metrics and not math.isfinite(metrics[key]):
      raise errors.TalError(
          f'{key} is {metrics[key]} at step {step}: training stopped; the '
          'last checkpoint in the workdir is intact')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       quiet: bool = False) -> dict[str, float]:
  """Trains config.train.num_epochs epochs, evaluating and checkpointing each.

  Re-running with the same workdir resumes from the latest checkpoint.
  Returns the last evaluation metrics.
  """
  from tal_jax import runlog  # pylint: disable=g-import-not-at-top
  progress = runlog.show_progress(quiet)
  model_def = tasks.get(config)
  # Process 0 first: it fills a shared data cache, the others read it.
  train_set, val_set = parallel.process_0_first(
      lambda: (pipeline.load_split(config, 'train', progress),
               pipeline.load_split(config, 'val', progress)), 'load_splits')
  arrays = model_def.train_arrays(train_set, config)
  val_arrays = model_def.eval_arrays(val_set, config)
  bs = config.train.batch_size
  num_train = len(arrays['inputs'])
  steps_per_epoch = num_train // bs
  if steps_per_epoch == 0:
    raise errors.TalError(f'the training split has {num_train} videos, '
                          f'fewer than config.train.batch_size={bs}')
  trainer = Trainer(config, steps_per_epoch)
  root = jax.random.key(config.seed)
  init_rng, step_rng = jax.random.split(root)
  state = trainer.init_state(init_rng)
  mngr = checkpointing.manager(workdir)
  start_epoch = 0
  restored = checkpointing.restore_for_training(  # issue 14: newest intact
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
  config_utils.save_config(config, workdir)  # issue 14: once accepted
  writer = MetricWriter(workdir, start_step=int(state.step))  # issue 14
  metrics = {}
  device_cache = {}
  for epoch in range(start_epoch, config.train.num_epochs):
    state = _train_epoch(trainer, state, arrays, step_rng, epoch, writer,
                         progress, device_cache)
    metrics = {}
    if ((epoch + 1) % config.train.eval_every_epochs == 0 or
        epoch + 1 == config.train.num_epochs):
      if model_def.predict is not None:
        props = model_def.predict(trainer, state.variables, val_set,
                                  val_arrays)
      else:
        props = predict_split(trainer, state.params, val_set,
                              config.test.batch_size, arrays=val_arrays)
      metrics = evaluate_proposals(val_set, props)
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
