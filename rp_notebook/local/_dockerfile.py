"""Read a worker's Dockerfile the way a container build would lay out its files, without building it.

The local endpoint cannot build or pull images, but it can run a worker folder as its image would
start. What that needs from the Dockerfile is small, and this module reads only that:

* where files land in the container: every `COPY`/`ADD` of the final stage (and of the stages it
  builds on, `FROM <stage>` and `COPY --from=<stage>`) maps a container path to a file or folder
  of the build context, so `/handler.py` can be found as `src/handler.py` after `ADD src .`;
* `WORKDIR` (the working directory of later instructions and of the started process);
* `ENV` and `ARG` (their values, for substitution, and ENV as the process environment);
* `CMD` and `ENTRYPOINT`, exec and shell form, as the argv the container starts;
* the `pip install` commands of `RUN` lines, as argument lists (`pip_installs`).

The build context is not known from the Dockerfile. Runpod's own workers build from the worker's
folder (`docker build .`); rp_notebook's bundled workers build from the repository root
(`docker build -f workers/x/Dockerfile .`). `read_dockerfile` tries the folder first, then each
folder above it, and takes the first where every `COPY`/`ADD` source exists.

What is not modelled (nothing here runs a build): `RUN` steps other than pip installs, base images'
own files and `CMD`, `ADD` of URLs and archives, `.dockerignore`, `ONBUILD`, heredocs' contents.
"""

from __future__ import annotations

import glob
import json
import posixpath
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

__all__ = ["CopiedPath", "Dockerfile", "DockerfileError", "read_dockerfile", "shell_words"]

_MAX_CONTEXT_LEVELS = 4  # how many folders above the worker folder may be the build context
_VARIABLE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?[-+](?P<default>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
_PIP = re.compile(r"^(?:.*/)?(?:pip3?(?:\.\d+)?)$")
_PYTHON = re.compile(r"^(?:.*/)?python(?:3(?:\.\d+)?)?$")
_SHELL_OPERATORS = frozenset({"&&", "||", ";", "|", "&", ";;"})


class DockerfileError(ValueError):
    """The Dockerfile cannot be read (syntax the local endpoint does not understand)."""


@dataclass(frozen=True)
class CopiedPath:
    """One `COPY`/`ADD` source as it lands in the container: `container` <- `local`."""

    container: str  # absolute POSIX path in the container
    local: Path  # the file or folder of the build context
    is_dir: bool  # a folder's *contents* land in `container`


@dataclass
class _Stage:
    name: str | None
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)
    copies: list[CopiedPath] = field(default_factory=list)
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    pip_installs: list[tuple[str, list[str]]] = field(default_factory=list)  # (workdir, argv)

    def inherit(self, name: str | None) -> _Stage:
        """A stage that starts `FROM` this one."""
        return _Stage(
            name=name,
            workdir=self.workdir,
            env=dict(self.env),
            copies=list(self.copies),
            entrypoint=self.entrypoint,
            cmd=self.cmd,
            pip_installs=list(self.pip_installs),
        )


@dataclass(frozen=True)
class Dockerfile:
    """What the final stage of a Dockerfile puts into the container and starts."""

    path: Path
    context: Path  # the build context the COPY sources were found in
    workdir: str
    env: Mapping[str, str]
    copies: tuple[CopiedPath, ...]
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    pip_installs: tuple[tuple[str, tuple[str, ...]], ...]  # (workdir at that RUN, pip arguments)

    def command(self, start_command: tuple[str, ...] | None = None) -> tuple[str, ...]:
        """The argv the container starts: ENTRYPOINT + CMD, where a start command replaces CMD
        (as `docker run IMAGE ARGS...` does, and Runpod's template start command)."""
        cmd = start_command if start_command is not None else (self.cmd or ())
        return (*(self.entrypoint or ()), *cmd)

    def local_path(self, container_path: str, *, cwd: str | None = None) -> Path | None:
        """The file or folder of the build context that lands at `container_path`, or None.

        Later COPYs win, as they overwrite earlier ones in the image.
        """
        return _lookup(self.copies, posixpath.normpath(posixpath.join(cwd or self.workdir, container_path)))

    def local_dir(self, container_dir: str, *, cwd: str | None = None) -> Path | None:
        """The context folder a container folder stands for: a copied folder, or the one folder
        that every file copied into it came from (e.g. `/worker` <- `workers/tts/*.py`)."""
        container_dir = posixpath.normpath(posixpath.join(cwd or self.workdir, container_dir))
        mapped = self.local_path(container_dir, cwd="/")
        if mapped is not None and mapped.is_dir():
            return mapped
        bases = set()
        prefix = container_dir.rstrip("/") + "/"
        for copied in self.copies:
            if not copied.container.startswith(prefix):
                continue
            relative = PurePosixPath(copied.container[len(prefix) :])
            base = copied.local
            for _ in relative.parts:
                base = base.parent
            if base / relative != copied.local:
                return None  # renamed on the way in: no one folder stands for it
            bases.add(base)
        return bases.pop() if len(bases) == 1 else None


