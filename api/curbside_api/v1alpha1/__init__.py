"""Version v1alpha1 of the Curbside API: one module per kind (and ``ownerpolicy``, the largest
part of a VehicleNode's spec).

``RESOURCES`` lists the kinds the CRD generator writes, in a stable order.
"""

from __future__ import annotations

from curbside_api import base
from curbside_api.v1alpha1 import inferencejob, vehiclenode

VERSION = "v1alpha1"

RESOURCES: tuple[type[base.Resource], ...] = (inferencejob.InferenceJob, vehiclenode.VehicleNode)
