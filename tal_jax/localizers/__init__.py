"""The table of localizers: the only place that lists the models.

Each entry is the `tal_jax.engine.model_def.ModelDef` its folder builds;
`tal_jax.main` and the tools pick one here and hand it to the engine.
Adding a localizer: a folder beside bmn/ that builds its ModelDef, and one
line below.
"""

import ml_collections

from tal_jax import errors
from tal_jax.engine.model_def import ModelDef
from tal_jax.localizers.bmn import definition as bmn
from tal_jax.localizers.bsn import definition as bsn
from tal_jax.localizers.ssn import definition as ssn

MODELS = {
    'bmn': bmn.DEFINITION,
    'bsn_tem': bsn.TEM_DEFINITION,
    'bsn_pem': bsn.PEM_DEFINITION,
    'ssn': ssn.DEFINITION,
}


def get(config: ml_collections.ConfigDict) -> ModelDef:
  """The definition of config.model_name (TalError naming the known ones)."""
  if config.model_name not in MODELS:
    raise errors.TalError(f"config.model_name '{config.model_name}' is not one "
                          f'of {sorted(MODELS)}')
  return MODELS[config.model_name]