def _lookup(copies: Iterable[CopiedPath], path: str) -> Path | None:
    """The local file or folder that lands at the container path `path` (absolute, normalised)."""
    for copied in reversed(list(copies)):  # later COPYs overwrite earlier ones
        if path == copied.container:
            if copied.local.exists():
                return copied.local
        elif copied.is_dir and path.startswith(copied.container.rstrip("/") + "/"):
            candidate = copied.local / posixpath.relpath(path, copied.container)
            if candidate.exists():
                return candidate
    return None


def shell_words(command: str) -> list[str]:
    """Split a shell command into words, with `&&`, `||`, `;`, `|` and `&` as words of their own."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars="&|;")
    lexer.whitespace_split = True
    lexer.commenters = ""
    return list(lexer)


def split_commands(words: list[str]) -> Iterator[list[str]]:
    """The simple commands of a word list split at shell operators."""
    current: list[str] = []
    for word in words:
        if word in _SHELL_OPERATORS:
            if current:
                yield current
            current = []
        else:
            current.append(word)
    if current:
        yield current


def _substitute(text: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        if name in values:
            return values[name]
        return match.group("default") or ""

    return _VARIABLE.sub(replace, text)


def _instructions(text: str) -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: continuation lines joined, comments dropped."""
    pending: list[str] = []
    lines = iter(text.splitlines())
    for raw in lines:
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment line inside a continued instruction is dropped, as Docker does
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        joined = " ".join(part.strip() for part in pending).strip()
        pending = []
        if not joined:
            continue
        keyword, _, rest = joined.partition(" ")
        rest = rest.strip()
        heredoc = re.search(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?", rest)
        if heredoc:  # skip the heredoc's body up to its terminator line
            for body in lines:
                if body.strip() == heredoc.group(1):
                    break
        yield keyword.upper(), rest
    if pending:
        joined = " ".join(part.strip() for part in pending).strip()
        keyword, _, rest = joined.partition(" ")
        yield keyword.upper(), rest.strip()


def _json_or_shell(rest: str) -> list[str]:
    """An exec-form JSON array, or a shell-form command run by `/bin/sh -c`."""
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
    return ["/bin/sh", "-c", rest]


def _key_values(rest: str) -> dict[str, str]:
    """`ENV A=1 B="two words"` or the legacy `ENV A value with spaces`."""
    words = shlex.split(rest, posix=True)
    if words and "=" not in words[0]:
        return {words[0]: rest.split(None, 1)[1] if len(words) > 1 else ""}
    pairs = {}
    for word in words:
        name, _, value = word.partition("=")
        pairs[name] = value
    return pairs


def _copy_arguments(rest: str) -> tuple[dict[str, str], list[str]]:
    """The `--flag=value` options and the paths of a COPY/ADD (shell or JSON form)."""
    words = json.loads(rest) if rest.startswith("[") else shlex.split(rest, posix=True)
    flags: dict[str, str] = {}
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0)[2:].partition("=")
        flags[name] = value
    if words and words[0].startswith("["):  # flags before a JSON array: COPY --chown=x ["a", "b"]
        words = json.loads(" ".join(words))
    return flags, words


def _pip_arguments(command: list[str]) -> list[str] | None:
    """The arguments after `install` when `command` is a pip install, else None."""
    words = list(command)
    while words and "=" in words[0] and not words[0].startswith("-"):  # VAR=value cmd
        words.pop(0)
    if words and words[0] in ("env", "/usr/bin/env"):
        words.pop(0)
    if not words:
        return None
    if words[0] in ("uv", "/usr/local/bin/uv") and words[1:2] == ["pip"]:
        words = words[2:]
    elif _PIP.match(words[0]):
        words = words[1:]
    elif _PYTHON.match(words[0]) and words[1:3] == ["-m", "pip"]:
        words = words[3:]
    else:
        return None
    return words[1:] if words[:1] == ["install"] else None


def _folders_of(stage: _Stage) -> set[str]:
    """Container paths known to be folders: working directories, copied folders, their parents."""
    folders = {stage.workdir}
    for copied in stage.copies:
        if copied.is_dir:
            folders.add(copied.container)
        parent = posixpath.dirname(copied.container)
        while parent not in folders:
            folders.add(parent)
            parent = posixpath.dirname(parent)
    return folders


