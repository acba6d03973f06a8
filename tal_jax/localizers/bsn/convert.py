"""BSN's checkpoint import (MMAction2 1.2.0 TEM and PEM state dicts)."""

from typing import Mapping

import numpy as np

from tal_jax.engine import model_def
from tal_jax.errors import TalError
from tal_jax.localizers.bsn import model as bsn


def bsn_params_from_state_dict(state_dict: Mapping[str, np.ndarray], config,
                               source: str = 'state dict') -> dict:
  """Maps an MMAction2 TEM or PEM state dict onto tal_jax params (float32).

  Raises:
    TalError: missing or unexpected keys, or a shape the config rejects
      (named in torch's terms, e.g. 'conv1.weight').
  """
  params = bsn.params_from_state_dict(state_dict)
  got = {f'{layer}/{kind}': np.shape(v) for layer, p in params.items()
         for kind, v in p.items()}
  want = model_def.module_param_shapes(*bsn.module_and_inputs(config))
  torch_name = lambda k: k.replace('/kernel', '.weight').replace('/', '.')
  missing = sorted(torch_name(k) for k in set(want) - set(got))
  unexpected = sorted(torch_name(k) for k in set(got) - set(want))
  if missing or unexpected:
    raise TalError(f'checkpoint {source}: missing keys {missing}, unexpected '
                   f'keys {unexpected} for {config.model_name}')
  for key in sorted(want):
    if got[key] != want[key]:
      raise TalError(f'checkpoint {source}: {torch_name(key)} gives shape '
                     f'{got[key]} but config expects {want[key]}')
  return params


def import_state_dict(state_dict: Mapping[str, np.ndarray], config,
                      source: str) -> dict:
  """ModelDef.import_state_dict: {'params': ...} of an MMAction2 TEM / PEM."""
  return {'params': bsn_params_from_state_dict(state_dict, config, source)}
