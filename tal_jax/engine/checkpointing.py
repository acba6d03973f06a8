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

import contextlib
import errno
import json
import os
import shutil
import zlib
from typing import Any, Callable, Iterator

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
  with _disk_errors(os.path.join(str(mngr.directory), str(step))):
    mngr.save(step, args=ocp.args.Composite(**items), metrics=metrics,
              force=True)
    mngr.wait_until_finished()
  write_sizes(os.path.join(str(mngr.directory), str(step)))


def save_params(workdir: str, params: Any, config: ml_collections.ConfigDict,
                step: int = 0, model_state: Any = None) -> str:
  """Writes an imported (no optimizer state) checkpoint; returns its folder."""
  mngr = manager(workdir)
  meta = {**model_meta(config), 'epoch': 0, 'imported': True}
  items = dict(params=ocp.args.StandardSave(params),
               meta=ocp.args.JsonSave(meta))
  if model_state:
    items['model_state'] = ocp.args.StandardSave(model_state)
  with _disk_errors(os.path.join(str(mngr.directory), str(step))):
    mngr.save(step, args=ocp.args.Composite(**items), force=True)
    mngr.wait_until_finished()
  mngr.close()
  write_sizes(os.path.join(str(mngr.directory), str(step)))
  return os.path.join(str(mngr.directory), str(step))


_DISK_ERRORS = {'No space left on device': errno.ENOSPC,
                'Disk quota exceeded': errno.EDQUOT,
                'Read-only file system': errno.EROFS}


@contextlib.contextmanager
def _disk_errors(step_dir: str) -> Iterator[None]:
  """A full or read-only disk as an OSError naming the step folder (Orbax and
  TensorStore report it as a ValueError or their own exception types)."""
  try:
    yield
  except OSError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    for text, code in _DISK_ERRORS.items():
      if text in str(e):
        raise OSError(code, text, step_dir) from None
    raise


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
  problem = step_problem(where)
  if problem:
    raise DamagedCheckpoint(where, problem)
  try:
    meta = mngr.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore()))['meta']
  except Exception as e:  # pylint: disable=broad-except
    _quiet_closed_loop_callbacks()
    raise DamagedCheckpoint(where, f'meta cannot be read: {_first_line(e)}'
                            ) from None
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
  except Exception as e:  # pylint: disable=broad-except
    _quiet_closed_loop_callbacks()
    damage = _read_problem(mngr, step, list(items))
    if damage:
      raise DamagedCheckpoint(where, damage) from None
    raise errors.TalError(f'{where}: checkpoint does not fit the model '
                          f'({_first_line(e)})') from None
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


class DamagedCheckpoint(errors.TalError):
  """A checkpoint step folder that cannot be read (truncated, incomplete)."""

  def __init__(self, where: str, problem: str):
    super().__init__(f'{where}: damaged checkpoint ({problem})')
    self.where = where
    self.problem = problem


def _first_line(e: BaseException) -> str:
  return errors.one_line(str(e).splitlines()[0] if str(e) else
                         type(e).__name__, 200)


# What a complete step holds (Orbax writes _CHECKPOINT_METADATA last).
_REQUIRED = ('_CHECKPOINT_METADATA', os.path.join('meta', 'metadata'),
             os.path.join('params', '_METADATA'))


SIZES_NAME = 'tal_jax_files.json'


def _crc32(path: str) -> int:
  crc = 0
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 22), b''):
      crc = zlib.crc32(chunk, crc)
  return crc


def _file_sizes(step_dir: str) -> dict[str, int]:
  sizes = {}
  for root, _, files in os.walk(step_dir):
    for name in files:
      path = os.path.join(root, name)
      sizes[os.path.relpath(path, step_dir)] = os.path.getsize(path)
  sizes.pop(SIZES_NAME, None)
  return sizes


def write_sizes(step_dir: str) -> None:
  """Records {file: [size, crc32]} of a saved step (process 0), so a file
  missing, truncated or altered is named before Orbax reads it."""
  if jax.process_index() == 0:
    record = {rel: [size, _crc32(os.path.join(step_dir, rel))]
              for rel, size in _file_sizes(step_dir).items()}
    errors.write_json(os.path.join(step_dir, SIZES_NAME), record, indent=0)


