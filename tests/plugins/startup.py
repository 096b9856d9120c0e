"""Loaded before pytest's other plugins (pyproject.toml: ``-p startup``), in every pytest
process (the xdist workers too): what makes each one slow to start and is never used there.

rfc3987-syntax (jsonschema's optional "iri" format check, pulled in by jupyter-events)
builds 38 Lark parsers when it is imported: about 2.4 CPU s in each pytest process, because
nbval imports nbformat, which imports jsonschema, at plugin load. No test validates an IRI
with jsonschema (nbformat's notebook schema has no "iri" format); without the module
jsonschema leaves that one format unchecked. JupyterLab and the kernels, in processes of
their own, are untouched."""

import sys

sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]

# nbval's kernels: ports no outgoing connection can take before the kernel binds them
import kernel_ports  # noqa: E402

kernel_ports.install()
