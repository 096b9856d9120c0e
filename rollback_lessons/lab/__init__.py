"""What a learner looks at and answers: ``lab.viz`` (pictures), ``lab.widgets`` (the panel),
``lab.exercises`` (check, hint, solution)."""