def _size_problem(step_dir: str) -> str | None:
  """A file missing, of another size or checksum than `write_sizes`
  recorded."""
  path = os.path.join(step_dir, SIZES_NAME)
  if not os.path.isfile(path):
    return None  # saved before the sizes were recorded
  try:
    with open(path) as f:
      saved = {k: (int(v[0]), int(v[1])) for k, v in json.load(f).items()}
  except (OSError, ValueError, TypeError, AttributeError, IndexError,
          KeyError):
    return f'{SIZES_NAME} is truncated or not JSON'
  now = _file_sizes(step_dir)
  for rel, (size, crc) in sorted(saved.items()):
    if rel not in now:
      return f'{rel} is missing'
    if now[rel] != size:
      return f'{rel} has {now[rel]} bytes, {size} were saved (truncated?)'
    if _crc32(os.path.join(step_dir, rel)) != crc:
      return f'{rel} differs from what was saved (checksum)'
  return None


def step_problem(step_dir: str) -> str | None:
  """What makes a checkpoints/<step> folder unusable at a glance (missing,
  empty, a file missing or of another size than saved, a required file
  missing, empty or not JSON), or None."""
  if not os.path.isdir(step_dir):
    return 'no such folder'
  if not os.listdir(step_dir):
    return 'empty step folder'
  size_problem = _size_problem(step_dir)
  if size_problem:
    return size_problem
  for rel in _REQUIRED:
    path = os.path.join(step_dir, rel)
    if not os.path.isfile(path):
      return f'{rel} is missing'
    try:
      with open(path) as f:
        json.load(f)
    except (OSError, ValueError, UnicodeDecodeError):
      return f'{rel} is truncated or not JSON'
  for root, _, files in os.walk(step_dir):
    for name in files:
      path = os.path.join(root, name)
      if os.path.getsize(path) == 0 and name != 'commit_success.txt':
        return f'{os.path.relpath(path, step_dir)} is empty'
  return None


def _read_problem(mngr: ocp.CheckpointManager, step: int,
                  names: list[str]) -> str | None:
  """Why the items `names` of `step` cannot be read as saved (no target), or
  None when they can (then a failed restore means another model)."""
  try:
    mngr.restore(step, args=ocp.args.Composite(
        **{n: ocp.args.StandardRestore() for n in names}))
  except Exception as e:  # pylint: disable=broad-except
    _quiet_closed_loop_callbacks()
    return f'cannot be read: {_first_line(e)}'
  return None


def _quiet_closed_loop_callbacks() -> None:
  """After a failed Orbax read, TensorStore still completes the cancelled
  reads on Orbax's closed event loop: Python prints each 'Event loop is
  closed' RuntimeError as an unraisable exception (dozens of tracebacks
  after the one-line error). Those, and only those, are silenced."""
  import sys  # pylint: disable=g-import-not-at-top
  previous = sys.unraisablehook
  if getattr(previous, '_tal_quiet', False):
    return

  def hook(unraisable):
    e = unraisable.exc_value
    if isinstance(e, RuntimeError) and str(e) == 'Event loop is closed':
      return
    previous(unraisable)

  hook._tal_quiet = True  # pylint: disable=protected-access
  sys.unraisablehook = hook


def intact_steps(mngr: ocp.CheckpointManager,
                 damaged: tuple[int, ...] = ()) -> list[int]:
  """The steps whose folders pass `step_problem`, oldest first, less the
  `damaged` ones (found damaged on reading)."""
  return [s for s in sorted(mngr.all_steps()) if s not in damaged and
          step_problem(os.path.join(str(mngr.directory), str(s))) is None]


def _intact_hint(mngr: ocp.CheckpointManager,
                 damaged: tuple[int, ...] = ()) -> str:
  steps = intact_steps(mngr, damaged)
  if not steps:
    return 'no intact checkpoint in ' + str(mngr.directory)
  return ('intact steps: ' + ', '.join(str(s) for s in steps) +
          f' (use {os.path.join(str(mngr.directory), str(steps[-1]))} '
          'as the checkpoint)')


