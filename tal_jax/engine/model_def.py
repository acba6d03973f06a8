"""What a localizer hands the engine: a `ModelDef` of plain functions.

The engine never looks a model up: `tal_jax.main` and the tools take the
definition from `tal_jax.localizers.MODELS` and pass it in (as scenic's
projects pass their model class to the trainer). Fields:
- build(config) -> flax module
- init_inputs(config) -> an example input batch [1, ...] for `module.init`
- train_arrays(videos, config) -> host arrays [N, ...]: 'inputs' and the labels,
  computed once per split (never per step)
- eval_arrays(videos, config) -> host arrays [N, ...]: 'inputs' and whatever
  `decode` needs
- loss(module, params, batch, rng, config) -> (scalar, metrics), pure, jittable;
  a model with variables besides 'params' (BN statistics) gets them as
  `loss(..., model_state=...)` and returns (loss, (metrics, new_model_state))
- forward(module, params, inputs, config) -> outputs, pure and jittable (the
  device part of batched inference; None for a model with its own `predict`)
- decode(outputs, batch, config) -> (proposals [B, K, 3] normalised (start, end,
  score), valid [B, K] bool), on the host (candidate decoding and soft-NMS)
- to_seconds(proposals, duration_frame, duration_second) -> [B, K, 3] seconds
- uses_features: whether the split's feature files are read (PEM reads PGM
  outputs instead)
- epoch_arrays(arrays, epoch, config) -> the arrays an epoch trains on, a
  function of (config.seed, epoch) only (SSN re-samples proposals each epoch)
- param_labels(params, config) -> 'trainable' / 'frozen' tree, or None (all
  trainable); frozen leaves are torch's requires_grad=False
- load_pretrained(variables, config) -> the variables with the configured
  pretrained weights in place (SSN's ImageNet backbone), or None
- predict(predictor, variables, videos, eval_arrays) -> {video: [K, 3]
  proposals in seconds} for the loop's validation, or None for
  `predict.predict_split` (SSN predicts video by video)
- test(predictor, variables, videos, workdir, quiet) -> metrics: what
  `--mode=test` does after the shared start-up (split loaded, variables
  restored), or None for proposals + AR@AN + results.json
- import_state_dict(state_dict, config, source) -> variables of an MMAction2
  checkpoint (numpy state dict of `convert.pth.load_pth`), or None
- serving: what export and `tools.infer` need of the raw outputs, or None
  (the model cannot be exported)
"""

import dataclasses
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from tal_jax.ops import segments


@dataclasses.dataclass(frozen=True)
class ServingInput:
  """One input of an exported function.

  Attributes:
    name: its name in metadata.json and the loader's keyword.
    shape: ints, or names of symbolic dimensions ('batch', 'proposals'): any
      size, the same size wherever a name recurs.
    dtype: numpy dtype name.
  """
  name: str
  shape: tuple[int | str, ...]
  dtype: str = 'float32'


@dataclasses.dataclass(frozen=True)
class Serving:
  """What serving needs to know of a model's raw outputs.

  Attributes:
    output_names: names of the forward's outputs, in order.
    curves: outputs that are [B, T] score curves (plotted over time).
    decode: (outputs by name, config.test) -> (proposals [B, K, 3] normalised
      (start, end, score), valid [B, K] bool); None for a model whose outputs
      are not proposals (TEM, whose curves feed PGM).
    input_name: the exported function's input (default `inputs`).
    inputs: config -> the exported function's inputs (ServingInput tuple),
      raising TalError for a configuration that cannot be exported; None:
      `input_name` [batch, T, D] float32 features.
    forward: (module, params, *inputs, config) -> outputs (an array or a
      tuple; None entries are left out), the exported computation; None:
      ModelDef.forward.
  """
  output_names: tuple[str, ...]
  curves: tuple[str, ...]
  decode: Callable[..., tuple[np.ndarray, np.ndarray]] | None
  input_name: str = 'features'
  inputs: Callable[[ml_collections.ConfigDict],
                   tuple[ServingInput, ...]] | None = None
  forward: Callable[..., Any] | None = None

  def input_specs(self, config: ml_collections.ConfigDict
                  ) -> tuple[ServingInput, ...]:
    """The exported function's inputs for `config`."""
    if self.inputs is not None:
      return tuple(self.inputs(config))
    m = config.model
    return (ServingInput(self.input_name,
                         ('batch', m.temporal_dim, m.feat_dim)),)


@dataclasses.dataclass(frozen=True)
class ModelDef:
  build: Callable[[ml_collections.ConfigDict], Any]
  init_inputs: Callable[[ml_collections.ConfigDict], np.ndarray]
  train_arrays: Callable[..., dict[str, np.ndarray]]
  eval_arrays: Callable[..., dict[str, np.ndarray]]
  loss: Callable[..., tuple[jax.Array, dict[str, jax.Array]]]
  forward: Callable[..., Any] | None = None
  decode: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None
  to_seconds: Callable[..., np.ndarray] = segments.to_seconds
  uses_features: bool = True
  epoch_arrays: Callable[..., dict[str, np.ndarray]] = (
      lambda arrays, epoch, config: arrays)
  param_labels: Callable[..., Any] | None = None
  load_pretrained: Callable[..., Any] | None = None
  predict: Callable[..., dict[str, np.ndarray]] | None = None
  test: Callable[..., dict[str, float]] | None = None
  import_state_dict: Callable[..., dict] | None = None
  serving: Serving | None = None


def feature_inputs(config: ml_collections.ConfigDict) -> np.ndarray:
  """[1, T, D] zeros: the example input of feature-based models."""
  return np.zeros((1, config.model.temporal_dim, config.model.feat_dim),
                  np.float32)


def feature_arrays(videos, config: ml_collections.ConfigDict
                   ) -> dict[str, np.ndarray]:
  """{'inputs': [N, T, D]}: a feature model's eval arrays."""
  del config
  return {'inputs': videos.features}


def apply_forward(module, params, inputs, config):
  """module.apply on the params alone (models without other collections)."""
  del config
  return module.apply({'params': params}, inputs)


def init_variables(module, model_def: ModelDef,
                   config: ml_collections.ConfigDict, rng: jax.Array):
  """The module's initial variables ({'params', ...})."""
  inputs = jax.numpy.asarray(model_def.init_inputs(config))
  return dict(module.init(rng, inputs))


def leaf_name(path) -> str:
  """'layer/kernel' of a pytree key path."""
  return '/'.join(str(getattr(k, 'key', k)) for k in path)


def module_param_shapes(module, inputs) -> dict[str, tuple[int, ...]]:
  """{'layer/kernel': shape} of `module`'s params, from an abstract init on
  the example `inputs`."""
  shapes = jax.eval_shape(module.init, jax.random.key(0), inputs)['params']
  return {leaf_name(path): tuple(x.shape)
          for path, x in jax.tree_util.tree_leaves_with_path(shapes)}
