"""The architecture holds: pure science, contracts that bite, no import cycles, lean NDVI runs.

* every ``eqi.science`` module, imported alone in a fresh interpreter, pulls in no raster / STAC /
  loader / vector library and no file-reading eqi module (``sys.modules`` of the child);
* the import-linter contracts of ``pyproject.toml`` fail on a planted violating import (in a copy
  of the package) and pass on the unmodified copy;
* no import cycle among eqi's modules, nor among the sibling subpackages of any eqi package,
  checked directly on grimp's import graph (grimp is import-linter's graph builder; function-local
  imports count, which is where cycles used to hide);
* ``eqi run --products ndvi`` on a small simulated archive never imports scikit-learn.
"""

from __future__ import annotations

import json
import os
import pkgutil
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import eqi.science

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

SCIENCE_MODULES = sorted(
    f"eqi.science.{m.name}" for m in pkgutil.iter_modules(eqi.science.__path__)
)
# third-party packages science must not reach, even indirectly (yaml is not listed: dask itself
# imports it to read its own configuration; what matters is that no eqi module reads YAML)
FORBIDDEN_EXTERNAL = (
    "rasterio", "pystac", "pystac_client", "odc", "geopandas", "pyogrio", "fiona", "rustac",
)  # fmt: skip
# eqi modules above science, or that read files (profiles, AOIs, catalogs, rasters)
FORBIDDEN_EQI = (
    "eqi.resources", "eqi.io", "eqi.config", "eqi.pipeline", "eqi.cli", "eqi.demo",
    "eqi.products", "eqi.sensors", "eqi.geo.regions",
)  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _offenders(modules: list[str]) -> list[str]:
    def bad(name: str) -> bool:
        if name.split(".")[0] in FORBIDDEN_EXTERNAL:
            return True
        return any(name == p or name.startswith(p + ".") for p in FORBIDDEN_EQI)

    return sorted(m for m in modules if bad(m))


# ------------------------------------------------------------------------------ pure science


def test_science_modules_are_found() -> None:
    assert {"eqi.science.indices", "eqi.science.rsei", "eqi.science.mask"} <= set(SCIENCE_MODULES)


@pytest.mark.parametrize("module", SCIENCE_MODULES)
def test_science_module_imports_no_io(module: str) -> None:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120
    )
    assert res.returncode == 0, res.stderr
    loaded = json.loads(res.stdout)
    assert module in loaded
    assert _offenders(loaded) == [], f"importing {module} loads {_offenders(loaded)}"


def test_offender_check_is_not_vacuous() -> None:
    """The same check flags a module that does load rasterio and profiles."""
    code = "import json, sys, eqi.io.cog, eqi.resources; print(json.dumps(sorted(sys.modules)))"
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120
    )
    assert res.returncode == 0, res.stderr
    found = _offenders(json.loads(res.stdout))
    assert "rasterio" in found and "eqi.resources" in found and "eqi.io.cog" in found


# ------------------------------------------------------------------------------ the contracts


