"""What a learner looks at and answers: ``lab.viz`` (pictures), ``lab.widgets`` (the panel),
``lab.exercises`` (check, hint, solution). In a notebook, importing it also makes a cell run
too early say which cell to run first (``lab.guard``)."""

from .guard import install as _install_guard

_install_guard()
