"""The MMAction2 reference environments of the benchmarks, through one variable.

TAL_JAX_REFENV names a folder that holds the reference virtual environments
(recipe: experiments/README.md):

  $TAL_JAX_REFENV/mmaction2-1.2.0/   BMN, BSN, the metrics (torch 2.13.0)
  $TAL_JAX_REFENV/mmaction2-0.24.1/  SSN, rawframes, torchvision's ResNet-50
                                     (torch 2.14.1 + torchvision 0.29.1)

They are never a dependency of tal_jax or of its tests.
"""

import os
import sys

VARIABLE = 'TAL_JAX_REFENV'
MMACTION2_120 = 'mmaction2-1.2.0'
MMACTION2_0241 = 'mmaction2-0.24.1'


def python(env: str) -> str:
  """The interpreter of reference environment `env` (MMACTION2_120 or
  MMACTION2_0241); exits 2 with one line when TAL_JAX_REFENV is unset or has
  no such environment."""
  root = os.environ.get(VARIABLE)
  if not root:
    print(f'error: {VARIABLE} is not set: it names the folder of the MMAction2 '
          'reference environments (see experiments/README.md)', file=sys.stderr)
    sys.exit(2)
  path = os.path.join(root, env, 'bin', 'python')
  if not os.path.isfile(path):
    print(f'error: {path} not found: {VARIABLE}={root} has no {env}/ '
          'environment (see experiments/README.md)', file=sys.stderr)
    sys.exit(2)
  return path
