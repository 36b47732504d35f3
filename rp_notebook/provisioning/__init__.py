"""Provisioning: GPU pools, templates and endpoints, over Runpod's GraphQL API or REST v2.

    from rp_notebook.provisioning import Provisioner
    with Provisioner() as prov:
        deployment = prov.deploy("tts")          # a preset: image, pools, workers, timeouts
        print(deployment.endpoint.id)

Layout: `_gpus` (the pool table and the GPU-memory check), `_presets` (per-model deploy presets),
`_types` (typed requests and answers), `_backend` (the interface), `_graphql` / `_rest` (the two
wire formats), `_provisioner` (the rules, above both backends). Nothing here imports the runpod SDK.
"""

from ._gpus import GPU_POOLS, GpuPool, check_pools_fit, parse_gpu_ids, pools_fitting
from ._presets import PRESETS, DeployPreset, preset_for
from ._provisioner import Deployment, EndpointStatus, PoolInfo, Provisioner
from ._types import Endpoint, EndpointHealth, EndpointSpec, GpuType, Template, TemplateSpec

__all__ = [
    "GPU_POOLS",
    "PRESETS",
    "DeployPreset",
    "Deployment",
    "Endpoint",
    "EndpointHealth",
    "EndpointSpec",
    "EndpointStatus",
    "GpuPool",
    "GpuType",
    "PoolInfo",
    "Provisioner",
    "Template",
    "TemplateSpec",
    "check_pools_fit",
    "parse_gpu_ids",
    "pools_fitting",
    "preset_for",
]
