"""hwgrader meeting CI systems: a Gradescope autograder bundle, JUnit XML and GitHub Actions output.

Everything here consumes finished results (``grader.grading.results``) the way
the writers in ``grader.outputs.writers`` do; nothing here runs inside the
grading engine. ``gradescope_bundle`` builds the autograder zip,
``autograder`` is what that zip's ``run_autograder`` runs in Gradescope's
container, ``junit`` and ``github`` are the ``check --junit`` / ``check
--github`` writers.
"""
