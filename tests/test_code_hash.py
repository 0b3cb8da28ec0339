"""The unlearned-model cache key covers the method's code: its module, the local modules it imports
(transitively, relative or absolute, also inside functions), and the distribution that ships it."""
import importlib
import textwrap

import pytest

from bench.code_hash import code_fingerprint, code_hash, local_modules
from bench.registry import METHODS, load_plugin
from bench.units import method_code_hash
from fake_dists import forget_modules, method_source

PACKAGE = {
    "__init__.py": "",
    "method.py": method_source("Shrink", "hash-shrink").replace(
        "from bench.optim import clone",
        "from bench.optim import clone\nfrom .helpers import scale\nimport hashpkg.lazy_user"),
    "helpers.py": "from hashpkg import deep\n\ndef scale(x):\n    return deep.FACTOR * x\n",
    "deep.py": "FACTOR = 0.5\n",
    "lazy_user.py": "def later():\n    from hashpkg.lazy import thing\n    return thing\n",
    "lazy.py": "thing = 1\n",
    "unrelated.py": "VALUE = 1\n",
}


@pytest.fixture
def package(tmp_path, monkeypatch):
    root = tmp_path / "hashpkg"
    root.mkdir()
    for name, source in PACKAGE.items():
        (root / name).write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    module = importlib.import_module("hashpkg.method")
    yield root, module.Shrink
    forget_modules("hashpkg")


def _edit(path, text="\n# edited: a different size, so the memo cannot mistake it for the old file\n"):
    path.write_text(path.read_text() + text)


def test_the_key_covers_every_local_module_the_method_imports(package):
    root, cls = package
    assert set(local_modules(cls.__module__)) == {"hashpkg.method", "hashpkg.helpers", "hashpkg.deep",
                                                  "hashpkg.lazy_user", "hashpkg.lazy"}
    before = code_hash(cls)
    _edit(root / "unrelated.py")
    _edit(root / "__init__.py")  # a parent package is not imported *from*: it does not enter
    assert code_hash(cls) == before
    for helper in ("helpers.py", "deep.py", "lazy.py", "method.py"):
        previous = code_hash(cls)
        _edit(root / helper)
        assert code_hash(cls) != previous, helper


def test_the_key_covers_the_distribution_version(package):
    _, cls = package
    assert code_hash(cls, ("hash-pkg==1.0",)) != code_hash(cls, ("hash-pkg==1.1",)) != code_hash(cls)
    assert code_fingerprint(cls, ("b==1", "a==2")).distributions == ("a==2", "b==1")


def test_builtin_ssd_is_keyed_on_the_toolkit_too():
    ssd = METHODS.get("ssd")
    assert set(local_modules(ssd.__module__)) == {"methods.ssd", "methods.toolkit"}
    assert set(local_modules(METHODS.get("gdga").__module__)) == {"methods.gradient"}  # bench/ is the framework
    assert method_code_hash(ssd()) == code_hash(ssd)


def test_a_plugin_file_is_keyed_on_its_sibling_helpers_only(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "plugin_helper.py").write_text("import numpy\nimport json\nFACTOR = 2\n")
    (tmp_path / "plugin_other.py").write_text("X = 1\n")
    plugin = tmp_path / "hash_plugin.py"
    plugin.write_text(textwrap.dedent(method_source("FilePlugin", "hash-file-plugin"))
                      .replace("from bench import Method",
                               "from bench import Method, register_method\nimport plugin_helper")
                      .replace("@dataclass", "@register_method\n@dataclass"))
    try:
        load_plugin(plugin)
        cls = METHODS.get("hash-file-plugin")
        assert set(local_modules(cls.__module__)) == {cls.__module__, "plugin_helper"}  # not numpy, json or bench
        before = code_hash(cls)
        _edit(tmp_path / "plugin_other.py")
        assert code_hash(cls) == before
        _edit(tmp_path / "plugin_helper.py")
        assert code_hash(cls) != before
    finally:
        METHODS._classes.pop("hash-file-plugin", None)
        forget_modules("plugin_helper", "bench_plugin_hash_plugin")
