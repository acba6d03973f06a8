"""The package's shape (issue 13): data flows one way, each model in one room.

Reads every module's imports with `ast` (deferred imports inside functions
included) and checks: no import cycle; the engine imports no localizer;
localizers never import each other; no model module at the package's top.
"""

import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), 'tal_jax')


def _modules() -> dict[str, str]:
  """{dotted module name: path} of every module of the package."""
  out = {}
  for folder, _, files in os.walk(ROOT):
    for name in files:
      if name.endswith('.py'):
        path = os.path.join(folder, name)
        rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3]
        dotted = rel.replace(os.sep, '.').removesuffix('.__init__')
        out[dotted] = path
  return out


def import_graph() -> dict[str, set[str]]:
  """{module: the tal_jax modules it imports} (`from a import b` counts as
  importing a.b when that is a module, else a)."""
  modules = _modules()
  graph = {}
  for name, path in modules.items():
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    deps = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        deps.update(a.name for a in node.names if a.name in modules)
      elif isinstance(node, ast.ImportFrom) and node.module in modules:
        for alias in node.names:
          full = f'{node.module}.{alias.name}'
          deps.add(full if full in modules else node.module)
    deps.discard('tal_jax')  # the package root only sets XLA flags
    graph[name] = deps - {name}
  return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components of more than one module (Tarjan)."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph.get(v, ()):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        out.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def test_cycle_finder_finds_a_planted_cycle():
  graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}
  assert cycles(graph) == [['a', 'b', 'c']]
  assert cycles({'a': {'b'}, 'b': set()}) == []


def test_no_import_cycle():
  assert cycles(import_graph()) == []


def test_engine_imports_no_localizer():
  bad = {m: sorted(d for d in deps if d.startswith('tal_jax.localizers'))
         for m, deps in import_graph().items()
         if m.startswith('tal_jax.engine')}
  assert not {m: d for m, d in bad.items() if d}


@pytest.mark.parametrize('name', ['bmn', 'bsn', 'ssn'])
def test_localizers_do_not_import_each_other(name):
  own = f'tal_jax.localizers.{name}'
  others = {m: sorted(d for d in deps if d.startswith('tal_jax.localizers.')
                      and not d.startswith(own))
            for m, deps in import_graph().items() if m.startswith(own)}
  assert not {m: d for m, d in others.items() if d}


def test_shared_layers_import_no_model():
  """ops/, nn/ and data/ sit below the localizers and the engine."""
  graph = import_graph()
  below = ('tal_jax.ops', 'tal_jax.nn', 'tal_jax.data', 'tal_jax.convert')
  above = ('tal_jax.localizers', 'tal_jax.engine', 'tal_jax.tools',
           'tal_jax.main')
  bad = {m: sorted(d for d in deps if d.startswith(above))
         for m, deps in graph.items() if m.startswith(below)}
  assert not {m: d for m, d in bad.items() if d}


def test_no_model_module_at_the_top():
  top = [f for f in os.listdir(ROOT) if f.endswith('.py')]
  assert not [f for f in top if f.startswith(('bmn', 'bsn', 'ssn', 'pgm'))]


def test_the_table_lists_every_localizer_folder():
  from tal_jax import localizers  # pylint: disable=g-import-not-at-top
  folders = sorted(d for d in os.listdir(os.path.join(ROOT, 'localizers'))
                   if os.path.isfile(os.path.join(ROOT, 'localizers', d,
                                                  'definition.py')))
  prefixes = sorted({name.split('_')[0] for name in localizers.MODELS})
  assert folders == prefixes == ['bmn', 'bsn', 'ssn']
