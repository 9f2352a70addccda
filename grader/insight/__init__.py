"""What the grader learns about the class and the rubric: ``audit`` (does every known mistake get
caught, by a public case?) and ``mistakes`` (a ``@mistake`` skeleton for each wrong-answer
cluster no known mistake explains)."""
