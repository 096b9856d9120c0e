"""On the PYTHONPATH of the JupyterLab the browser tests start (test_browser.jupyter_env),
so in that server and its kernels: keep rfc3987-syntax out, as tests/plugins/startup.py does
in pytest. jupyter-events imports jsonschema's format checkers when the server starts, and
rfc3987-syntax builds 38 Lark parsers on import: about 2.4 CPU s per server. It only checks
the "iri" format, which no schema of jupyter_server, jupyter-events or JupyterLab uses;
without it jsonschema leaves that format unchecked. Nothing a learner sees changes."""

import sys

sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]

# the server's kernels: ports no outgoing connection can take before the kernel binds them
# (tests/plugins/kernel_ports.py); only in JupyterLab itself, not in every Python it starts
if "jupyterlab" in sys.orig_argv:  # python -m jupyterlab ...
    import kernel_ports

    kernel_ports.install()
