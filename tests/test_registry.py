"""Registries: built-ins, did-you-mean, duplicates, entry points and plugin files."""
import pickle
import textwrap

import pytest

import bench
import bench.registry as registry_module
from bench.cli import main
from bench.errors import DefinitionError, NameCollisionError, UnknownNameError
from bench.registry import METHODS, TASKS, Registry
from fake_dists import GROUP, forget_modules, install, method_source

EXPECTED_METHODS = {"noop", "retrain", "finetune", "ga", "gdga", "oracle-matching", "oracle-matching-retain"}


def test_public_api():
    for name in ("Method", "Task", "register_method", "register_task"):
        assert hasattr(bench, name)


def test_builtins_are_registered():
    assert EXPECTED_METHODS <= set(METHODS.names())
    assert "linear-gaussian" in TASKS.names()


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownNameError, match=r"(?s)unknown method .gdgaa.*Did you mean: gdga"):
        METHODS.get("gdgaa")


def test_duplicate_names_are_refused():
    registry = Registry("method", bench.Method, "methods", "bench.test-none")
    registry._loaded = True

    class A(bench.Method):
        """A."""
        name = "dup"

        def __init__(self, *, steps: int = 0):
            self.steps = steps

        def unlearn(self, model, ctx):
            return model

    class B(A):
        """B."""

    registry.register(A)
    registry.register(A)  # the same class twice is harmless
    with pytest.raises(ValueError, match="claimed twice.*A from.*B from"):
        registry.register(B)


def test_register_requires_a_name_and_subclass():
    registry = Registry("method", bench.Method, "methods", "bench.test-none")
    with pytest.raises(TypeError, match="subclasses"):
        registry.register(int)


