"""The rule toolchain over ``rules/*.yaml``: validate, compile and run the cases (:mod:`.build`),
and render the runbooks from them (:mod:`.runbooks`). The rules at run time are
:mod:`chalicelib.core.rules`.
"""
