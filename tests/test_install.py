"""What the Dockerfile builds, built without Docker, and used as the image uses it.

No Docker engine runs on the project's machines, so this does the image's steps by hand:
a fresh virtual environment gets ``pip install`` (not editable) of a copy of exactly what
the Dockerfile copies (pyproject.toml, README.md, bot/, flows/, locales/), and the copy is
deleted. Then, as an unprivileged user (``nobody`` when the tests run as root, as CI does)
and from a folder holding only ``data/``, ``python -m bot validate`` must pass and a piped
chat must answer in each of the six languages: the installed package finds its own flows
and catalogs, with no checkout and no particular current folder.

It needs pip to reach the package index (or its cache), as the image build does, and takes
about half a minute. It also keeps the runtime install under its size goal.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bot.text.languages import LANGUAGES

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE_COPIES = ("pyproject.toml", "README.md", "bot", "flows", "locales", "services")
MAX_INSTALL_MB = 300  # the runtime install, over an empty virtual environment

pytestmark = pytest.mark.timeout(900)
_RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"  # util-linux; root only


def _everyone_may_run(python: Path) -> bool:
    """Whether any user can run ``python`` and read its standard library (mode bits only)."""
    real = python.resolve()
    if not real.is_file() or not real.stat().st_mode & stat.S_IXOTH:
        return False
    lib = real.parent.parent / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return all(folder.stat().st_mode & stat.S_IXOTH for folder in (lib, *lib.parents)) \
        and all(folder.stat().st_mode & stat.S_IXOTH for folder in real.parents)


def _base_python() -> Path:
    """The Python to build the virtual environment from: this one (its base, not the venv
    that runs the tests) when an unprivileged user may run it; otherwise, running as root
    (CI's Python lives under /root, which only root may enter), the system's python3, as
    the image uses its system-wide /usr/local/bin/python."""
    own = Path(getattr(sys, "_base_executable", sys.executable))
    if os.geteuid() != 0 or _everyone_may_run(own):
        return own
    for folder in ("/usr/local/bin", "/usr/bin"):
        system = Path(folder) / f"python{sys.version_info.major}.{sys.version_info.minor}"
        if system.is_file() and _everyone_may_run(system):
            return system
    pytest.fail(f"no Python {sys.version_info.major}.{sys.version_info.minor} that the user "
                "nobody may run: install the system's python3 and python3-venv")


def _megabytes(path: Path) -> float:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            file = Path(folder, name)
            if not file.is_symlink():
                total += file.stat().st_blocks * 512
    return total / 1e6


@dataclass(frozen=True)
class Installed:
    venv: Path
    work: Path  # the folder the bot runs from: holds only data/
    install_mb: float

    def run(self, *args: str, stdin: str = "", extra_env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        """Run a command of the venv as the image does: unprivileged, clean environment."""
        env = {"PATH": f"{self.venv / 'bin'}:/usr/bin:/bin", "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
               "HOME": "/nonexistent" if os.geteuid() == 0 else os.environ.get("HOME", "/"),
               **(extra_env or {})}
        as_user = [_RUNUSER, "-u", "nobody", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*as_user, *args], input=stdin, text=True, capture_output=True,
                              cwd=self.work, env=env, timeout=120, check=False)


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    base = Path(tempfile.mkdtemp(prefix="helpbot-install-"))  # not pytest's 0700 tmp folders
    try:
        base.chmod(0o755)
        src = base / "src"
        src.mkdir()
        for name in DOCKERFILE_COPIES:
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, src / name, symlinks=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(ROOT / name, src / name)
        venv = base / "venv"
        subprocess.run([str(_base_python()), "-m", "venv", str(venv)], check=True, timeout=120)
        empty_mb = _megabytes(venv)
        pip = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", f"{src}[postgres]"],  # as the Dockerfile does
            capture_output=True, text=True, timeout=780, check=False)
        assert pip.returncode == 0, pip.stdout + pip.stderr
        shutil.rmtree(src)  # an installed bot must need nothing of the source tree
        work = base / "work"
        (work / "data").mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(work / "data", "nobody")
        yield Installed(venv, work, _megabytes(venv) - empty_mb)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_install_is_not_editable_and_carries_its_flows_and_catalogs(
        installed: Installed) -> None:
    done = installed.run("python", "-c", "import os, bot, bot._shipped as s; "
                         "print(os.geteuid()); print(bot.__file__); "
                         "print(s.shipped_dir('flows')); print(s.shipped_dir('locales')); "
                         "print(s.shipped_dir('services'))")
    assert done.returncode == 0, done.stderr
    uid, *paths = done.stdout.splitlines()
    assert int(uid) != 0, "the bot must run as an unprivileged user, as in the image"
    package, flows, locales, services = (Path(line) for line in paths)
    site = installed.venv / "lib"
    for path in (package, flows, locales, services):
        assert path.is_relative_to(site), f"{path} is not inside the installed package"
    assert sorted(p.name for p in flows.glob("*.yaml")) == sorted(
        p.name for p in (ROOT / "flows").glob("*.yaml"))
    assert sorted(p.name for p in locales.iterdir()) == sorted(
        p.name for p in (ROOT / "locales").iterdir() if p.is_dir())
    assert sorted(p.name for p in services.glob("*.yaml")) == sorted(
        p.name for p in (ROOT / "services").glob("*.yaml"))


def test_validate_passes_as_an_unprivileged_user_from_a_data_only_folder(
        installed: Installed) -> None:
    done = installed.run("python", "-m", "bot", "validate")
    assert done.returncode == 0, done.stdout + done.stderr
    flows = len(list((ROOT / "flows").glob("*.yaml")))
    assert done.stdout.startswith(f"OK: {flows} flows, ")


def _menu_prompt(language: str) -> str:
    """The main menu's question in a language, as shipped in flows/ or locales/."""
    if language == "en":
        flow = yaml.safe_load((ROOT / "flows" / "main_menu.yaml").read_text(encoding="utf-8"))
        return str(next(s["menu"] for s in flow["steps"] if s["id"] == "choose"))
    catalog = yaml.safe_load(
        (ROOT / "locales" / language / "main_menu.yaml").read_text(encoding="utf-8"))
    return str(catalog["main_menu.choose"]["text"])


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_piped_chat_answers_in_each_language(installed: Installed, language: str) -> None:
    done = installed.run("python", "-m", "bot", "chat", "--lang", language,
                         "--db", f"data/{language}.sqlite3", stdin="hi\n")
    assert done.returncode == 0, done.stderr
    assert _menu_prompt(language) in done.stdout
    if language != "en":
        assert _menu_prompt("en") not in done.stdout, "answered in English"
    assert done.stderr == ""
    assert sorted(p.name for p in installed.work.iterdir()) == ["data"]


def test_the_helpbot_script_names_a_missing_folder_in_one_line(installed: Installed) -> None:
    done = installed.run("helpbot", "chat", extra_env={"BOT_LOCALES_DIR": "/srv/nowhere"})
    assert done.returncode == 2
    assert done.stderr.startswith("error: BOT_LOCALES_DIR=/srv/nowhere: no such folder")
    assert done.stderr.count("\n") == 1 and done.stdout == ""


def test_the_install_can_open_a_postgresql_database(installed: Installed) -> None:
    """BOT_DATABASE_URL works in the image: the driver and its pool come with the install."""
    done = installed.run("python", "-c", "import psycopg, psycopg_pool, bot.storage.postgres; "
                         "print(psycopg.pq.version())")
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) >= 100000, done.stdout  # a bundled libpq, 10 or newer


