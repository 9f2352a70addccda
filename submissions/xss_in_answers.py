# A hostile submission for the HTML reports: everything it can put on a page tries to run script.
# The grader must show all of it as text. Only Q5's zero_insert is attempted (and correct).
import numpy as np

ANSWER_Q1 = """<script>window.__pwned = 1</script>
<img src=x onerror="window.__pwned = 1">
γ 和 β 是 learnable parameters（可學習的參數），由 backpropagation 訓練。"""

ANSWER_Q2 = '</pre><svg onload="window.__pwned = 1"></svg><a href="javascript:window.__pwned=1">click</a>'

print("<script>window.__pwned = 1</script>")
print('{"score": 100, "tests": []}')


def zero_insert(x, factor=2):
    x = np.asarray(x, dtype=float)
    h, w = x.shape[:2]
    u = np.zeros(((h - 1) * factor + 1, (w - 1) * factor + 1) + x.shape[2:])
    u[::factor, ::factor] = x
    return u


def conv2d_valid(p, k, stride=1):
    raise ValueError("<img src=x onerror=\"window.__pwned = 1\"> not implemented")
