"""The built artefacts: the sdist carries lua/, the wheel carries it as sessionstore/_lua/,
and an installed wheel works from a fresh venv with its scripts read from site-packages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = [pytest.mark.packaging, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
LUA_FILES = sorted(p.name for p in (REPO / "lua").glob("*.lua"))
INSTALL_TIMEOUT = 300

# Runs inside the fresh venv, against the public API only; prints what the test checks.
CHECK_SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    import sessionstore
    import sessionstore.scripts
    from sessionstore import Config, Device, SessionStore

    assert Config  # part of the public API
    store = SessionStore.from_url(sys.argv[1])
    s = store.create("user-1", device=Device(id="phone-1", name="Pixel"), data={"k": 1})
    assert s.data == {"k": 1}, s.data
    assert [x.session_id for x in store.sessions("user-1")] == [s.session_id]
    assert store.revoke("user-1", s.session_id) is True
    assert store.sessions("user-1") == []
    store.close()
    print(json.dumps({
        "module": sessionstore.__file__,
        "script_source_dir": sessionstore.scripts.SCRIPT_SOURCE_DIR,
    }))
    """
)


def _clean_env() -> dict[str, str]:
    """The environment minus anything that would point Python back at this repo or venv."""
    env = dict(os.environ)
    for key in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(key, None)
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PYTHONNOUSERSITE="1")
    return env


def _run(args: list[str], *, cwd: Path, timeout: float = INSTALL_TIMEOUT) -> str:
    result = subprocess.run(
        args, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def _only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {folder}, found {found}"
    return found[0]


# Session-scoped: the engine rows interleave this module's tests with other modules', and
# a module-scoped build would be redone (and a venv installed again) for every row.
@pytest.fixture(scope="session")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist, and the wheel built from that sdist (as pip would from PyPI)."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], cwd=out)
    return out


@pytest.fixture(scope="session")
def installed_venv(dist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel (and its dependencies, from the index or pip's cache)."""
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", str(venv)], cwd=venv)
    wheel = _only(dist_dir, "sessionstore-*.whl")
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], cwd=venv)
    return venv


def test_lua_scripts_exist_in_the_repo() -> None:
    assert LUA_FILES, "lua/ holds no *.lua file"


def test_sdist_carries_lua(dist_dir: Path) -> None:
    sdist = _only(dist_dir, "sessionstore-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    root = sdist.name.removesuffix(".tar.gz")
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith(f"{root}/lua/")) == LUA_FILES
    assert f"{root}/sessionstore/py.typed" in names
    assert not [n for n in names if "/.venv/" in n], "the sdist packs the venv"


def test_wheel_carries_lua_inside_the_package(dist_dir: Path) -> None:
    wheel = _only(dist_dir, "sessionstore-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    packaged = sorted(n.removeprefix("sessionstore/_lua/") for n in names if "/_lua/" in n)
    assert packaged == LUA_FILES
    assert "sessionstore/py.typed" in names
    assert "sessionstore/testing/__init__.py" in names
    name, version = wheel.name.split("-")[:2]
    top_level = {n.split("/", 1)[0] for n in names}
    assert top_level == {"sessionstore", f"{name}-{version}.dist-info"}, top_level


def test_installed_wheel_works_and_reads_lua_from_site_packages(
    installed_venv: Path, redis_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "check_install.py"
    script.write_text(CHECK_SCRIPT)
    # cwd is the temp dir, not the repo: nothing but the venv can provide `sessionstore`.
    output = _run(
        [str(installed_venv / "bin" / "python"), str(script), redis_url], cwd=tmp_path, timeout=60
    )
    report = json.loads(output.strip().splitlines()[-1])
    venv = installed_venv.resolve()
    assert Path(report["module"]).resolve().is_relative_to(venv), report
    source_dir = Path(report["script_source_dir"]).resolve()
    assert source_dir.is_relative_to(venv), report
    assert source_dir.name == "_lua"
    assert sorted(p.name for p in source_dir.glob("*.lua")) == LUA_FILES


def test_editable_install_reads_lua_from_the_repo(tmp_path: Path) -> None:
    try:
        direct_url = metadata.distribution("sessionstore").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        pytest.skip("sessionstore is not installed in this environment")
    if not direct_url or not json.loads(direct_url).get("dir_info", {}).get("editable"):
        pytest.skip("sessionstore is not an editable install here")
    code = (
        "import json, sessionstore, sessionstore.scripts as s; "
        "print(json.dumps([sessionstore.__file__, s.SCRIPT_SOURCE_DIR]))"
    )
    # From a temp dir, so the import goes through the editable install, not the cwd.
    output = _run([sys.executable, "-c", code], cwd=tmp_path, timeout=60)
    module, source_dir = json.loads(output.strip().splitlines()[-1])
    assert Path(module).resolve() == REPO / "sessionstore" / "__init__.py"
    assert Path(source_dir).resolve() == REPO / "lua"
