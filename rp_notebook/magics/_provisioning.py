"""The provisioning subcommands of %runpod: GPU pools, templates, endpoints, deploy, scale, delete, use.

%runpod gpus [--model tts|layers]        the GPU pools, smallest first, live prices, what fits
%runpod templates                        your templates (env names only, never their values)
%runpod endpoints                        your endpoints with health; marks the ones in use here
%runpod deploy tts|layers [options]      template + endpoint from the model's preset; then used here
%runpod scale ENDPOINT --min N --max N   change an endpoint's worker counts
%runpod delete endpoint ENDPOINT [--force] | delete template NAME
%runpod use ENDPOINT|none as tts|layers [--session-only]   which endpoint serves a model

Why a module of its own: the router (`_runpod.py`) stays a short dispatch table, and everything
provisioning needs is here, one argparse parser and one handler per subcommand. The parsers are
also the `%runpod?` help, so the help cannot drift from what is accepted, and every number has an
argparse type: `--workers-max x` is refused naming the option before anything else happens.

The rules (pool memory, unique template names, scale to zero before delete) are `Provisioner`'s;
this module parses, calls and renders. Its InputError and ProvisioningError are raised unchanged:
they print as one line (`_render_traceback_`) and stay real exceptions for callers and nbval.

Nothing secret is shown: templates list env *names* (values often hold tokens), and of the
settings only endpoint ids and the config file's path appear. An endpoint chosen with `use` or
made by `deploy` is saved to the user config file, never to the notebook, which may be shared.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import _api, display
from .._spend import record_endpoint
from ..config import configure, current_settings, remember_endpoint, user_config_file
from ..costs import rates_of, usd_text
from ..display import Rendered
from ..models import MODELS
from ..provisioning import PRESETS, Deployment, Endpoint, EndpointStatus, Provisioner, Template, preset_for
from ._parsing import MagicArgumentParser

__all__ = ["COMMANDS", "DeployResult", "help_texts", "run_command"]

FORGET = "none"
#: A health error longer than this is cut in the endpoints table.
MAX_ERROR_CHARS = 100


# -- parsers -------------------------------------------------------------------------------------------


def _gpus_parser() -> argparse.ArgumentParser:
    parser = MagicArgumentParser(prog="%runpod gpus", description="Serverless GPU pools, smallest first.")
    parser.add_argument("--model", choices=PRESETS, help="Mark the pools with enough GPU memory for it.")
    return parser


def _templates_parser() -> argparse.ArgumentParser:
    return MagicArgumentParser(prog="%runpod templates", description="Your templates (env names only).")


def _endpoints_parser() -> argparse.ArgumentParser:
    return MagicArgumentParser(
        prog="%runpod endpoints", description="Your endpoints, with workers and queue."
    )


def _deploy_parser() -> argparse.ArgumentParser:
    parser = MagicArgumentParser(
        prog="%runpod deploy",
        description="Create a template and an endpoint from the model's preset (each option overrides "
        "one preset value), then use the endpoint for the model in this session.",
    )
    parser.add_argument("model", choices=PRESETS, help="Which model's preset.")
    parser.add_argument("--name", help="Endpoint name (the template name follows it).")
    parser.add_argument(
        "--image", help="Container image (default: the preset's, or RP_NOTEBOOK_<MODEL>_IMAGE)."
    )
    parser.add_argument(
        "--gpu",
        metavar="POOLS",
        help="GPU pools, comma-separated, e.g. ADA_24,AMPERE_24 (see %%runpod gpus).",
    )
    parser.add_argument(
        "--workers-min", type=int, metavar="N", help="Workers kept running (billed while idle)."
    )
    parser.add_argument("--workers-max", type=int, metavar="N", help="Most workers at once.")
    parser.add_argument("--idle-timeout", type=int, metavar="S", help="Seconds an idle worker is kept.")
    parser.add_argument(
        "--flashboot",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="FlashBoot (faster cold starts).",
    )
    parser.add_argument("--execution-timeout", type=int, metavar="S", help="Seconds a job may run.")
    parser.add_argument("--disk", type=int, metavar="GB", help="Container disk in GB.")
    parser.add_argument(
        "--env",
        type=_env_pair,
        action="append",
        metavar="KEY=VALUE",
        help="An environment variable for the worker (repeatable); merged with the preset's. Values are "
        "stored in the template as plain text: for a token, create a Runpod secret and pass "
        "KEY={{ RUNPOD_SECRET_name }}.",
    )
    parser.add_argument("--template-name", metavar="NAME", help="Template name (unique per account).")
    parser.add_argument("--min-vram", type=float, metavar="GB", help="GPU memory the model needs.")
    parser.add_argument(
        "--persist",
        action="store_true",
        help="Also save the endpoint for later sessions (in the user config file, not the notebook).",
    )
    return parser


def _scale_parser() -> argparse.ArgumentParser:
    parser = MagicArgumentParser(prog="%runpod scale", description="Change an endpoint's worker counts.")
    parser.add_argument("endpoint", help="Endpoint id.")
    parser.add_argument("--min", type=int, metavar="N", dest="workers_min", help="Workers kept running.")
    parser.add_argument("--max", type=int, metavar="N", dest="workers_max", help="Most workers at once.")
    return parser


def _delete_parser() -> argparse.ArgumentParser:
    parser = MagicArgumentParser(
        prog="%runpod delete",
        description="Delete an endpoint (scaled to 0 first) or a template (by name, when no endpoint uses it).",
    )
    parser.add_argument("kind", choices=("endpoint", "template"), help="What to delete.")
    parser.add_argument("target", help="The endpoint id, or the template name.")
    parser.add_argument(
        "--force",
        action="store_true",
        help="endpoint: delete even with jobs queued or running (they are lost).",
    )
    return parser


def _use_parser() -> argparse.ArgumentParser:
    parser = MagicArgumentParser(
        prog="%runpod use",
        description="Serve a model from an endpoint; saved in the user config file (never the notebook).",
    )
    parser.add_argument("endpoint", help=f"Endpoint id, or {FORGET!r} to forget the saved choice.")
    parser.add_argument("as_", choices=("as",), metavar="as", help="The word as.")
    parser.add_argument("model", choices=MODELS, help="Which model.")
    parser.add_argument("--session-only", action="store_true", help="Only for this session; save nothing.")
    return parser


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        # Not echoed: the value part may be a secret.
        raise argparse.ArgumentTypeError("expected KEY=VALUE")
    return key.strip(), value


# -- handlers ------------------------------------------------------------------------------------------


def _gpus(args: argparse.Namespace) -> Rendered:
    with Provisioner() as prov:
        pools = prov.gpus(model=args.model)
    columns = ["pool", "GPUs", "VRAM", "flex price", "active price"]
    notes = [
        "VRAM: what every worker is sure to get (the pool's smallest card).",
        "flex: a worker that scales to zero, billed while it starts, runs and idles; active: the "
        "endpoint's always-on workers (workersMin), billed around the clock.",
        display.prices_note(info.pool.id for info in pools),
    ]
    if args.model:
        need = preset_for(args.model).min_vram_gb
        columns.append(f"fits {args.model} (needs {need:g} GB)")
        notes.append(
            f"{args.model} needs about {need:g} GB of GPU memory; every pool of an endpoint must fit."
        )
    rows = []
    for info in pools:
        row = [
            info.pool.id,
            info.pool.label,
            display.vram_text(info.pool),
            display.price_text(info.pool.id),
            display.price_text(info.pool.id, active=True),
        ]
        if args.model:
            row.append("✓" if info.fits else "✗")
        rows.append(row)
    return Rendered(display.table_bundle(columns, rows, notes=notes, css_class="rp-notebook-gpus"))


def _templates(args: argparse.Namespace) -> Rendered:
    with Provisioner() as prov:
        templates = prov.templates()
    rows = [
        (
            t.id,
            t.name,
            t.image,
            "—" if t.container_disk_gb is None else f"{t.container_disk_gb} GB",
            ", ".join(sorted(t.env)),  # names only: the values may be tokens
        )
        for t in templates
    ]
    notes = [] if rows else ["no templates in this account"]
    columns = ["id", "name", "image", "disk", "env (names)"]
    return Rendered(display.table_bundle(columns, rows, notes=notes, css_class="rp-notebook-templates"))


def _endpoints(args: argparse.Namespace) -> Rendered:
    with Provisioner() as prov:
        statuses = prov.endpoints()
    in_use: dict[str, list[str]] = {}
    for model, endpoint_id in current_settings().endpoints.items():
        in_use.setdefault(endpoint_id, []).append(model)
    rows = [_endpoint_row(status, in_use.get(status.endpoint.id, [])) for status in statuses]
    columns = ["id", "name", "pools", "workers", "running cost", "health: workers", "jobs", "used for"]
    notes = (
        [
            "used for: the models this session sends to the endpoint.",
            "running cost: what its active workers (the minimum, always on) cost per hour, whether "
            f"they run jobs or not; jobs on other workers cost by the second. {display.prices_note()}",
        ]
        if rows
        else ["no endpoints yet"]
    )
    return Rendered(display.table_bundle(columns, rows, notes=notes, css_class="rp-notebook-endpoints"))


def _endpoint_row(status: EndpointStatus, models: list[str]) -> list[str]:
    endpoint = status.endpoint
    if status.health is not None:
        workers, jobs = display.health_cells(status.health)
    else:
        # A transport error can run to several hundred characters; the table stays readable.
        error = textwrap.shorten(status.health_error or "unknown", MAX_ERROR_CHARS, placeholder=" …")
        workers, jobs = f"unavailable: {error}", ""
    return [
        endpoint.id,
        endpoint.name,
        ", ".join(endpoint.gpu_pools),
        _workers(endpoint),
        _running_cost(endpoint),
        workers,
        jobs,
        ", ".join(models),
    ]


def _workers(endpoint: Endpoint) -> str:
    return f"{endpoint.workers_min}-{endpoint.workers_max}"


def _running_cost(endpoint: Endpoint) -> str:
    """ "$1.51/h" for an endpoint with active workers; "" for one that scales to zero."""
    if endpoint.workers_min == 0:
        return ""
    per_hour = rates_of(endpoint).running_per_hour()
    return display.NO_PRICE if per_hour is None else f"{usd_text(per_hour)}/h"


def _record(endpoint: Endpoint, *, deleted: bool = False) -> None:
    """Price the endpoint's jobs with what was just set, and count its active workers' cost."""
    record_endpoint(current_settings().endpoint_base_url, rates_of(endpoint), deleted=deleted)


class DeployResult(Rendered):
    """What `%runpod deploy` returns: a summary that renders, and the `Deployment` behind it.

    `deployment = %runpod deploy tts` keeps it; `deployment.endpoint.id` is the new endpoint's id.
    """

    def __init__(self, deployment: Deployment, saved_to: Path | None) -> None:
        self.deployment = deployment
        endpoint, template = deployment.endpoint, deployment.template
        rows = [
            ("endpoint", f"{endpoint.id} ({endpoint.name})"),
            (
                "template",
                f"{template.name} ({template.id})" + (", reused" if deployment.reused_template else ""),
            ),
            ("image", template.image),
            ("pools", ", ".join(endpoint.gpu_pools)),
            ("workers", _workers(endpoint)),
        ]
        kept = (
            f"saved in {saved_to}"
            if saved_to
            else f"this session only; to keep it: %runpod use {endpoint.id} as {deployment.model}"
        )
        notes = [f"{deployment.model} now runs on endpoint {endpoint.id} ({kept})", *deployment.preset.notes]
        super().__init__(
            display.table_bundle(None, rows, notes=notes, css_class="rp-notebook-deployment"),
            f"Deployment: {deployment.model} on endpoint {endpoint.id}",
        )

    @property
    def endpoint(self) -> Endpoint:
        return self.deployment.endpoint

    @property
    def template(self) -> Template:
        return self.deployment.template


def _deploy(args: argparse.Namespace) -> DeployResult:
    overrides = {
        "name": args.name,
        "image": args.image,
        "gpu_pools": args.gpu,
        "workers_min": args.workers_min,
        "workers_max": args.workers_max,
        "idle_timeout_s": args.idle_timeout,
        "flashboot": None if args.flashboot is None else ("FLASHBOOT" if args.flashboot else "OFF"),
        "execution_timeout_s": args.execution_timeout,
        "container_disk_gb": args.disk,
        "env": dict(args.env) if args.env else None,
        "template_name": args.template_name,
        "min_vram_gb": args.min_vram,
    }
    with Provisioner() as prov:
        # Printed as they happen: template and endpoint creation each take a round trip or more.
        deployment = prov.deploy(args.model, progress=print, **overrides)
    _record(deployment.endpoint)
    saved_to = remember_endpoint(args.model, deployment.endpoint.id, persist=args.persist)
    return DeployResult(deployment, saved_to)


def _scale(args: argparse.Namespace) -> None:
    if args.workers_min is None and args.workers_max is None:
        _scale_parser().error("give --min N, --max N or both")
    with Provisioner() as prov:
        endpoint = prov.scale(args.endpoint, workers_min=args.workers_min, workers_max=args.workers_max)
    _record(endpoint)
    running = _running_cost(endpoint)
    print(
        f"endpoint {endpoint.id} ({endpoint.name}): workers {_workers(endpoint)}"
        + (f"; its active workers cost {running}" if running else "")
    )


def _delete(args: argparse.Namespace) -> None:
    with Provisioner() as prov:
        if args.kind == "template":
            if args.force:
                _delete_parser().error("--force is for endpoints; a template in use is never deleted")
            template = prov.delete_template(args.target)
            print(f"template {template.name} ({template.id}) deleted")
            return
        deleted = prov.delete_endpoint(args.target, force=args.force, progress=print)
    _record(deleted, deleted=True)
    print(f"endpoint {args.target} deleted")
    _forget_deleted(args.target)


def _forget_deleted(endpoint_id: str) -> None:
    """Stop sending a model's jobs to an endpoint that is gone: this session, and the saved choice."""
    for model, current in current_settings().endpoints.items():
        if current != endpoint_id:
            continue
        remember_endpoint(model, None, persist=False)
        settings = current_settings()  # what is left once this session's choice is dropped
        if settings.endpoints.get(model) == endpoint_id:
            source = settings.sources.get(f"RP_NOTEBOOK_{model.upper()}_ENDPOINT", "")
            if source == "user config":
                remember_endpoint(model, None)
            else:
                print(f"{model}: still set to {endpoint_id} by the {source}; change it there")
                continue
        now = current_settings().endpoints.get(model)
        if now is None and _api.local_endpoint() is not None and model in _api.LOCAL_ENDPOINTS:
            # On the local endpoint the model was served by its own endpoint before the deploy.
            now = _api.LOCAL_ENDPOINTS[model]
            configure(endpoints={model: now})
        print(f"{model} no longer uses {endpoint_id}" + (f"; it uses {now}" if now else ""))


