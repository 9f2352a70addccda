"""hwgrader: grade the deep-learning homework in sandboxed worker processes.

The trusted parent (this package) owns the rubric, the references and every
expected output; student code only ever runs in ``grader.sandbox.inside.worker`` inside a
sandbox and sends back plain numbers.
"""

__version__ = "0.1.0"