def _contracts() -> list[dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return config["tool"]["importlinter"]["contracts"]


def _contract_name(predicate) -> str:
    (name,) = [c["name"] for c in _contracts() if predicate(c)]
    return name


def _copy_project(dest: Path) -> Path:
    """Copy what import-linter analyses (its root packages and pyproject.toml) into ``dest``."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in config["tool"]["importlinter"]["root_packages"]:
        shutil.copytree(REPO / package, dest / package, ignore=ignore)
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = _env()
    env["PYTHONPATH"] = str(root)  # the copy, not the repository
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, env=env,
        timeout=300,
    )  # fmt: skip


def _plant(root: Path, module_file: str, line: str) -> None:
    path = root / module_file
    text = path.read_text(encoding="utf-8")
    head, sep, rest = text.partition("from __future__ import annotations\n")
    assert sep, f"{module_file} has no 'from __future__' line to anchor the planted import"
    path.write_text(head + sep + f"{line}  # planted by test_layers\n" + rest, encoding="utf-8")


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    return _copy_project(tmp_path / "project")


def test_contracts_pass_on_an_unmodified_copy(project_copy: Path) -> None:
    res = _lint(project_copy)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout
    kept = res.stdout.count(" KEPT")
    assert kept == len(_contracts()) and kept >= 5, res.stdout


@pytest.mark.parametrize(
    ("module_file", "line", "which"),
    [
        (
            "eqi/science/indices.py",
            "import rasterio",
            lambda c: c["type"] == "forbidden" and "rasterio" in c.get("forbidden_modules", []),
        ),
        (
            "eqi/science/indices.py",
            "from eqi.io import cog",
            lambda c: c["type"] == "layers",
        ),
        (
            "eqi/science/indices.py",
            "from eqi.resources import load_profile",
            lambda c: c["type"] == "forbidden" and "eqi.resources" in c.get("forbidden_modules", []),
        ),
        (
            # a cycle inside one layer: indices <-> rsei (rsei already imports indices)
            "eqi/science/indices.py",
            "from eqi.science import rsei as _rsei",
            lambda c: c["type"] == "acyclic_siblings",
        ),
        (
            "eqi/io/load.py",
            "import workflows",
            lambda c: c["type"] == "forbidden" and "workflows" in c.get("forbidden_modules", []),
        ),
    ],
    ids=["science-rasterio", "science-io-layer", "science-resources", "cycle", "library-jobs"],
)
def test_contract_catches_a_violating_import(project_copy: Path, module_file, line, which) -> None:
    name = _contract_name(which)
    _plant(project_copy, module_file, line)
    res = _lint(project_copy)
    assert res.returncode != 0, res.stdout
    broken = [ln for ln in res.stdout.splitlines() if ln.rstrip().endswith("BROKEN")]
    # import-linter wraps long names over two lines: compare the joined text
    joined = " ".join(res.stdout.split())
    assert f"{' '.join(name.split())} BROKEN" in joined, res.stdout
    assert broken, res.stdout


# ------------------------------------------------------------------------------ no cycles


def _graph():
    import grimp

    return grimp.build_graph("eqi", cache_dir=None)


def _cycles(nodes: set[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_cycle_finder_finds_a_planted_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(set("abcd"), edges) == [["a", "b", "c"]]
    assert _cycles(set("ab"), {"a": {"b"}}) == []


def _is_ancestor(a: str, b: str) -> bool:
    return b.startswith(a + ".")


def test_no_import_cycle_between_eqi_modules() -> None:
    """Module level: no module reaches itself through other modules (imports of a package's own
    ``__init__`` by its submodules, and the reverse, are parent/child links, not cycles)."""
    graph = _graph()
    nodes = set(graph.modules)
    edges = {
        m: {
            t for t in graph.find_modules_directly_imported_by(m)
            if t in nodes and not _is_ancestor(t, m) and not _is_ancestor(m, t)
        }
        for m in nodes
    }  # fmt: skip
    assert _cycles(nodes, edges) == []


def test_no_import_cycle_between_sibling_subpackages() -> None:
    """Package level: within every eqi package, its children (modules and subpackages, each
    with all its descendants) import one another in one direction only."""
    graph = _graph()
    packages = sorted(m for m in graph.modules if graph.find_children(m))
    assert "eqi" in packages and "eqi.science" in packages
    found = {}
    for package in packages:
        children = graph.find_children(package)

        def owner(module: str, children=children, package=package) -> str | None:
            if not module.startswith(package + "."):
                return None
            head = package + "." + module[len(package) + 1 :].split(".")[0]
            return head if head in children else None

        edges: dict[str, set[str]] = {c: set() for c in children}
        for child in children:
            for module in {child, *graph.find_descendants(child)}:
                for target in graph.find_modules_directly_imported_by(module):
                    other = owner(target)
                    if other is not None and other != child:
                        edges[child].add(other)
        cycles = _cycles(set(children), edges)
        if cycles:
            found[package] = cycles
    assert found == {}


# ------------------------------------------------------------------------------ lean NDVI run

_WRAPPER = textwrap.dedent(
    """
    import atexit, json, sys, traceback

    first = {}

    class _Watch:
        # records where scikit-learn is first imported from (eqi frames only)

        def find_spec(self, name, path=None, target=None):
            if name == "sklearn" and not first:
                first["by"] = [
                    f"{f.filename.split('/eqi/')[-1]}:{f.lineno}"
                    for f in traceback.extract_stack()
                    if "/eqi/" in f.filename
                ]
            return None

    sys.meta_path.insert(0, _Watch())

    def _report():
        with open(sys.argv[1], "w") as fh:
            json.dump({"modules": sorted(sys.modules), "sklearn_from": first.get("by", [])}, fh)

    atexit.register(_report)
    from eqi.cli import main

    main(sys.argv[2:])
    """
)


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A simulated one-year archive over a small polygon, indexed: (archive.parquet, aoi.geojson)."""
    from shapely.geometry import Polygon, mapping

    from eqi.demo.simulate import simulate_archive
    from eqi.io.catalog.archive import index_archive

    root = tmp_path_factory.mktemp("tiny-archive")
    region = Polygon([(103.80, 30.69), (103.825, 30.70), (103.815, 30.72), (103.79, 30.71)])
    sim = simulate_archive(region, root / "archive", region_name="tiny", years=(2022,), margin_m=600.0)
    parquet = index_archive([sim.scenes_dir], root / "archive.parquet").out
    aoi = root / "tiny.geojson"
    aoi.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "tiny"}, "geometry": mapping(region)}
    ]}))  # fmt: skip
    return parquet, aoi


def test_ndvi_run_imports_no_scikit_learn(tiny_archive, tmp_path: Path) -> None:
    parquet, aoi = tiny_archive
    report = tmp_path / "modules.json"
    args = [
        "run", "--source", str(parquet), "--collections", "landsat-c2-l2", "--aoi", str(aoi),
        "--year", "2022", "--products", "ndvi", "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    res = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(report), *args],
        capture_output=True, text=True, env=_env(), timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert list((tmp_path / "out").rglob("ndvi.tif")), res.stdout
    seen = json.loads(report.read_text())
    sklearn = [m for m in seen["modules"] if m.split(".")[0] == "sklearn"]
    assert sklearn == [], (
        f"an NDVI run imported scikit-learn ({len(sklearn)} modules), first through "
        f"{' -> '.join(seen['sklearn_from'])}"
    )
    # a threaded run has no cluster: dask.distributed (about 10 MiB) is never imported; an archive
    # run searches no STAC API (pystac-client) and computes no zonal statistics (exactextract); no
    # module imports pyarrow (not a dependency: pandas would load it, 35 MiB, if it were installed)
    for unused in ("distributed", "pystac_client", "exactextract", "pyarrow"):
        assert [m for m in seen["modules"] if m.split(".")[0] == unused] == [], unused
    # scipy.ndimage (18 MiB) is left to the demo, impact and assessment stages
    assert "scipy.ndimage" not in seen["modules"]
