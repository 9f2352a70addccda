"""Grading on a Dask cluster (``hwgrader grade --scheduler ADDRESS``).

``cluster``   what ``--scheduler`` accepts (``tcp://``, ``tls://``, ``local[:N]``), connecting,
              and the warning for unencrypted traffic to another machine
``plugin``    ``SandboxPlugin``: on every worker, checks the worker can sandbox, starts and owns its
              fork servers and holds the batch's plan (which never enters a submission's sandbox)
``tasks``     what runs on a worker: one chunk of submissions graded, results as plain JSON data
``executor``  ``DaskExecutor``, the batch's executor (``grader.grading.executors``): chunks out,
              results streamed back as they finish, worker deaths retried, poison isolated

Dask (``distributed``) is an optional dependency: ``pip install 'hwgrader[dask]'``. Nothing here
is imported unless ``--scheduler`` is given.
"""
