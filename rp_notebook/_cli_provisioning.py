"""The provisioning commands of `rp-notebook`: gpus, templates, endpoints, deploy, scale, delete, use.

They are the magics' (`magics/_provisioning.py`): the same argparse options (each CLI command is
built with the magic's parser as its parent, so an option cannot exist in one and not the other), the
same handler behind each (the `COMMANDS` table: the `Provisioner` call, and the same table text), and
the same checks. What differs is only what a terminal needs:

- every command but `use` takes --local (a local endpoint for this run; `cli.main` starts it);
- `delete` asks before deleting (or takes --yes, and refuses to guess without a terminal to ask on),
  and its kind may be left out: `delete ENDPOINT` deletes an endpoint;
- `deploy` says how to keep the endpoint with `rp-notebook use`, where the magic says `%runpod use`
  (a run ends at once, so "this session" means nothing here), and refuses --persist with --local;
- `use` has no --session-only (a run has no session to keep it in).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_provisioning_commands"]

PROG = "rp-notebook"


def add_provisioning_commands(commands: Any, local_flag: argparse.ArgumentParser) -> None:
    """Add the provisioning commands to the `rp-notebook` subparsers `commands`."""
    from .magics._provisioning import COMMANDS
    from .models import MODELS

    helps = {
        "gpus": "serverless GPU pools with their prices per second and hour, and which ones fit a model",
        "templates": "your templates (env names only, never their values)",
        "endpoints": "your endpoints, with workers and queue",
        "deploy": "create a template and an endpoint from the model's preset",
        "scale": "change an endpoint's worker counts",
    }
    descriptions = {  # where the magic's speaks of the notebook session
        "deploy": "Create a template and an endpoint from the model's preset (each option overrides one "
        "preset value). With --persist, later runs (and notebooks) use the endpoint for the model.",
    }
    for name, help_text in helps.items():
        magic_parser = COMMANDS[name][0]()
        command = commands.add_parser(
            name,
            help=help_text,
            description=descriptions.get(name, magic_parser.description),
            parents=[magic_parser, local_flag],
            add_help=False,
            conflict_handler="resolve",  # this -h replaces the magic's, if it has one
        )
        command.add_argument("-h", "--help", action="help", help="show this help and exit")
        command.set_defaults(cli_run=_run, cli_parser=command, cli_check=_check)

    delete = commands.add_parser(
        "delete",
        help="delete an endpoint (scaled to 0 first) or a template",
        description="Delete an endpoint (scaled to 0 first, as Runpod requires) or a template (by name, "
        "when no endpoint uses it). Asks first, unless --yes.",
        parents=[local_flag],
    )
    delete.add_argument(
        "kind",
        nargs="?",
        default="endpoint",
        choices=("endpoint", "template"),
        help="what to delete (default: endpoint)",
    )
    delete.add_argument("target", metavar="ENDPOINT|NAME", help="the endpoint id, or the template name")
    delete.add_argument(
        "--force",
        action="store_true",
        help="endpoint: delete even with jobs queued or running (they are lost)",
    )
    delete.add_argument("-y", "--yes", action="store_true", help="delete without asking")
    delete.set_defaults(cli_run=_delete, cli_parser=delete, cli_check=_check)

    use = commands.add_parser(
        "use",
        help="the endpoint later runs use for a model",
        description="Serve a model from an endpoint in later runs (and notebooks): saved in your user "
        "config file. `none` forgets the saved choice.",
    )
    use.add_argument("endpoint", metavar="ENDPOINT|none", help="the endpoint id, or none")
    use.add_argument("as_", choices=("as",), metavar="as", help="the word as")
    use.add_argument("model", choices=MODELS, help="which model")
    use.set_defaults(cli_run=_run, cli_parser=use, session_only=False)


def _check(args: argparse.Namespace) -> None:
    """What the magics refuse in their handlers, refused before a local endpoint starts or anything
    is sent; and what only a terminal needs (a way to ask before deleting)."""
    parser: argparse.ArgumentParser = args.cli_parser
    if args.command == "scale" and args.workers_min is None and args.workers_max is None:
        parser.error("give --min N, --max N or both")
    if args.command == "deploy" and args.persist and args.local:
        parser.error("--persist with --local would save an endpoint that is gone when this run ends")
    if args.command == "delete":
        if args.kind == "template" and args.force:
            parser.error("--force is for endpoints; a template in use is never deleted")
        if not args.yes and not sys.stdin.isatty():
            parser.error(f"deleting asks first; add --yes to delete {args.kind} {args.target} without asking")


def _run(args: argparse.Namespace) -> int:
    """The magic's handler for the command; what it returns is shown as its plain text."""
    from .magics._provisioning import COMMANDS

    shown = COMMANDS[args.command][1](args)
    if shown is not None:
        text: str = shown._repr_mimebundle_()["text/plain"]
        if args.command == "deploy":
            text = _deploy_text(text, shown.deployment, local=args.local)
        print(text)
    return 0


def _deploy_text(text: str, deployment: Any, *, local: bool) -> str:
    """The magic's deployment summary, with its `%runpod use` note (the endpoint is used in this
    session only) said for a terminal."""
    endpoint_id, model = deployment.endpoint.id, deployment.model
    if local:
        note = f"endpoint {endpoint_id} stops with the local endpoint of this run"
    else:
        note = (
            f"{model} endpoint {endpoint_id} is not saved: `{PROG} use {endpoint_id} as {model}` makes later "
            f"runs use it (or pass --endpoint {endpoint_id}; deploy with --persist saves it at once)"
        )
    # Saved (--persist): the magic's note says where, and has no `%runpod use` to replace.
    return "\n".join(note if "%runpod use" in line else line for line in text.splitlines())


def _delete(args: argparse.Namespace) -> int:
    from .magics._provisioning import COMMANDS

    if not args.yes:  # stdin is a terminal (`_check`)
        try:
            answer = input(f"Delete {_describe(args.kind, args.target)}? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted")
            return 1
    COMMANDS["delete"][1](args)
    return 0


def _describe(kind: str, target: str) -> str:
    """What is about to be deleted, as the prompt names it; InputError when there is no such endpoint."""
    if kind != "endpoint":
        return f"template {target}"
    from .provisioning import Provisioner

    with Provisioner() as prov:
        endpoint = prov.endpoint(target)
    return f"endpoint {endpoint.id} ({endpoint.name}, workers {endpoint.workers_min}-{endpoint.workers_max})"
