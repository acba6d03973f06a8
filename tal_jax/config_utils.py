"""Config helpers: load a config file, explain bad overrides, save config.json."""

import difflib
import importlib.util
import os
import re
import sys

import ml_collections

from tal_jax import errors


def base_config(model_name: str) -> ml_collections.ConfigDict:
  """The top-level fields every trained model's config shares."""
  config = ml_collections.ConfigDict()
  # Which entry of tal_jax.localizers.MODELS this config trains.
  config.model_name = model_name
  # Root of all randomness: init, the loss's sampling, shuffling.
  config.seed = 0
  # Compute dtype of the model ('float32' or 'bfloat16'); parameters and the
  # loss stay float32.
  config.dtype = 'float32'
  # Checkpoint to restore for --mode=test: a workdir or its checkpoints/<step>
  # folder; empty means the best one in --workdir.
  config.checkpoint = ''
  return config


def train_config(batch_size: int, num_epochs: int, learning_rate: float,
                 weight_decay: float, lr_milestones: tuple[int, ...],
                 videos_per_loss: int) -> ml_collections.ConfigDict:
  """The `config.train` fields every model shares (defined only here)."""
  train = ml_collections.ConfigDict()
  # Global batch over all devices (MMAction2's GPUs x videos per GPU).
  train.batch_size = batch_size
  # MMAction2 computes the loss on each GPU's videos and averages the
  # gradients (DDP); tal_jax computes it on groups of this many videos, so the
  # numbers are the same whatever the device count.
  train.videos_per_loss = videos_per_loss
  train.num_epochs = num_epochs
  # 'adam' (torch.optim.Adam) or 'sgd' (torch.optim.SGD with `momentum`), with
  # L2 weight decay added to the gradient as torch does.
  train.optimizer = 'adam'
  train.momentum = 0.9
  train.learning_rate = learning_rate
  train.weight_decay = weight_decay
  # Multiply the learning rate by `lr_gamma` at these epochs (MultiStepLR).
  train.lr_milestones = lr_milestones
  train.lr_gamma = 0.1
  # Global gradient-norm clip (MMAction2's clip_grad max_norm=40).
  train.grad_clip_norm = 40.0
  # Scale the learning rate by batch_size / base_batch_size (linear scaling
  # rule), for a global batch other than MMAction2's.
  train.scale_lr = False
  train.base_batch_size = batch_size
  # Evaluate AR@AN on the validation split every this many epochs.
  train.eval_every_epochs = 1
  # Save a checkpoint every this many epochs (and after every evaluation and
  # the last epoch); a killed run resumes from the latest one.
  train.checkpoint_every_epochs = 1
  train.log_every_steps = 20
  return train


def configs_dir() -> str:
  """The folder of tal_jax's own config files: tal_jax/configs/ in an
  installed copy (pyproject.toml installs the checkout's configs/ there), the
  checkout's configs/ otherwise."""
  package = os.path.dirname(os.path.abspath(__file__))
  installed = os.path.join(package, 'configs')
  if os.path.isdir(installed):
    return installed
  return os.path.join(os.path.dirname(package), 'configs')