def restore_for_inference(ckpt_dir: str, step: int | None, params_like: Any,
                          sharding: Any, config: ml_collections.ConfigDict,
                          model_state_like: Any = None
                          ) -> tuple[dict[str, Any], str]:
  """(restore's dict without opt_state, step folder) of `step`, or of the
  best (else latest) step of `ckpt_dir`'s checkpoints; a damaged or absent
  step is a TalError that lists the intact steps."""
  mngr = manager(ckpt_dir, read_only=True)
  try:
    if step is None:
      step = find_step(mngr, 'best')
    if step is None:
      raise errors.TalError(f'no checkpoint found in {ckpt_dir}')
    if step not in mngr.all_steps():
      raise errors.TalError(f'{ckpt_dir}: no checkpoint at step {step}; '
                            + _intact_hint(mngr))
    try:
      restored = restore(mngr, step, params_like, None, sharding, config,
                         model_state_like)
    except DamagedCheckpoint as e:
      raise errors.TalError(f'{e}; {_intact_hint(mngr, (step,))}') from None
  finally:
    mngr.close()
  return restored, os.path.join(str(mngr.directory), str(step))


def set_aside(step_dir: str) -> str:
  """Renames a damaged step folder to <step>.damaged[.N] (Orbax then ignores
  it, and a new save at that step does not collide); returns the new path."""
  target = free_name(step_dir + '.damaged')
  os.rename(step_dir, target)
  return target


def free_name(path: str) -> str:
  """`path`, or `path`.2, `path`.3, ... : the first that does not exist."""
  target, n = path, 1
  while os.path.exists(target):
    n += 1
    target = f'{path}.{n}'
  return target


def restore_for_training(mngr: ocp.CheckpointManager, params_like: Any,
                         opt_state_like: Any, sharding: Any,
                         config: ml_collections.ConfigDict,
                         model_state_like: Any = None,
                         say: Callable[[str], None] = print
                         ) -> dict[str, Any] | None:
  """`restore` of the newest intact step (with 'step' added), or None when
  the workdir has no checkpoint. Damaged newer steps are set aside
  (`set_aside`) with a message through `say`; TalError when none is intact.
  Model mismatches (check_meta) are raised as they are, never skipped."""
  damaged = []
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      out = restore(mngr, step, params_like, opt_state_like, sharding, config,
                    model_state_like)
    except DamagedCheckpoint as e:
      damaged.append(e)
      continue
    for e in damaged:
      moved = (set_aside(e.where) if jax.process_index() == 0
               else e.where + '.damaged')
      say(f'{e}; moved to {moved}')
    if damaged:
      mngr.reload()
      say(f'resuming from step {step}, the newest intact checkpoint')
    return {**out, 'step': step}
  if damaged:
    raise errors.TalError(
        f'{damaged[0]}; no intact checkpoint in {mngr.directory} to resume '
        'from (move that folder away to train from scratch)')
  return None


def clear_for_import(workdir: str, force: bool) -> str | None:
  """Makes room for an imported checkpoint: None when the workdir has no
  checkpoint step; with `force`, moves its checkpoints/ to
  checkpoints.before-import[.N] (returned) so the import is the only step
  every later command restores; else a TalError."""
  directory = os.path.join(os.path.abspath(os.path.expanduser(workdir)),
                           'checkpoints')
  steps = sorted(int(s) for s in os.listdir(directory)
                 if s.isdigit()) if os.path.isdir(directory) else []
  if not steps:
    return None
  if not force:
    raise errors.TalError(
        f'{workdir} already holds checkpoints (steps '
        f'{", ".join(map(str, steps))}) that test, infer, export and resume '
        'would keep restoring instead of the import; use another workdir, or '
        '--force to move them to checkpoints.before-import')
  target = free_name(directory + '.before-import')
  shutil.move(directory, target)
  return target