def _use(args: argparse.Namespace) -> None:
    endpoint_id = None if args.endpoint.lower() == FORGET else args.endpoint
    saved_to = remember_endpoint(args.model, endpoint_id, persist=not args.session_only)
    if endpoint_id is None:
        where = f"; removed from {saved_to}" if saved_to else " in this session"
        now = current_settings().endpoints.get(args.model)
        print(f"{args.model}: forgot the chosen endpoint{where}" + (f"; it uses {now}" if now else ""))
    elif saved_to:
        print(f"{args.model} now uses endpoint {endpoint_id}; saved in {saved_to} for later sessions too")
    else:
        print(
            f"{args.model} now uses endpoint {endpoint_id} in this session only; nothing saved "
            f"(without --session-only it would go to {user_config_file()})"
        )


#: subcommand -> (its parser, its handler); the order is the order of the help.
COMMANDS: dict[str, tuple[Callable[[], argparse.ArgumentParser], Callable[[argparse.Namespace], Any]]] = {
    "gpus": (_gpus_parser, _gpus),
    "templates": (_templates_parser, _templates),
    "endpoints": (_endpoints_parser, _endpoints),
    "deploy": (_deploy_parser, _deploy),
    "scale": (_scale_parser, _scale),
    "delete": (_delete_parser, _delete),
    "use": (_use_parser, _use),
}


def run_command(command: str, args: list[str]) -> Any:
    """Parse `args` with the subcommand's parser and run it."""
    make_parser, handler = COMMANDS[command]
    return handler(make_parser().parse_args(args))


def help_texts() -> list[str]:
    """The usage of every provisioning subcommand, for `%runpod?`."""
    return [make_parser().format_help() for make_parser, _ in COMMANDS.values()]
