"""Export a trained model for serving: jax.export + parameters + a loader.

A model folder holds:
- model.jax: the jitted forward (BMN, TEM: features [B, T, D] float32; PEM,
  SSN: their `Serving.inputs` -> the model's raw outputs) serialised with
  `jax.export`, named dimensions (B, proposals, ticks) symbolic, lowered for
  the platforms asked for (default cpu and cuda);
- params.npz: the parameters, one array per leaf, named 'layer/kernel'; they are
  arguments of the exported function, not constants baked into it;
- metadata.json: model name, T, D, inputs and outputs (names, shapes), the
  parameter order, jax version, calling convention, config.model / config.test;
- load_model.py: a documented loader that needs only jax and numpy.

Compatibility: the serialised StableHLO is covered by JAX's export guarantees
(backward: a JAX/jaxlib up to 6 months newer than the exporting one loads and
runs it; forward: only a few weeks, so do not export with a newer JAX than the
one that serves). The long-term format is the Orbax checkpoint plus tal_jax:
re-export from it after upgrading JAX.

What is model-specific (output names, the score curves the inference tool
plots, the host decode to proposals) is the `serving` field of the model's
ModelDef (`tal_jax.engine.model_def.Serving`).
"""

import json
import os
import shutil
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tal_jax import errors
from tal_jax.engine import model_def

FORMAT = 'tal_jax.export/1'
DEFAULT_PLATFORMS = ('cpu', 'cuda')


def flatten_params(params: Any) -> tuple[list[str], list[np.ndarray], Any]:
  """(names like 'x_1d_b_0/kernel', host arrays, treedef) of a parameter tree."""
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  names = ['/'.join(str(getattr(k, 'key', k)) for k in path)
           for path, _ in leaves]
  arrays = [np.asarray(jax.device_get(x)) for _, x in leaves]
  return names, arrays, treedef


def export_forward(forward: Callable[[Any, jax.Array], Any], treedef: Any,
                   arrays: Sequence[np.ndarray], temporal_dim: int,
                   feat_dim: int,
                   platforms: Sequence[str] = DEFAULT_PLATFORMS):
  """jax.export of `forward(params, features)` with params as a flat list.

  Args:
    forward: (params tree, features [B, T, D] float32) -> outputs tuple.
    treedef, arrays: the parameter tree's structure and leaves.
    temporal_dim, feat_dim: T and D.
    platforms: lowering platforms, e.g. ('cpu', 'cuda').

  Returns:
    jax.export.Exported taking (list of param arrays, features [b, T, D]).
  """
  features = model_def.ServingInput('features',
                                    ('batch', temporal_dim, feat_dim))
  return export_function(forward, treedef, arrays, (features,), platforms)


def export_function(forward: Callable[..., Any], treedef: Any,
                    arrays: Sequence[np.ndarray],
                    inputs: Sequence[model_def.ServingInput],
                    platforms: Sequence[str] = DEFAULT_PLATFORMS):
  """jax.export of `forward(params, *inputs)` with params as a flat list.

  Args:
    forward: (params tree, *inputs) -> an array or a tuple of outputs (None
      entries are left out).
    treedef, arrays: the parameter tree's structure and leaves.
    inputs: the inputs' names, shapes (symbolic dimensions by name) and
      dtypes.
    platforms: lowering platforms, e.g. ('cpu', 'cuda').

  Returns:
    jax.export.Exported taking (list of param arrays, *inputs).
  """
  def flat_forward(param_list, *args):
    out = forward(jax.tree_util.tree_unflatten(treedef, param_list), *args)
    out = out if isinstance(out, (tuple, list)) else (out,)
    return tuple(o for o in out if o is not None)

  symbols = list(dict.fromkeys(d for x in inputs for d in x.shape
                               if isinstance(d, str)))
  dims = dict(zip(symbols, jax.export.symbolic_shape(', '.join(symbols))
                  if symbols else ()))
  specs = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in arrays]
  args = [jax.ShapeDtypeStruct(tuple(dims.get(d, d) for d in x.shape),
                               jnp.dtype(x.dtype)) for x in inputs]
  return jax.export.export(jax.jit(flat_forward), platforms=tuple(platforms))(
      specs, *args)


def metadata(config, exported, names: list[str], where: str,
             out_names: tuple[str, ...],
             inputs: Sequence[model_def.ServingInput] | None = None) -> dict:
  """metadata.json contents (`out_names`: the model's output names; `inputs`:
  the exported function's, default features [batch, T, D])."""

  def shape(aval):
    return [d if isinstance(d, int) else str(d) for d in aval.shape]

  names_in = [x.name for x in inputs] if inputs else ['features']
  described = [{'name': n, 'shape': shape(a), 'dtype': str(a.dtype)}
               for n, a in zip(names_in,
                               exported.in_avals[-len(names_in):])]
  return {
      'format': FORMAT, 'model_name': config.model_name,
      'temporal_dim': config.model.get('temporal_dim'),
      'feat_dim': config.model.get('feat_dim'),
      'input': described[0], 'inputs': described,
      'outputs': [{'name': n, 'shape': shape(a), 'dtype': str(a.dtype)}
                  for n, a in zip(out_names, exported.out_avals)],
      'param_names': names, 'platforms': list(exported.platforms),
      'jax_version': jax.__version__,
      'calling_convention_version': exported.calling_convention_version,
      'checkpoint': where, 'model': config.model.to_dict(),
      'test': config.test.to_dict(),
  }


