"""How untrusted code runs. Knows nothing about grading; one concern per module:

``limits``    the documented ``Limits`` (rubric ``limits:``) and the worker's rlimit spec
``levels``    ``Isolation`` and one class per level: command line, environment, kill, exit status
``detect``    which level to use: the required one or the strongest that works, and why others failed
``layout``    what of the host's Python installation a sandbox binds (interpreter, stdlib, packages)
``seccomp``   the system-call filter (libseccomp) every sandboxed worker runs under
``keyring``   a fresh, empty session keyring per worker
``uids``      the one allocator of worker uids (never reused)
``forkpool``  the fork servers of ``bwrap-fork``, owned by the batch's pool object
``channel``   the framed pipes to a worker and its capped output
``session``   ``Sandbox`` (one per batch) and ``WorkerSession`` (one per submission)
``inside/``   files that run inside the sandbox (worker, fork server, protocol): no grader imports
"""
