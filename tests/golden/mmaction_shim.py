"""Lets the golden-fixture scripts import MMAction2 1.2.0's localizers.

The 1.2.0 wheel lacks `models/localizers/drn`, so `import mmaction.models`
fails (MMACTION2.md). `bypass_models_init()` registers empty packages for
`mmaction.models`, `.localizers` and `.losses` pointing at the installed
folders, so their modules import without running the broken `__init__`s.
Run by the reference environment's python only, never by the tests.
"""

import os
import sys
import types


def bypass_models_init() -> None:
  import mmaction  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(mmaction.__file__)
  for name, sub in [('mmaction.models', 'models'),
                    ('mmaction.models.localizers', 'models/localizers'),
                    ('mmaction.models.losses', 'models/losses')]:
    module = types.ModuleType(name)
    module.__path__ = [os.path.join(root, sub)]
    sys.modules[name] = module
