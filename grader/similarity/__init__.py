"""Similarity between submissions: fingerprints per handout function, a class index, a report.

``fingerprint`` turns one submission's code into normalised, winnowed
fingerprints per function; ``index`` weighs them against the whole class
(reference and common code subtracted, rare code weighted up) and ranks the
pairs; ``report`` writes ``similarity.html`` and ``similarity.csv``;
``writer`` plugs all of it into ``grade`` as a writer on the seam. The
report says "similar", never "copied": it points a person at code to read.
"""