def check_out_dir(out_dir: str) -> None:
  """TalError unless `out_dir` is new, an empty folder or an earlier export
  (its metadata.json of this format): any other folder (a workdir, a home
  folder) is never replaced, nor a file."""
  if not os.path.exists(out_dir):
    errors.check_writable(out_dir, '--out')
    return
  if not os.path.isdir(out_dir):
    raise errors.TalError(f'--out {out_dir}: is a file, expected a model '
                          'folder to write')
  meta = os.path.join(out_dir, 'metadata.json')
  try:
    with open(meta) as f:
      earlier = json.load(f).get('format') == FORMAT
  except (OSError, ValueError, AttributeError):
    earlier = False
  if os.listdir(out_dir) and not earlier:
    raise errors.TalError(f'--out {out_dir}: a folder that is not an earlier '
                          'export (no metadata.json of tal_jax); it would be '
                          'replaced, give a new or empty folder')


def write_model_dir(out_dir: str, exported, names: list[str],
                    arrays: list[np.ndarray], meta: dict) -> None:
  """Writes the model folder; it appears complete or not at all. An
  existing `out_dir` must pass `check_out_dir`."""
  out_dir = os.path.abspath(out_dir)
  check_out_dir(out_dir)
  tmp = f'{out_dir}.tmp{os.getpid()}'
  shutil.rmtree(tmp, ignore_errors=True)
  try:
    os.makedirs(tmp)
    with open(os.path.join(tmp, 'model.jax'), 'wb') as f:
      f.write(exported.serialize())
    np.savez(os.path.join(tmp, 'params.npz'), **dict(zip(names, arrays)))
    with open(os.path.join(tmp, 'metadata.json'), 'w') as f:
      json.dump(meta, f, indent=2)
    with open(os.path.join(tmp, 'load_model.py'), 'w') as f:
      f.write(LOADER_SOURCE)
    if os.path.isdir(out_dir):
      shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
  except OSError as e:
    shutil.rmtree(tmp, ignore_errors=True)
    raise errors.TalError(f'{out_dir}: cannot write ({e.strerror})') from None
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


