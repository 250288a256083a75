#!/usr/bin/env python3
"""Validates Kubernetes manifests the way a cluster with strict field validation would.

Usage: validate-manifests.py [--kubernetes 1.33] [--crds DIR] FILE_OR_DIR...

Built-in kinds are checked with kubernetes-validate's strict schemas. Custom resources are
checked against the openAPIV3Schema of their CRD found under --crds (default
../shared/fixtures/crds beside the project), with unknown fields refused, since an API server
would silently prune them. Prints one line per object and exits 1 if any is invalid or has no
schema.
"""

import argparse
import copy
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


def forbid_unknown_fields(schema):
    """Adds additionalProperties: false wherever the schema lists properties and does not ask
    to preserve unknown fields."""
    if isinstance(schema, dict):
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in schema
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            forbid_unknown_fields(value)
    elif isinstance(schema, list):
        for value in schema:
            forbid_unknown_fields(value)


def load_crd_schemas(folder):
    """(apiVersion, kind) -> JSON schema of the object, for every served version of every CRD."""
    schemas = {}
    for path in sorted(pathlib.Path(folder).rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if not document or document.get("kind") != "CustomResourceDefinition":
                continue
            spec = document["spec"]
            for version in spec["versions"]:
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                forbid_unknown_fields(schema)
                # apiVersion, kind and metadata are the API server's; describe them here.
                schema.setdefault("properties", {}).update(
                    {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
                                "namespace": {"type": "string"},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                            },
                        },
                    }
                )
                schemas[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = schema
    return schemas


def manifest_files(arguments):
    for argument in arguments:
        path = pathlib.Path(argument)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.yaml"))
        else:
            yield path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes", default="1.33")
    parser.add_argument("--crds", default=str(ROOT.parent / "shared" / "fixtures" / "crds"))
    parser.add_argument("paths", nargs="+")
    options = parser.parse_args()
    if not pathlib.Path(options.crds).is_dir():
        sys.exit(f"CRD schemas not found at {options.crds}")
    crds = load_crd_schemas(options.crds)
    failures = objects = 0
    for path in manifest_files(options.paths):
        for document in yaml.safe_load_all(path.read_text()):
            if document is None:
                continue
            objects += 1
            key = (document.get("apiVersion"), document.get("kind"))
            try:
                if key in crds:
                    jsonschema.Draft7Validator(crds[key]).validate(document)
                else:
                    kubernetes_validate.validate(document, options.kubernetes, strict=True)
                print(f"ok       {path} {key[1]}")
            except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
                failures += 1
                where = "/".join(str(p) for p in error.absolute_path) or "(object)"
                print(f"INVALID  {path} {key[1]}: at {where}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError:
                failures += 1
                print(f"INVALID  {path}: no schema for {key[0]} {key[1]}")
    if objects == 0:
        sys.exit("no manifests found")
    print(f"{objects - failures} of {objects} objects valid")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
