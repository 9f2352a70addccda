"""The gradebook: stored results, rubric items, manual grades and what is built on them.

``store`` is the SQLite gradebook (its module docstring is the API); the rest
(incremental grading, the manual CSV round trip, LMS export) builds on it.
"""
