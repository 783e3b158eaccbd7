"""Writes the KEDA schemas the deploy tests validate against (run by hand, not by the tests).

Source: the PyPI package cloudcoil-models-keda 2.16.1.0 (Apache-2.0), pydantic models generated
from the CustomResourceDefinitions of KEDA v2.16.1 (keda.sh/v1alpha1). Run it in a
throwaway virtual environment, not the project's:

    python -m venv /tmp/keda && /tmp/keda/bin/pip install cloudcoil-models-keda==2.16.1.0
    /tmp/keda/bin/python tests/deploy/data/make_keda_schemas.py
"""

from __future__ import annotations

import json
from pathlib import Path

from cloudcoil.models.keda import v1alpha1

HERE = Path(__file__).resolve().parent
SOURCE = "cloudcoil-models-keda==2.16.1.0 (PyPI), generated from KEDA v2.16.1's CRDs"

for kind in ("ScaledObject", "TriggerAuthentication"):
    schema = getattr(v1alpha1, kind).model_json_schema()
    schema["$comment"] = f"keda.sh/v1alpha1 {kind}: JSON Schema of {SOURCE}"
    path = HERE / f"keda-2.16.1-{kind.lower()}.schema.json"
    path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path.relative_to(HERE.parents[2])}")