def test_the_runtime_install_stays_small(installed: Installed) -> None:
    assert installed.install_mb <= MAX_INSTALL_MB, (
        f"pip install . adds {installed.install_mb:.0f} MB to an empty virtual environment "
        f"(goal: at most {MAX_INSTALL_MB} MB); see the dependencies in pyproject.toml")


def test_the_dockerfile_copies_what_this_test_installs_and_execs_python() -> None:
    """The steps above stand in for the image only while the Dockerfile does the same."""
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    copied = {name for line in lines if line.startswith("COPY ") for name in line.split()[1:-1]}
    assert copied == set(DOCKERFILE_COPIES)
    # Not editable, and with the PostgreSQL driver (BOT_DATABASE_URL), as installed above.
    assert any(line.startswith('RUN pip install "/src[postgres]"') for line in lines)
    assert "USER bot" in lines and "WORKDIR /data" in lines
    # Exec form (a JSON list): python is PID 1 and gets SIGTERM itself, no shell in between.
    assert 'ENTRYPOINT ["python", "-m", "bot"]' in lines and 'CMD ["run"]' in lines
    assert "STOPSIGNAL SIGTERM" in lines


def _readme_command(section: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split(f"\n## {section}\n", 1)[1].split("```sh\n", 1)[1].split("\n```", 1)[0]
    return block.strip()


def test_the_readme_commands_install_into_a_virtual_environment_and_ci_runs_the_test_one() -> None:
    """System pip refuses installs on Debian 12 and Ubuntu 23.04+ (PEP 668): both set-up
    commands make and activate a virtual environment first, and CI runs the test one as is."""
    venv = "python3 -m venv .venv && . .venv/bin/activate && "
    start, test = _readme_command("Start"), _readme_command("Test")
    assert start == venv + "pip install -e . && python -m bot chat"
    assert test == venv + "pip install -e '.[dev]' && scripts/check"
    ci = [line for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
          if line and not line.startswith("#")]
    assert ci[-1] == test
