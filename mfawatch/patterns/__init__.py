"""EventBridge event patterns, offline: the matcher (:mod:`.engine`) and what a pattern requires
of a record (:mod:`.requirements`), which the archive prefilter and the Athena SQL are built from.
"""
