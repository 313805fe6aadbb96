"""Where and when folds run: the sequential reference executor and the Ray executors.

Only this package imports ray, and only in its Ray modules.
"""