def test_plugin_file_registers_a_method_and_cli_runs_it(tmp_path, capsys):
    from bench.cli import main

    plugin = tmp_path / "my_method.py"
    plugin.write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from bench import Method, register_method
        from bench.optim import clone

        @register_method
        @dataclass(kw_only=True)
        class Identity(Method):
            """Returns a copy of the original (a plugin example)."""
            name = "plugin-identity"
            steps: int = 0

            def unlearn(self, model, ctx):
                return clone(model)
    '''))
    code = main(["--plugin", str(plugin), "run", "--method", "plugin-identity", "--task", "linear-gaussian",
                 "--task-arg", "n=20", "--task-arg", "d=10", "--out", str(tmp_path / "out")])
    assert code == 0
    assert "plugin-identity" in capsys.readouterr().out
    METHODS._classes.pop("plugin-identity")


# ------------------------------------------------------------------------------ installed plugins (entry points)

@pytest.fixture
def registry(monkeypatch):
    """A method registry holding every built-in that loads entry points of the tests' own group."""
    METHODS.names()
    reg = Registry("method", bench.Method, "methods", GROUP)
    reg._classes, reg._sources = dict(METHODS._classes), dict(METHODS._sources)
    monkeypatch.setattr(registry_module, "_WARNED", set())
    return reg


@pytest.fixture
def global_methods(monkeypatch):
    """The global registry (what the CLI uses) reloading entry points of the tests' group; restored after."""
    METHODS.names()
    for attr, value in (("_classes", dict(METHODS._classes)), ("_sources", dict(METHODS._sources)),
                        ("_conflicts", {}), ("group", GROUP), ("_loaded", False)):
        monkeypatch.setattr(METHODS, attr, value)
    monkeypatch.setattr(registry_module, "_WARNED", set())
    return METHODS


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path for fake distributions; their modules are forgotten afterwards."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    names: list[str] = []
    yield folder, names
    forget_modules(*names)


def _install(site, dist, version, entries, modules):
    folder, names = site
    names.extend(modules)
    install(folder, dist, version, entries, modules)


def _warning_lines(err: str, needle: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:") and needle in line]


def test_entry_point_key_is_the_registered_name_and_a_disagreeing_name_warns_once(registry, site, capsys):
    _install(site, "ssd-pkg", "1.2", ["ssd-dampening = ssdpkg_key.mod:SSD", "unnamed = ssdpkg_key.mod:Unnamed"],
             {"ssdpkg_key.__init__": "", "ssdpkg_key.mod": method_source("SSD", "ssd") + method_source("Unnamed")})
    names = registry.names()
    registry.names()
    cls = registry.get("ssd-dampening")
    assert cls.__qualname__ == "SSD" and cls.name == "ssd-dampening"  # the key wins, also in records
    assert registry.get("unnamed").name == "unnamed"
    assert registry.get("ssd").__module__ == "methods.ssd"  # the built-in keeps its own name
    assert "ssd-dampening" in names and "unnamed" in names
    warned = _warning_lines(capsys.readouterr().err, "says name")
    assert len(warned) == 1, warned
    assert ("ssdpkg_key.mod.SSD says name = 'ssd'" in warned[0] and "ssd-pkg==1.2" in warned[0]
            and "ssd-dampening = ssdpkg_key.mod:SSD" in warned[0])
    assert registry.source("ssd-dampening").short == "plugin ssd-pkg==1.2"
    assert registry.distributions_of(cls) == ("ssd-pkg==1.2",)


def test_registered_name_survives_pickling_into_a_fresh_worker(registry, site):
    _install(site, "rename-pkg", "1.0", ["renamed-key = renamepkg:Renamed"],
             {"renamepkg": method_source("Renamed", "own")})
    cls = registry.get("renamed-key")
    blob = pickle.dumps(cls(steps=0))
    cls.name = "own"  # what a worker process sees after importing the module afresh
    try:
        assert pickle.loads(blob).name == "renamed-key"
    finally:
        cls.name = "renamed-key"


def test_decorated_plugin_class_is_registered_under_its_key_only(global_methods, site):
    source = method_source("Deco", "deco-own").replace("@dataclass", "@register_method\n@dataclass")
    source = source.replace("from bench import Method", "from bench import Method, register_method")
    _install(site, "deco-pkg", "3.0", ["deco-key = decopkg:Deco"], {"decopkg": source})
    names = global_methods.names()
    assert "deco-key" in names and "deco-own" not in names
    assert global_methods.source("deco-key").where == "deco-pkg==3.0"


BROKEN = {
    "import-error": ("brokenpkg.imp", "import no_such_module_anywhere\n", "ModuleNotFoundError"),
    "syntax-error": ("brokenpkg.syn", "def oops(:\n    pass\n", "SyntaxError"),
    "raises": ("brokenpkg.boom", "raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
    "not-a-class": ("brokenpkg.func", "def Plugin():\n    pass\n", "only Method subclasses"),
    "no-steps": ("brokenpkg.nosteps", method_source().replace("steps: Steps = 0", "lr: float = 0.1"),
                 "has no 'steps' hyperparameter"),
    "no-dataclass": ("brokenpkg.nodc", method_source().replace("@dataclass(kw_only=True)\n", ""),
                     "is not a dataclass and defines no __init__"),
    "Not_A_Slug": ("brokenpkg.good2", method_source(), "is not a slug"),
}


def test_each_broken_plugin_costs_one_warning_line_and_everything_else_works(global_methods, site, capsys):
    modules = {"brokenpkg.__init__": "", "brokenpkg.good": method_source("Good"), "brokenpkg.good2": method_source()}
    entries = ["fine = brokenpkg.good:Good"]
    for key, (module, source, _) in BROKEN.items():
        modules.setdefault(module, source)
        entries.append(f"{key} = {module}:Plugin")
    _install(site, "broken-plugins", "0.1", entries, modules)
    assert main(["list"]) == 0
    assert main(["list"]) == 0  # the second command in one process says nothing more
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    for key, (module, _, reason) in BROKEN.items():
        lines = _warning_lines(err, f"entry point '{key} = {module}:Plugin'")
        assert len(lines) == 1, (key, err)
        assert "broken-plugins==0.1" in lines[0] and reason in lines[0], lines[0]
        assert f"  {key} " not in out
    assert len([line for line in err.splitlines() if line.startswith("warning:")]) == len(BROKEN)
    assert "  fine " in out and "  gdga " in out
    assert "fine" in global_methods.names()


def test_broken_plugin_does_not_stop_a_run_of_another_method(global_methods, site, capsys, tmp_path):
    _install(site, "half-broken", "1.0", ["bad = halfbroken_a:Plugin", "good = halfbroken_b:Good"],
             {"halfbroken_a": "raise ImportError('missing dependency xyz')\n", "halfbroken_b": method_source("Good")})
    code = main(["run", "--method", "good", "--task", "linear-gaussian", "--task-arg", "n=20", "--task-arg", "d=10",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert len(_warning_lines(err, "half-broken==1.0")) == 1 and "missing dependency xyz" in err
    assert list((tmp_path / "out").rglob("good-*.json"))


def test_two_distributions_claiming_one_name_is_an_error_naming_both(registry, site, capsys):
    _install(site, "dist-a", "1.0", ["dup-name = dupa:Plugin", "only-a = dupa:Other"],
             {"dupa": method_source() + method_source("Other")})
    _install(site, "dist-b", "2.0", ["dup-name = dupb:Plugin"], {"dupb": method_source()})
    assert "dup-name" not in registry.names() and "only-a" in registry.names()
    with pytest.raises(NameCollisionError) as caught:
        registry.get("dup-name")
    message = str(caught.value)
    for part in ("distribution dist-a==1.0", "dup-name = dupa:Plugin", "distribution dist-b==2.0",
                 "dup-name = dupb:Plugin"):
        assert part in message
    assert [s.where for s in registry.conflicts()["dup-name"]] == ["dist-a==1.0", "dist-b==2.0"]
    assert len(_warning_lines(capsys.readouterr().err, "'dup-name' is claimed by")) == 1


def test_a_plugin_claiming_a_builtin_name_makes_it_an_error_naming_both(global_methods, site, capsys, tmp_path):
    _install(site, "squatter", "0.3", ["gdga = squat:Plugin"], {"squat": method_source()})
    code = main(["run", "--method", "gdga", "--task", "linear-gaussian", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    error = next(line for line in err.splitlines() if line.startswith("error:"))
    for part in ("built-in methods.gradient", "distribution squatter==0.3", "gdga = squat:Plugin"):
        assert part in error
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "gdga" in out and "UNUSABLE" in out and "  finetune " in out


def test_a_plugin_file_taking_a_builtin_name_is_refused_naming_both(global_methods, tmp_path, capsys):
    plugin = tmp_path / "takes_gdga.py"
    plugin.write_text(method_source("Mine", "gdga").replace("from bench import Method",
                                                             "from bench import Method, register_method")
                      .replace("@dataclass", "@register_method\n@dataclass"))
    assert main(["--plugin", str(plugin), "list"]) == 2
    err = capsys.readouterr().err
    assert "claimed twice" in err and "built-in methods.gradient" in err and f"plugin file {plugin}" in err


def test_list_shows_where_each_name_came_from(global_methods, site, tmp_path, capsys):
    _install(site, "origin-pkg", "4.5", ["from-dist = originpkg:Plugin"], {"originpkg": method_source()})
    plugin = tmp_path / "local_origin.py"
    plugin.write_text(method_source("Local", "from-file").replace("from bench import Method",
                                                                  "from bench import Method, register_method")
                      .replace("@dataclass", "@register_method\n@dataclass"))
    assert main(["--plugin", str(plugin), "list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()

    def origin(name):
        return lines[next(i for i, line in enumerate(lines) if line.startswith(f"  {name} ")) + 1].strip()
    assert origin("gdga") == "from built-in methods.gradient"
    assert origin("from-dist") == "from plugin origin-pkg==4.5"
    assert origin("from-file") == f"from plugin file {plugin.resolve()}"
    assert origin("linear-gaussian") == "from built-in tasks.linear_gaussian"
    METHODS._classes.pop("from-file", None)


# ------------------------------------------------------------------------------ method classes defined wrongly

DEFINITIONS = {
    "no steps": ('''
        @dataclass(kw_only=True)
        class M(Method):
            name = "def-nosteps"
            lr: float = 0.1
        ''', "M has no 'steps' hyperparameter", "steps: Steps = 100"),
    "no dataclass": ('''
        class M(Method):
            name = "def-nodc"
            steps: int = 3
        ''', "M is not a dataclass and defines no __init__", "@dataclass(kw_only=True)"),
    "dataclass subclass without its own decorator": ('''
        @dataclass(kw_only=True)
        class Base(Method):
            name = "def-base"
            steps: int = 3

        class M(Base):
            name = "def-sub"
            extra: float = 0.5
        ''', "M declares 'extra' with a default in M, but M.__init__ does not take 'extra'",
        "@dataclass(kw_only=True)"),
    "**kwargs": ('''
        class M(Method):
            name = "def-kwargs"
            def __init__(self, **options):
                self.steps = options.get("steps", 3)
        ''', "M.__init__ takes **options", "keyword-only argument with a default"),
}


@pytest.mark.parametrize("case", list(DEFINITIONS), ids=str)
def test_a_badly_defined_method_is_refused_at_registration_saying_how_to_fix_it(case):
    body, problem, fix = DEFINITIONS[case]
    namespace: dict = {}
    exec("from dataclasses import dataclass\nfrom bench import Method\n" + textwrap.dedent(body)
         + "M.unlearn = lambda self, model, ctx: model\nM.__abstractmethods__ = frozenset()\n", namespace)
    cls = namespace["M"]
    reg = Registry("method", bench.Method, "methods", "bench.test-none")
    reg._loaded = True
    with pytest.raises(DefinitionError) as caught:
        reg.register(cls)
    assert problem in str(caught.value) and fix in str(caught.value)
    from bench.runner import RunSpec, run
    from tasks.linear_gaussian import LinearGaussian
    with pytest.raises(DefinitionError) as caught:  # an unregistered class, straight to the runner
        run(RunSpec(method=object.__new__(cls), task=LinearGaussian(n=20, d=10)))
    assert problem in str(caught.value)


def test_a_badly_defined_plugin_file_exits_2_with_the_fix(tmp_path, capsys):
    plugin = tmp_path / "nosteps_plugin.py"
    plugin.write_text(method_source("NoSteps", "nosteps-plugin").replace("steps: Steps = 0", "lr: float = 0.1")
                      .replace("from bench import Method", "from bench import Method, register_method")
                      .replace("@dataclass", "@register_method\n@dataclass"))
    assert main(["--plugin", str(plugin), "list"]) == 2
    err = capsys.readouterr().err
    assert "NoSteps has no 'steps' hyperparameter" in err and "steps: Steps = 100" in err and "Traceback" not in err
