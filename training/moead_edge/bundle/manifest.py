"""Validation of a bundle manifest against the daemon's schema.

The zod schema in src/bundle/manifest.ts is the single source of truth; `npm run schema`
writes it to models/manifest.schema.json, which is checked here with jsonschema. Two rules
are zod refinements that JSON Schema cannot express, so they are repeated here:
bundle paths stay inside the bundle, and threshold.good_median < threshold.value.
(A reference frame's sha256 and bytes come together: that one the generated schema
carries itself, as dependentRequired.)

API::

    class ManifestError(ValueError)        # lists every problem as "manifest.<path>: message"
    schema_path() -> Path                  # $MOEAD_EDGE_MANIFEST_SCHEMA or the nearest models/manifest.schema.json above
    load_schema(path=None) -> dict
    validate_manifest(manifest: Mapping, schema: Mapping | None = None) -> None
    is_bundle_path(p: str) -> bool         # relative, forward slashes, every part a name
    normalized_score(score: float, threshold: Mapping) -> float   # the daemon's 0..1 score
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from jsonschema import Draft202012Validator


class ManifestError(ValueError):
    """A manifest that the daemon would refuse; the message names each bad field."""


SCHEMA_ENV = "MOEAD_EDGE_MANIFEST_SCHEMA"
_SCHEMA_IN_REPO = Path("models") / "manifest.schema.json"


def schema_path() -> Path:
    """$MOEAD_EDGE_MANIFEST_SCHEMA, else models/manifest.schema.json in the nearest folder above
    this package or above the working directory that holds one.

    The package's own checkout comes first (its schema matches its code); the working directory
    still finds the repo's when the package was installed or copied somewhere else.
    """
    env = os.environ.get(SCHEMA_ENV)
    if env:
        return Path(env)
    starts = [Path(__file__).resolve().parent, Path.cwd().resolve()]
    for start in starts:
        for folder in (start, *start.parents):
            if (folder / _SCHEMA_IN_REPO).is_file():
                return folder / _SCHEMA_IN_REPO
    raise FileNotFoundError(
        f"manifest JSON schema not found: no {_SCHEMA_IN_REPO} in any folder above {starts[0]} or "
        f"above {starts[1]} (run the toolchain inside the repo, generate the schema with "
        f"`npm run schema`, or set {SCHEMA_ENV} to its path)")


@lru_cache(maxsize=4)
def _load_schema_cached(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"{p}: manifest JSON schema not found (generate it with `npm run schema`, or set "
            f"MOEAD_EDGE_MANIFEST_SCHEMA)")
    schema = json.loads(p.read_text())
    Draft202012Validator.check_schema(schema)
    return schema


def load_schema(path: str | Path | None = None) -> dict:
    return _load_schema_cached(str(path or schema_path()))


_CONTROL = re.compile("[\u0000-\u001f\u007f-\u009f]")


def is_bundle_path(p: str) -> bool:
    """The daemon's rule (src/bundle/manifest.ts): every part names something, none climbs out."""
    return (bool(p) and "\\" not in p and not _CONTROL.search(p)
            and all(part not in ("", ".", "..") for part in p.split("/")))


def _field(path: Iterable[Any]) -> str:
    out = "manifest"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _refinement_errors(m: Mapping[str, Any]) -> list[str]:
    errors: list[str] = []
    files: list[tuple[list[Any], Any]] = []
    for key in ("model", "fp32_model"):
        if isinstance(m.get(key), Mapping):
            files.append(([key, "file"], m[key].get("file")))
    frames = m.get("reference_frames")
    if isinstance(frames, list):
        for i, f in enumerate(frames):
            if isinstance(f, Mapping):
                files.append((["reference_frames", i, "file"], f.get("file")))
    for where, value in files:
        if isinstance(value, str) and not is_bundle_path(value):
            errors.append(f"{_field(where)}: expected a relative path to a file inside the bundle "
                          f"(no '..', '.', empty or leading '/' parts, no control characters), got {value!r}")
    t = m.get("threshold")
    if isinstance(t, Mapping):
        gm, v = t.get("good_median"), t.get("value")
        if isinstance(gm, (int, float)) and isinstance(v, (int, float)) and not gm < v:
            errors.append(f"{_field(['threshold', 'good_median'])}: good_median must be below value "
                          f"({gm} >= {v})")
    return errors


def validate_manifest(manifest: Mapping[str, Any], schema: Mapping[str, Any] | None = None) -> None:
    """Raise ManifestError listing every schema violation and refinement failure."""
    validator = Draft202012Validator(dict(schema) if schema is not None else load_schema())
    errors = [f"{_field(e.absolute_path)}: {e.message}"
              for e in sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path)))]
    errors += _refinement_errors(manifest)
    if errors:
        raise ManifestError("invalid bundle manifest:\n  " + "\n  ".join(errors))


def normalized_score(score: float, threshold: Mapping[str, Any]) -> float:
    """The shared 0..1 score: the median good image maps to 0, the threshold to 0.5."""
    value, median = float(threshold["value"]), float(threshold["good_median"])
    if not median < value:
        raise ManifestError(f"manifest.threshold.good_median: must be below value ({median} >= {value})")
    return min(max(0.5 + 0.5 * (score - value) / (value - median), 0.0), 1.0)
