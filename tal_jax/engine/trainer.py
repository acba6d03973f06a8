"""The train state, the optimizer and the jitted, data-parallel train step.

`train_step` is pure, `(state, batch, rng) -> (state, metrics)`. It is jitted
once, wrapped so the batch is gathered on the devices: labels are computed once
per split on the host, the split's arrays are put on the devices (replicated)
once, and each step sends only its [B] indices, sharded over the device mesh;
the state is replicated.
Randomness: one root key from config.seed, folded by step, so a resumed run
draws exactly what an uninterrupted one would.
"""

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from tal_jax import errors
from tal_jax.engine import parallel
from tal_jax.engine import predict
from tal_jax.engine.model_def import ModelDef


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


def _trainable_norm(grads: Any, labels: Any) -> jax.Array:
  """Global norm of the gradients of the trainable leaves (all if no labels),
  the norm MMAction2's clipping computes and logs."""
  if labels is not None:
    grads = jax.tree.map(lambda g, l: g if l == 'trainable' else None, grads,
                         labels)
  return optax.global_norm(grads)


def train_step(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array,
               *, module, model_def: ModelDef, tx, lr_fn,
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
  """The jitted train step of one run (model, optimizer, mesh), over the
  `predict.Predictor` whose module, mesh and forward it shares."""

  def __init__(self, model_def: ModelDef, config: ml_collections.ConfigDict,
               steps_per_epoch: int):
    self.config = config
    self.model_def = model_def
    self.predictor = predict.Predictor(model_def, config)
    self.module = self.predictor.module
    self.mesh = self.predictor.mesh
    self.replicated = self.predictor.replicated
    parallel.check_global_batch(config.train.batch_size, self.mesh)
    group = config.train.videos_per_loss
    if config.train.batch_size % group:
      raise errors.TalError(
          f'config.train.batch_size={config.train.batch_size} is not a '
          f'multiple of config.train.videos_per_loss={group}')
    self.lr_fn = create_learning_rate_fn(config, max(1, steps_per_epoch))
    labels = None
    if model_def.param_labels is not None:
      labels = model_def.param_labels(
          self.predictor.abstract_variables()['params'], config)
    self.tx = create_optimizer(config, self.lr_fn, labels)
    shard = parallel.batch_sharded(self.mesh)
    step = functools.partial(train_step, module=self.module,
                             model_def=model_def, tx=self.tx,
                             lr_fn=self.lr_fn, config=config, labels=labels)
    # train_step on a batch gathered on the devices from the split's arrays
    # (put there once per split): only the [B] indices travel per step.
    indexed = functools.partial(_gather_and_step, step=step, sharding=shard)
    repl = self.replicated
    self.train_step = jax.jit(
        indexed, in_shardings=(repl, repl, shard, repl),
        out_shardings=(repl, repl), donate_argnums=0)

  def put_arrays(self, arrays: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """A split's host arrays as replicated device arrays (every process holds
    the whole split, as the loop loads it)."""
    return {k: jax.make_array_from_process_local_data(
        self.replicated, np.asarray(v)) for k, v in arrays.items()}

  def init_state(self, rng: jax.Array,
                 pretrained: bool = True) -> TrainState:
    """Initial state; with `pretrained`, the model's configured pretrained
    weights (e.g. SSN's ImageNet backbone) replace the random init."""
    variables = self.predictor.init_variables(rng)
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
