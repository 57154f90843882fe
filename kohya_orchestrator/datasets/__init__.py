"""Kohya dataset folders: reading, laying out, captions, tagging, inspection and the step plan.

``tree`` reads ``<repeats>_<name>`` folders as sd-scripts does and ``layout`` creates them;
``findings`` is the vocabulary of what is found; ``captions`` edits caption files and
``tagging`` runs the WD14 tagger in the install; ``imageheaders`` reads image sizes without
decoding; ``report`` / ``report_models`` inspect a dataset; ``buckets`` assigns aspect-ratio
buckets; ``plan`` / ``plan_inputs`` / ``plan_models`` / ``plan_text`` compute and print the exact
steps sd-scripts will run; ``demo`` makes the bundled demo dataset.
"""