LOADER_SOURCE = r'''"""Loads a model exported by tal_jax; needs only jax and numpy.

    import sys
    sys.path.insert(0, 'model_dir')
    import load_model
    model = load_model.load()            # this file's folder (or load(path))
    outputs = model(features)            # BMN, BSN TEM: features [B, T, D]
    outputs['confidence_map'], outputs['start'], outputs['end']   # BMN

Inputs are positional in metadata['inputs'] order, or keywords by name; a
dimension given by name there ('batch', 'proposals', 'ticks') takes any size,
the same wherever the name recurs:
  BMN, BSN TEM  features [batch, T, D] float32
  BSN PEM       bsp_features [batch, proposals, 32] float32
  SSN           tick_features [ticks, D] float32 (one video's frames, one
                every test_interval), proposal_ticks [proposals, 4] int32,
                scale_factors [proposals, 2] float32

or, as a smoke test on zeros (or on one .npy per input):
  python model_dir/load_model.py [input.npy ...]

Files beside this one:
  model.jax      jax.export serialised forward (StableHLO), named dimensions
                 symbolic, lowered for the platforms in metadata.json
  params.npz     parameters, passed as arguments in metadata['param_names'] order
  metadata.json  model name, input/output names and shapes, jax version,
                 config.model and config.test (soft-NMS)

Outputs are the model's raw outputs, named in metadata['outputs']:
  BMN      confidence_map [B, T, T, 2], channel 0 regression and 1
           classification, cell [d, s] = proposal [s/T, (s+d+1)/T]; start
           [B, T]; end [B, T]. Decoding + soft-NMS: tal_jax.localizers.bmn.
  BSN TEM  tem_output [B, T, 3] (action, start, end), what PGM reads.
  BSN PEM  iou_score [B, proposals], before PEM's score x soft-NMS.
  SSN      activity [P, C + 1] (class 0 background), completeness [P, C],
           bbox_preds [P, C, 2] (normalised) of one video's proposals.

Compatibility: JAX guarantees that a serialised export keeps loading in a
jax/jaxlib up to 6 months newer than the one that exported it (forward, in an
older jax, only a few weeks). The long-term format is the Orbax checkpoint
plus tal_jax: re-export from it (python -m tal_jax.tools.export) after that.
"""

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
_YNN_OFF = '--xla_cpu_experimental_ynn_fusion_type='


def _guard_xla_flags(jax_version):
  """jaxlib 0.10.x on CPU miscompiles some fused matmul-reductions (XLA's YNN
  fusion); turn it off as tal_jax does. Only effective before JAX runs its
  first computation (import this module first)."""
  flags = os.environ.get('XLA_FLAGS', '')
  if (jax_version.startswith('0.10.') and
      'xla_cpu_experimental_ynn_fusion_type' not in flags):
    os.environ['XLA_FLAGS'] = (flags + ' ' + _YNN_OFF).strip()


def _as_input(spec, value):
  """`value` as a numpy array of spec['dtype']; ValueError naming the input
  for what would convert silently wrong: not numbers (text, objects,
  complex, bool), NaN or inf (also after the cast to float32), fractions or
  values beyond int32 for an integer input."""
  name, dtype = spec['name'], np.dtype(spec['dtype'])
  try:
    x = np.asarray(value)
  except ValueError as e:  # ragged nested lists
    raise ValueError(f'{name}: not an array ({e})') from None
  if x.dtype.kind not in 'fiu':
    raise ValueError(f'{name} must be {dtype} numbers, got dtype {x.dtype}')
  if dtype.kind == 'f':
    with np.errstate(over='ignore'):
      out = x.astype(dtype)
    bad = ~np.isfinite(out)
  else:
    info = np.iinfo(dtype)
    wide = x.astype(np.float64)
    bad = ~np.isfinite(wide) | (wide != np.round(wide)) | (
        wide < info.min) | (wide > info.max)
    out = x.astype(dtype) if not bad.any() else None
  if bad.any():
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    kind = ('finite' if dtype.kind == 'f' else
            f'whole numbers within {dtype}')
    raise ValueError(f'{name} must be {kind}, got {x[where].item()!r} at '
                     f'index {list(where)}')
  return out


def _check_shape(spec, x, sizes):
  """ValueError unless x fits spec['shape'] (a named size >= 1); records
  the named sizes."""
  want = spec['shape']
  ok = x.ndim == len(want)
  clash = ''
  for d, n in zip(want, x.shape) if ok else ():
    if isinstance(d, str):
      if n < 1:
        ok, clash = False, f' ({d} must be >= 1)'
      elif sizes.setdefault(d, n) != n:
        ok, clash = False, f' ({d} is {sizes[d]} in an earlier input)'
    elif d != n:
      ok = False
  if not ok:
    dims = ', '.join(d[0].upper() if isinstance(d, str) else str(d)
                     for d in want)
    raise ValueError(f"{spec['name']} must be [{dims}], got {x.shape}{clash}")


class ExportedModel:
  """model(*inputs) -> {output name: numpy array}."""

  def __init__(self, model_dir=HERE):
    import jax  # pylint: disable=g-import-not-at-top
    from jax import export  # pylint: disable=g-import-not-at-top
    with open(os.path.join(model_dir, 'metadata.json')) as f:
      self.metadata = json.load(f)
    with open(os.path.join(model_dir, 'model.jax'), 'rb') as f:
      self.exported = export.deserialize(bytearray(f.read()))
    with np.load(os.path.join(model_dir, 'params.npz')) as z:
      self.params = [jax.device_put(z[n]) for n in self.metadata['param_names']]
    self.inputs = self.metadata['inputs']
    self.output_names = [o['name'] for o in self.metadata['outputs']]
    self._call = jax.jit(self.exported.call)

  def __call__(self, *args, **kwargs):
    names = [x['name'] for x in self.inputs]
    values = dict(zip(names, args))
    if (len(args) > len(names) or set(kwargs) - set(names) or
        set(values) & set(kwargs)):
      raise TypeError(f'expected inputs {names}, got {len(args)} positional '
                      f'and {sorted(kwargs)}')
    values.update(kwargs)
    missing = [n for n in names if n not in values]
    if missing:
      raise TypeError(f'missing inputs {missing} (expected {names})')
    arrays, sizes = [], {}
    for spec in self.inputs:
      x = _as_input(spec, values[spec['name']])
      _check_shape(spec, x, sizes)
      arrays.append(x)
    outputs = self._call(self.params, *arrays)
    return {n: np.asarray(o) for n, o in zip(self.output_names, outputs)}


def load(model_dir=HERE):
  """The exported model in `model_dir` (default: this file's folder)."""
  import jax  # pylint: disable=g-import-not-at-top
  _guard_xla_flags(jax.__version__)
  return ExportedModel(model_dir)


if __name__ == '__main__':
  model = load()
  if len(sys.argv) > 1:
    xs = [np.load(p) for p in sys.argv[1:]]
    xs = [x[None] if (x.ndim + 1 == len(s['shape']) and
                      s['shape'][0] == 'batch') else x
          for x, s in zip(xs, model.inputs)]
  else:
    xs = [np.zeros([2 if isinstance(d, str) else d for d in s['shape']],
                   s['dtype']) for s in model.inputs]
  for name, value in model(*xs).items():
    print(name, value.shape, value.dtype)
'''
