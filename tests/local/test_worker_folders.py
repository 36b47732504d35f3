"""Reading a worker folder as its image: the entry point from the start command, the Dockerfile's
CMD/ENTRYPOINT (exec and shell forms, through COPY/ADD, WORKDIR, ARG/ENV, stages and shell scripts)
or handler.py; the packages from its pip installs or requirements.txt; its ENV. No server here."""

from __future__ import annotations

from pathlib import Path

import pytest

from rp_notebook.local._worker_folder import WorkerFolderError, read_worker_folder

REPO = Path(__file__).resolve().parents[2]


def folder_with(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_an_exec_form_cmd_runs_its_script_from_the_workdir(tmp_path: Path) -> None:
    folder = folder_with(
        tmp_path,
        {
            "Dockerfile": 'FROM python:3.11\nWORKDIR /app\nCOPY . .\nCMD ["python3.11", "-u", "worker.py", "--port", "1"]\n',
            "worker.py": "",
        },
    )
    command = read_worker_folder(folder).command
    assert command.script == folder / "worker.py" and command.cwd == folder
    assert command.args == ("--port", "1")
    assert command.argv("/venv/bin/python") == [
        "/venv/bin/python",
        "-u",
        str(folder / "worker.py"),
        "--port",
        "1",
    ]


def test_add_src_dot_maps_an_absolute_container_path_to_the_src_folder(tmp_path: Path) -> None:
    folder = folder_with(
        tmp_path, {"Dockerfile": "FROM x\nADD src .\nCMD python -u /handler.py\n", "src/handler.py": ""}
    )
    command = read_worker_folder(folder).command
    assert command.script == folder / "src" / "handler.py" and command.cwd == folder / "src"
    assert "/bin/sh" in command.origin  # the shell form runs through sh -c


def test_a_start_command_replaces_cmd_and_follows_the_entrypoint(tmp_path: Path) -> None:
    folder = folder_with(
        tmp_path,
        {
            "Dockerfile": 'FROM x\nCOPY app/ /srv/\nWORKDIR /srv\nENTRYPOINT ["python", "-u", "main.py"]\nCMD ["--mode", "a"]\n',
            "app/main.py": "",
        },
    )
    assert read_worker_folder(folder).command.args == ("--mode", "a")
    started = read_worker_folder(folder, "--mode b --verbose").command
    assert started.script == folder / "app" / "main.py" and started.args == ("--mode", "b", "--verbose")


def test_a_start_command_without_a_dockerfile_runs_relative_to_the_folder(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, {"main.py": "", "handler.py": ""})
    command = read_worker_folder(folder, "python -u main.py --generator").command
    assert command.script == folder / "main.py" and command.args == ("--generator",)
    assert read_worker_folder(folder).command.script == folder / "handler.py"


def test_a_shell_cmd_with_cd_and_exec_and_a_start_script_lead_to_the_last_python_command(
    tmp_path: Path,
) -> None:
    folder = folder_with(
        tmp_path,
        {
            "Dockerfile": 'FROM x\nCOPY src/ /opt/w/\nCOPY start.sh /start.sh\nCMD ["/start.sh"]\n',
            "start.sh": '#!/bin/bash\nset -e\npython /opt/w/warmup.py &\ncd /opt/w\nexec python -u handler.py "$@"\n',
            "src/handler.py": "",
            "src/warmup.py": "",
        },
    )
    command = read_worker_folder(folder, "/start.sh --rp_serve_api").command
    assert command.script == folder / "src" / "handler.py" and command.cwd == folder / "src"
    assert command.args == ("--rp_serve_api",)


def test_python_dash_m_runs_a_module_from_the_working_directory(tmp_path: Path) -> None:
    folder = folder_with(
        tmp_path,
        {"Dockerfile": "FROM x\nWORKDIR /w\nCOPY . .\nCMD python -m pkg.serve\n", "pkg/serve.py": ""},
    )
    command = read_worker_folder(folder).command
    assert command.module == "pkg.serve" and command.cwd == folder
    assert command.argv("py") == ["py", "-u", "-m", "pkg.serve"]


def test_arg_and_env_values_are_substituted_and_stages_are_followed(tmp_path: Path) -> None:
    folder = folder_with(
        tmp_path,
        {
            "Dockerfile": (
                "ARG APP=/app\n"
                "FROM python:3.11 AS base\n"
                "ARG APP\n"
                "WORKDIR ${APP}\n"
                "COPY handler.py ./\n"
                "FROM base AS final\n"
                "ENV MODE=fast MODEL_DIR=/app/models HF_HOME=/root/.cache/hf PATH=/opt/venv/bin:$PATH\n"
                "COPY models/ ./models/\n"
                "CMD python -u $APP/handler.py --mode $MODE\n"
            ),
            "handler.py": "",
            "models/weights.bin": "",
        },
    )
    image = read_worker_folder(folder)
    assert image.command.script == folder / "handler.py" and image.command.args == ("--mode", "fast")
    # A container path the Dockerfile filled becomes the local folder; others and PATH are dropped.
    assert image.env == {"MODE": "fast", "MODEL_DIR": str(folder / "models")}


def test_copy_from_a_build_stage_maps_through_that_stage(tmp_path: Path) -> None:
    folder = folder_with(
        tmp_path,
        {
            "Dockerfile": (
                "FROM python:3.11 AS builder\nWORKDIR /build\nCOPY src/ ./\n"
                "FROM python:3.11-slim\nCOPY --from=builder /build/handler.py /handler.py\nCMD python -u /handler.py\n"
            ),
            "src/handler.py": "",
        },
    )
    assert read_worker_folder(folder).command.script == folder / "src" / "handler.py"


def test_the_bundled_workers_dockerfiles_build_from_the_repository_root(tmp_path: Path) -> None:
    image = read_worker_folder(REPO / "workers" / "chatterbox_tts")
    assert image.command.script == REPO / "workers" / "chatterbox_tts" / "handler.py"
    assert image.packages is not None
    assert image.packages.installs == (
        ("-r", str(REPO / "workers" / "chatterbox_tts" / "requirements.txt")),
        ("--no-deps", "chatterbox-tts==0.1.7", "s3tokenizer==0.3.0", "resemble-perth==1.0.1"),
        ("--no-deps", "-e", str(REPO)),  # /tmp/rp_notebook, assembled from the repository's files
    )
    assert image.env["TTS_ENGINE"] == "chatterbox" and "HF_HOME" not in image.env


def test_pip_installs_keep_what_is_installed_and_drop_where_it_comes_from(tmp_path: Path) -> None:
    folder = folder_with(
        tmp_path,
        {
            "Dockerfile": (
                "FROM x\nCOPY requirements.txt constraints.txt /tmp/\n"
                "RUN pip install --no-cache-dir --upgrade pip && \\\n"
                "    pip install -r /tmp/requirements.txt -c /tmp/constraints.txt \\\n"
                "      --index-url https://download.pytorch.org/whl/cu124 --extra-index-url=https://x\n"
                "RUN uv pip install --system --no-deps 'runpod==1.7.9' git+https://github.com/x/y\n"
                "COPY handler.py /\nCMD python /handler.py\n"
            ),
            "requirements.txt": "torch==2.6.0\n",
            "constraints.txt": "numpy<2\n",
            "handler.py": "",
        },
    )
    packages = read_worker_folder(folder).packages
    assert packages is not None and packages.origin == "the Dockerfile's pip install commands"
    assert packages.installs == (
        ("-r", str(folder / "requirements.txt"), "-c", str(folder / "constraints.txt")),
        ("--no-deps", "runpod==1.7.9", "git+https://github.com/x/y"),
    )


def test_the_environment_key_follows_file_contents_not_folder_paths(tmp_path: Path) -> None:
    one = folder_with(
        tmp_path / "one",
        {"handler.py": "", "requirements.txt": "-r base.txt\n", "base.txt": "runpod==1.7.9\n"},
    )
    two = folder_with(
        tmp_path / "two",
        {"handler.py": "", "requirements.txt": "-r base.txt\n", "base.txt": "runpod==1.7.9\n"},
    )
    first, second = (read_worker_folder(f).packages for f in (one, two))
    assert first is not None and second is not None and first.origin == "requirements.txt"
    assert first.fingerprint() == second.fingerprint()
    (two / "base.txt").write_text("runpod==1.7.10\n")  # a nested include changed
    assert first.fingerprint() != second.fingerprint()


def test_a_folder_without_requirements_runs_on_the_servers_python(tmp_path: Path) -> None:
    assert read_worker_folder(folder_with(tmp_path, {"handler.py": ""})).packages is None


@pytest.mark.parametrize(
    ("files", "start_command", "message"),
    [
        (
            {"README.md": ""},
            "",
            "looked for the template's start command (none), a Dockerfile (there is none), handler.py (not there)",
        ),
        (
            {"Dockerfile": "FROM x\n"},
            "",
            "the Dockerfile (it has no CMD or ENTRYPOINT), handler.py (not there)",
        ),
        (
            {"Dockerfile": 'FROM x\nCMD ["node", "server.js"]\n', "handler.py": ""},
            "",
            "runs 'node server.js', which is not a Python script",
        ),
        ({"Dockerfile": "FROM x\nCMD python -c 'print(1)'\n"}, "", "runs inline code (python -c)"),
        (
            {"handler.py": ""},
            "python -u /other.py",
            "runs /other.py, which is not a file of the worker folder",
        ),
        ({"handler.py": ""}, "python -u 'unterminated", "No closing quotation"),
        ({"Dockerfile": "COPY . /\n"}, "", "no FROM instruction"),
    ],
)
def test_what_cannot_run_is_refused_with_what_was_tried(
    tmp_path: Path, files: dict[str, str], start_command: str, message: str
) -> None:
    with pytest.raises(WorkerFolderError) as refused:
        read_worker_folder(folder_with(tmp_path, files), start_command)
    assert message in str(refused.value)