class _Reader:
    def __init__(self, path: Path, context: Path) -> None:
        self.path = path
        self.context = context
        self.stages: dict[str, _Stage] = {}  # by name (lower case) and by index ("0", "1", ...)
        self.stage_count = 0
        self.global_args: dict[str, str] = {}
        self.missing: list[str] = []  # COPY sources not found in this context

    def read(self, text: str) -> _Stage:
        stage: _Stage | None = None
        for keyword, rest in _instructions(text):
            if keyword == "FROM":
                stage = self._from(rest)
                continue
            if stage is None:
                if keyword == "ARG":
                    self.global_args.update(_key_values(rest))
                continue
            values = {**self.global_args, **stage.args, **stage.env}
            if keyword == "ARG":
                for name, value in _key_values(rest).items():
                    stage.args[name] = _substitute(value, values) if value else self.global_args.get(name, "")
            elif keyword == "ENV":
                for name, value in _key_values(rest).items():
                    stage.env[name] = _substitute(value, values)
            elif keyword == "WORKDIR":
                stage.workdir = posixpath.normpath(posixpath.join(stage.workdir, _substitute(rest, values)))
            elif keyword in ("COPY", "ADD"):
                self._copy(stage, rest, values)
            elif keyword == "CMD":
                stage.cmd = [_substitute(w, values) for w in _json_or_shell(rest)]
            elif keyword == "ENTRYPOINT":
                stage.entrypoint = [_substitute(w, values) for w in _json_or_shell(rest)]
                stage.cmd = None  # ENTRYPOINT resets an inherited CMD
            elif keyword == "RUN":
                self._run(stage, rest, values)
        if stage is None:
            raise DockerfileError(f"{self.path}: no FROM instruction")
        return stage

    def _from(self, rest: str) -> _Stage:
        words = [w for w in rest.split() if not w.startswith("--")]
        image = _substitute(words[0], self.global_args).lower() if words else ""
        name = words[2].lower() if len(words) >= 3 and words[1].upper() == "AS" else None
        base = self.stages.get(image)
        stage = base.inherit(name) if base is not None else _Stage(name=name)
        self.stages[str(self.stage_count)] = stage
        self.stage_count += 1
        if name:
            self.stages[name] = stage
        return stage

    def _copy(self, stage: _Stage, rest: str, values: Mapping[str, str]) -> None:
        flags, words = _copy_arguments(_substitute(rest, values))
        if len(words) < 2:
            return
        *sources, destination = words
        into_dir = destination.endswith(("/", "/.")) or destination == "." or len(sources) > 1
        destination = posixpath.normpath(posixpath.join(stage.workdir, destination))
        into_dir = into_dir or destination in _folders_of(stage)
        from_stage = self.stages.get(flags["from"].lower()) if "from" in flags else None
        if "from" in flags and from_stage is None:
            return  # an external image's files: nothing of ours
        for source in sources:
            if "://" in source:
                continue  # ADD <url>: the local endpoint does not download it
            for local, name in self._sources(source, from_stage):
                if local is None:
                    self.missing.append(source)
                    continue
                is_dir = local.is_dir()
                target = destination if is_dir or not into_dir else posixpath.join(destination, name)
                stage.copies.append(CopiedPath(target, local, is_dir))

    def _sources(self, source: str, from_stage: _Stage | None) -> Iterator[tuple[Path | None, str]]:
        if from_stage is not None:
            container = posixpath.normpath(posixpath.join(from_stage.workdir, source))
            yield _lookup(from_stage.copies, container), posixpath.basename(container)
            return
        relative = source.lstrip("/")
        if any(ch in relative for ch in "*?["):
            matches = sorted(glob.glob(str(self.context / relative)))
            if not matches:
                yield None, relative
            for match in matches:
                yield Path(match), Path(match).name
            return
        local = (self.context / relative).resolve() if relative not in ("", ".") else self.context
        yield (local if local.exists() else None), Path(relative).name

    def _run(self, stage: _Stage, rest: str, values: Mapping[str, str]) -> None:
        command = _json_or_shell(rest)
        if command[:2] != ["/bin/sh", "-c"]:
            arguments = _pip_arguments(command)
            if arguments is not None:
                stage.pip_installs.append((stage.workdir, arguments))
            return
        workdir = stage.workdir
        try:
            words = shell_words(_substitute(command[2], values))
        except ValueError:
            return  # unbalanced quotes: not a command we can read
        for simple in split_commands(words):
            if simple[0] == "cd" and len(simple) > 1:
                workdir = posixpath.normpath(posixpath.join(workdir, simple[1]))
                continue
            arguments = _pip_arguments(simple)
            if arguments is not None:
                stage.pip_installs.append((workdir, arguments))


def read_dockerfile(path: Path, *, folder: Path | None = None) -> Dockerfile:
    """Read `path`, finding its build context in `folder` (default: the Dockerfile's folder) or
    one of the folders above it. Raises DockerfileError when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DockerfileError(f"{path}: cannot read it ({exc})") from exc
    start = (folder or path.parent).resolve()
    candidates = [start, *list(start.parents)[:_MAX_CONTEXT_LEVELS]]
    best: tuple[int, _Reader, _Stage] | None = None
    for context in candidates:
        reader = _Reader(path, context)
        try:
            stage = reader.read(text)
        except (ValueError, json.JSONDecodeError) as exc:
            raise DockerfileError(f"{path}: {exc}") from exc
        if not reader.missing:
            best = (0, reader, stage)
            break
        if best is None or len(reader.missing) < best[0]:
            best = (len(reader.missing), reader, stage)
    assert best is not None
    _, reader, stage = best
    return Dockerfile(
        path=path,
        context=reader.context,
        workdir=stage.workdir,
        env=dict(stage.env),
        copies=tuple(stage.copies),
        entrypoint=tuple(stage.entrypoint) if stage.entrypoint is not None else None,
        cmd=tuple(stage.cmd) if stage.cmd is not None else None,
        pip_installs=tuple((workdir, tuple(args)) for workdir, args in stage.pip_installs),
    )
