"""Reference package of the deep-learning fundamentals homework.

One module per question (``q1_batchnorm`` .. ``q5_subpixel``) holding the
reference functions under the names the handout prescribes, with the known
mistakes (``@mistake``) of each beside it; ``generators`` holds the seeded
input generators (``@generator``) the rubric cases name. Every public
module-level function is a reference function; helpers are ``_private``.
"""
