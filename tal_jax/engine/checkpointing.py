"""Orbax checkpoints in the workdir: the latest and the best kept, resume, import.

Layout: ``<workdir>/checkpoints/<step>/{params,opt_state,meta}``, plus
``model_state`` (BN running statistics) for models that have one (SSN with
its backbone in frame mode). ``meta`` (JSON)
holds the model name, the epoch reached, the model's config and the metrics of
that epoch. Orbax's ``max_to_keep`` with ``best_fn`` alone deletes the latest
checkpoint, so a preservation policy keeps both the latest and the best by AUC.

Restoring goes through abstract targets carrying the current shardings, so a run
saved on N devices resumes on any other device count.
"""

import os
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

from tal_jax import errors

BEST_METRIC = 'AUC'


def _best_metric(metrics: dict[str, float]) -> float:
  return metrics[BEST_METRIC]


def _policy() -> Any:
  cm = ocp.checkpoint_managers
  return cm.AnyPreservationPolicy([
      cm.LatestN(n=1),
      cm.BestN(get_metric_fn=_best_metric, reverse=False, n=1,
               keep_checkpoints_without_metrics=False),
  ])


def manager(workdir: str, read_only: bool = False) -> ocp.CheckpointManager:
  """The workdir's CheckpointManager (synchronous saves, latest + best)."""
  directory = os.path.join(os.path.abspath(os.path.expanduser(workdir)),
                           'checkpoints')
  if read_only and not os.path.isdir(directory):
    raise errors.TalError(f'no checkpoints in {workdir} '
                          f'(expected {directory})')
  options = ocp.CheckpointManagerOptions(
      preservation_policy=_policy(), best_fn=_best_metric, best_mode='max',
      create=not read_only,
      read_only=read_only, enable_async_checkpointing=False)
  return ocp.CheckpointManager(directory, options=options)


def model_meta(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """What identifies a model: its name and its config.model values."""
  return {'model_name': config.model_name, 'model': config.model.to_dict()}


def save(mngr: ocp.CheckpointManager, step: int, params: Any, opt_state: Any,
         meta: dict[str, Any], metrics: dict[str, float] | None,
         model_state: Any = None) -> None:
  """Saves params, optimizer state, model state (when not empty) and
  metadata at `step` (all processes)."""
  items = dict(params=ocp.args.StandardSave(params),
               opt_state=ocp.args.StandardSave(opt_state),
               meta=ocp.args.JsonSave(meta))
  if model_state:
    items['model_state'] = ocp.args.StandardSave(model_state)
  mngr.save(step, args=ocp.args.Composite(**items), metrics=metrics,
            force=True)
  mngr.wait_until_finished()


def save_params(workdir: str, params: Any, config: ml_collections.ConfigDict,
                step: int = 0, model_state: Any = None) -> str:
  """Writes an imported (no optimizer state) checkpoint; returns its folder."""
  mngr = manager(workdir)
  meta = {**model_meta(config), 'epoch': 0, 'imported': True}
  items = dict(params=ocp.args.StandardSave(params),
               meta=ocp.args.JsonSave(meta))
  if model_state:
    items['model_state'] = ocp.args.StandardSave(model_state)
  mngr.save(step, args=ocp.args.Composite(**items), force=True)
  mngr.wait_until_finished()
  mngr.close()
  return os.path.join(str(mngr.directory), str(step))


def _abstract(tree: Any, sharding: Any) -> Any:
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def check_meta(meta: dict[str, Any], config: ml_collections.ConfigDict,
               where: str) -> None:
  """TalError when a checkpoint belongs to another model or another size."""
  want = model_meta(config)
  if meta.get('model_name') != want['model_name']:
    raise errors.TalError(
        f"{where}: checkpoint of model '{meta.get('model_name')}', config is "
        f"'{want['model_name']}'")
  saved = meta.get('model', {})
  diff = [k for k in want['model']
          if k in saved and saved[k] != want['model'][k] and k != 'bm_layer']
  if diff:
    k = diff[0]
    raise errors.TalError(
        f'{where}: checkpoint has model.{k}={saved[k]!r}, config has '
        f'model.{k}={want["model"][k]!r}')


def restore(mngr: ocp.CheckpointManager, step: int, params_like: Any,
            opt_state_like: Any | None, sharding: Any,
            config: ml_collections.ConfigDict,
            model_state_like: Any = None) -> dict[str, Any]:
  """Restores `step` onto `sharding`; opt_state only when `opt_state_like`,
  model_state only when `model_state_like` is not empty.

  Returns {'params', 'opt_state' (or None), 'model_state' ({} when not
  asked), 'meta'}.
  """
  where = os.path.join(str(mngr.directory), str(step))
  meta = mngr.restore(step, args=ocp.args.Composite(
      meta=ocp.args.JsonRestore()))['meta']
  check_meta(meta, config, where)
  items = {'params': ocp.args.StandardRestore(_abstract(params_like, sharding))}
  if opt_state_like is not None:
    items['opt_state'] = ocp.args.StandardRestore(
        _abstract(opt_state_like, sharding))
  if model_state_like:
    items['model_state'] = ocp.args.StandardRestore(
        _abstract(model_state_like, sharding))
  try:
    out = mngr.restore(step, args=ocp.args.Composite(**items))
  except (ValueError, KeyError) as e:
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise errors.TalError(f'{where}: checkpoint does not fit the model '
                          f'({msg})') from None
  return {'params': out['params'], 'opt_state': out.get('opt_state'),
          'model_state': out.get('model_state') or {}, 'meta': meta}


def find_step(mngr: ocp.CheckpointManager, which: str) -> int | None:
  """'latest' or 'best' step (best falls back to latest when none has metrics)."""
  if which == 'best':
    best = mngr.best_step()
    if best is not None:
      return best
  return mngr.latest_step()


def resolve_checkpoint(path: str) -> tuple[str, int | None]:
  """`config.checkpoint` as (workdir, step): a workdir or a checkpoint step dir."""
  path = os.path.abspath(os.path.expanduser(path))
  base = os.path.basename(path)
  if base.isdigit() and os.path.basename(os.path.dirname(path)) == 'checkpoints':
    return os.path.dirname(os.path.dirname(path)), int(base)
  if base == 'checkpoints':
    return os.path.dirname(path), None
  return path, None