def resolve_config_spec(spec: str) -> str:
  """'path.py[:preset]' unchanged when the file exists; otherwise a config of
  tal_jax's own named 'bmn', 'bmn.py' or 'configs/bmn.py' (with any preset)
  becomes the path of its bundled copy, so that the README's commands work
  from any folder."""
  path, sep, arg = spec.partition(':')
  if os.path.isfile(path):
    return spec
  head, name = os.path.split(os.path.normpath(path))
  if head not in ('', 'configs'):
    return spec
  bundled = os.path.join(configs_dir(),
                         name if name.endswith('.py') else name + '.py')
  return bundled + sep + arg if os.path.isfile(bundled) else spec


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads 'path/to/config.py[:arg]' by calling its get_config(arg); a bare
  name ('bmn:tiny') loads tal_jax's own config (resolve_config_spec)."""
  path, _, arg = resolve_config_spec(spec).partition(':')
  if not os.path.isfile(path):
    raise errors.TalError(f'config file not found: {path}')
  if not path.endswith('.py'):
    raise errors.TalError(
        f'{path}: not a config file (a Python file such as configs/bmn.py, '
        "with an optional ':preset'); a workdir's config.json is read by "
        'tools.infer / tools.export through --workdir')
  module_spec = importlib.util.spec_from_file_location('_tal_config', path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except (SyntaxError, ImportError) as e:
    raise errors.TalError(f'{path}: cannot be loaded ({type(e).__name__}: '
                          f'{errors.one_line(str(e), 200)})') from None
  if not callable(getattr(module, 'get_config', None)):
    raise errors.TalError(f'{path}: defines no get_config()')
  try:
    return module.get_config(arg) if arg else module.get_config()
  except ValueError as e:  # an unknown preset
    msg = re.sub(r'^\S+\.py: ', '', errors.one_line(str(e)))
    raise errors.TalError(f'{path}: {msg}') from None


# Config fields that count something and must be >= 1 (when present).
POSITIVE_FIELDS = ('train.batch_size', 'train.videos_per_loss',
                   'train.eval_every_epochs', 'train.checkpoint_every_epochs',
                   'train.log_every_steps', 'test.batch_size')


def check_config(config: ml_collections.ConfigDict) -> None:
  """TalError naming a count field below 1 or a negative epoch count (they
  would end in a ZeroDivisionError or an empty run)."""
  leaves = dict(_leaf_items(config))
  for key in POSITIVE_FIELDS:
    if key in leaves and not leaves[key] >= 1:
      raise errors.TalError(f'config.{key}={leaves[key]!r} must be >= 1')
  epochs = leaves.get('train.num_epochs')
  if epochs is not None and not epochs >= 0:
    raise errors.TalError(f'config.train.num_epochs={epochs!r} must be >= 0')


def _leaf_items(config: ml_collections.ConfigDict, prefix: str = ''):
  for k, v in config.items():
    if isinstance(v, ml_collections.ConfigDict):
      yield from _leaf_items(v, f'{prefix}{k}.')
    else:
      yield prefix + k, v


def flat_keys(config: ml_collections.ConfigDict, prefix: str = '') -> list[str]:
  """Every leaf key as a dotted path: ['seed', 'data.feature_dir', ...]."""
  return [k for k, _ in _leaf_items(config, prefix)]


def check_override_keys(config: ml_collections.ConfigDict,
                        keys: list[str]) -> None:
  """TalError naming an unknown override key and the nearest valid ones."""
  valid = flat_keys(config)
  for key in keys:
    if key not in valid:
      near = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
      hint = f'; did you mean {", ".join(near)}?' if near else ''
      raise errors.TalError(f"unknown config key 'config.{key}'{hint}")


def explain_config_errors(argv: list[str]) -> list[str]:
  """Checks --config.* overrides before absl parses them (absl would raise a
  bare AttributeError); exits 2 with one line on an unknown key. Returns argv
  with the --config value resolved (resolve_config_spec)."""
  argv = list(argv)
  spec, keys = None, []
  for i, a in enumerate(argv):
    if a.startswith('--config='):
      spec = resolve_config_spec(a.split('=', 1)[1])
      argv[i] = '--config=' + spec
    elif a == '--config' and i + 1 < len(argv):
      spec = argv[i + 1] = resolve_config_spec(argv[i + 1])
    elif a.startswith('--config.'):
      keys.append(a[len('--config.'):].split('=', 1)[0])
  if spec is None:
    if any(a.startswith('--') for a in argv[1:]) and '--help' not in argv:
      print('error: --config is required, e.g. --config=configs/bmn.py',
            file=sys.stderr)
      sys.exit(2)
    return argv
  errors.run_cli(lambda: check_override_keys(load_config(spec), keys))
  return argv


def check_workdir(workdir: str) -> None:
  """TalError when the workdir cannot be created or written."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise errors.TalError(f'workdir {workdir} is a file, not a folder')
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise errors.TalError(f'workdir {workdir} cannot be created ({e.strerror})'
                          ) from None
  if not os.access(workdir, os.W_OK):
    raise errors.TalError(f'workdir {workdir} is not writable')


def save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes <workdir>/config.json (process 0)."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_index() == 0:
    errors.write_text(os.path.join(workdir, 'config.json'),
                      config.to_json_best_effort(indent=2) + '\n')
