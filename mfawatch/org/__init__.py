"""An AWS Organization: the member-account forwarder templates (:mod:`.forwarder`) and the audit
that every account x Region forwards what the rules match (:mod:`.audit`).
"""
